"""Reading and writing image files for the demo, keeping what the file was.

`read_image(path)` gives the colour as a float (C, H, W) tensor in [0, 1] (C = 1 or 3), the alpha
separately ((1, H, W) or None), and the `ImageKind` to write the result back as: bits per channel (8 or 16),
grayscale or colour, alpha or not, the ICC profile. EXIF orientation is applied.

16-bit PNGs: Pillow (13) reads 16-bit grayscale exactly (mode I;16), but 16-bit RGB, RGBA and gray+alpha
PNGs come out as 8-bit modes holding only the high byte of each sample (so do imageio's Pillow plugin's
arrays), and Pillow cannot write them. So here:
- reading decodes such a PNG's pixel data a second time with the little-endian raw mode (`RGB;16L` /
  `RGBA;16L`), whose unpacker takes the low byte of each big-endian sample (PNG unfiltering only depends
  on the bytes per pixel, which the two raw modes share): high and low byte are the exact 16-bit samples.
  A 16-bit gray+alpha PNG is decoded with the 8-bit `RGBA` raw mode (also 4 bytes a pixel), which yields
  its four bytes as they are.
- writing any 16-bit PNG uses the small PNG encoder below (numpy filters + zlib; row blocks bound the memory).

Writing is atomic (utils/files.py). Every problem raises `ImageError`, one line naming the file.
"""
import os
import struct
import zlib
from collections import namedtuple
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError, first_line
from .files import atomic_write


# extensions taken from a folder given as input (other files there are ignored)
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.jpe', '.jfif', '.bmp', '.dib', '.tif', '.tiff', '.webp',
                    '.gif', '.ppm', '.pgm', '.pbm', '.pnm', '.tga', '.qoi', '.avif')


# what the demo writes, by extension: Pillow's format name, whether it can store an alpha channel and 16 bits
# per channel, Pillow's save options
OutputFormat = namedtuple('OutputFormat', 'name alpha bits16 options', defaults=((),))
OUTPUT_FORMATS = {
    '.png': OutputFormat('PNG', alpha=True, bits16=True),
    '.tif': OutputFormat('TIFF', alpha=True, bits16=False, options=(('compression', 'tiff_deflate'),)),
    '.tiff': OutputFormat('TIFF', alpha=True, bits16=False, options=(('compression', 'tiff_deflate'),)),
    '.webp': OutputFormat('WEBP', alpha=True, bits16=False, options=(('lossless', True),)),
    '.jpg': OutputFormat('JPEG', alpha=False, bits16=False, options=(('quality', 95),)),
    '.jpeg': OutputFormat('JPEG', alpha=False, bits16=False, options=(('quality', 95),)),
    '.bmp': OutputFormat('BMP', alpha=False, bits16=False),
}


class ImageError(UserError):
    """An image that cannot be read or written; the message is one line and names the file."""


@dataclass(frozen=True)
class ImageKind:
    bits: int = 8                    # bits per channel: 8 or 16
    gray: bool = False               # one colour channel
    alpha: bool = False              # has an alpha channel
    icc_profile: bytes = None        # embedded colour profile, written back where possible

    def describe(self):
        return f"{self.bits}-bit {'grayscale' if self.gray else 'RGB'}{'+alpha' if self.alpha else ''}"


@dataclass
class LoadedImage:
    pixels: torch.Tensor     # (C, H, W) float32 in [0, 1], C = 1 (grayscale) or 3
    alpha: torch.Tensor      # (1, H, W) float32 in [0, 1], or None
    kind: ImageKind

    @property
    def size(self):
        return tuple(self.pixels.shape[-2:])  # (height, width)


# errors Pillow (or its plugins) raise for files that are broken in one way or another
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, IndexError,
                  struct.error, zlib.error, Image.DecompressionBombError)


def read_image(path):
    """The image at `path` as a `LoadedImage`, EXIF orientation applied."""
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as im:
            low_rawmode = _png16_low_rawmode(im)
            if low_rawmode is None:
                im.load()
                return _from_pillow(ImageOps.exif_transpose(im), path)
            return _read_png16(path, im, low_rawmode)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or not a format Pillow can read)") from None
    except _DECODE_ERRORS as e:
        raise ImageError(f"{path}: cannot read image ({first_line(e)})") from None


def _png16_low_rawmode(im):
    """For a 16-bit RGB / RGBA / gray+alpha PNG that Pillow would read as 8 bits: the raw mode
    that decodes the bytes Pillow drops (see the module doc). None for every other image."""
    if im.format != 'PNG' or len(im.tile) != 1:
        return None
    rawmode = im.tile[0][3]
    rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
    return {'RGB;16B': 'RGB;16L', 'RGBA;16B': 'RGBA;16L', 'LA;16B': 'RGBA'}.get(rawmode)


def _decode_with_rawmode(path, rawmode):
    """The first frame of the PNG at `path`, pixel data decoded with `rawmode`, EXIF-transposed."""
    with Image.open(path) as im:
        im.tile = [im.tile[0]._replace(args=rawmode)]
        im.load()
        return np.asarray(ImageOps.exif_transpose(im))


def _read_png16(path, im, low_rawmode):
    transparency = im.info.get('transparency')
    icc = im.info.get('icc_profile')
    if low_rawmode == 'RGBA':  # 16-bit gray+alpha: the four bytes of each pixel as they are
        raw = _decode_with_rawmode(path, 'RGBA').astype(np.uint16)
        gray, alpha = raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3]
        return _loaded(gray[..., None], alpha, 16, icc)
    im.load()
    high = np.asarray(ImageOps.exif_transpose(im)).astype(np.uint16)
    low = _decode_with_rawmode(path, low_rawmode).astype(np.uint16)
    full = high << 8 | low
    if full.shape[-1] == 4:
        return _loaded(full[..., :3], full[..., 3], 16, icc)
    return _loaded(full, _keyed_alpha(full, transparency, 65535), 16, icc)


def _keyed_alpha(arr, key, top):
    """Alpha from a tRNS-style colour key (PNG grayscale / RGB transparency), or None."""
    if key is None or isinstance(key, bytes):
        return None
    key = np.asarray(key, dtype=np.int64).reshape(-1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if len(key) != arr.shape[-1]:
        return None
    return np.where((arr == key).all(-1), 0, top).astype(arr.dtype)


def _from_pillow(im, path):
    """Colour, alpha and kind of a loaded Pillow image of any common mode."""
    icc = im.info.get('icc_profile')
    transparency = im.info.get('transparency')
    if im.mode == 'P':
        im, transparency = im.convert('RGBA' if transparency is not None else 'RGB'), None
    elif im.mode in ('1', 'PA', 'RGBa', 'RGBX', 'CMYK', 'YCbCr', 'LAB', 'HSV', 'La'):
        im = im.convert({'1': 'L', 'PA': 'RGBA', 'RGBa': 'RGBA', 'La': 'LA'}.get(im.mode, 'RGB'))
        icc = None if im.mode == 'RGB' else icc  # a CMYK/Lab profile does not describe the converted pixels
    mode, arr = im.mode, np.asarray(im)
    if mode in ('L', 'LA', 'RGB', 'RGBA'):
        arr = arr[..., None] if arr.ndim == 2 else arr
        colours = 1 if mode[0] == 'L' else 3  # then the alpha of LA and RGBA; L and RGB may have a colour key
        alpha = arr[..., colours] if mode.endswith('A') else _keyed_alpha(arr, transparency, 255)
        return _loaded(arr[..., :colours], alpha, 8, icc)
    if mode.startswith('I;16') or (mode == 'I' and arr.size and 0 <= arr.min() and arr.max() <= 65535):
        arr = arr.astype(np.uint16)
        return _loaded(arr[..., None], _keyed_alpha(arr, transparency, 65535), 16, icc)
    raise ImageError(f"{path}: unsupported image mode {mode!r} (expected 8/16-bit grayscale or RGB, "
                     f"with or without alpha)")


def _loaded(colour, alpha, bits, icc):
    """LoadedImage from integer arrays: colour (H, W, C), alpha (H, W) or None."""
    top = 255.0 if bits == 8 else 65535.0
    pixels = torch.from_numpy(np.ascontiguousarray(colour.transpose(2, 0, 1)).astype(np.float32) / top)
    if alpha is not None:
        alpha = torch.from_numpy(alpha.astype(np.float32)[None] / top)
    kind = ImageKind(bits=bits, gray=pixels.shape[0] == 1, alpha=alpha is not None, icc_profile=icc or None)
    return LoadedImage(pixels, alpha, kind)


def image_files(folder):
    """The image files (by extension) directly inside `folder`, sorted; hidden files skipped."""
    names = sorted(n for n in os.listdir(folder)
                   if not n.startswith('.') and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
    return [os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))]


def output_format(path):
    """The OutputFormat for `path`'s extension (ImageError for one the demo does not write)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise ImageError(f"{path}: cannot write {ext or 'files without an extension'!r} "
                         f"(use one of {', '.join(OUTPUT_FORMATS)})")
    return OUTPUT_FORMATS[ext]


def writable_kind(path, kind):
    """What `path`'s format stores of an image of `kind`: (kind to write, note or None); 16 bits become 8
    where the format holds 8, alpha where it has none is refused (dropping it would change the picture)."""
    fmt = output_format(path)
    if kind.alpha and not fmt.alpha:
        raise ImageError(f"{path}: {fmt.name} cannot store the input's alpha channel (use .png, .tif or .webp)")
    if kind.bits == 16 and not fmt.bits16:
        return (replace(kind, bits=8),
                f"{path}: {fmt.name} holds 8 bits per channel, writing 8-bit (use .png to keep 16 bits)")
    return kind, None


def write_image(path, pixels, alpha=None, bits=8, icc_profile=None):
    """Write colour `pixels` ((1 or 3, H, W) in [0, 1]) and optional `alpha` ((1, H, W)) to `path`
    with `bits` per channel, in the format its extension names, atomically."""
    fmt = output_format(path)
    if alpha is not None and not fmt.alpha:
        raise ImageError(f"{path}: {fmt.name} cannot store an alpha channel")
    if bits not in (8, 16) or (bits == 16 and not fmt.bits16):
        raise ImageError(f"{path}: {fmt.name} cannot store {bits}-bit images")
    if pixels.dim() != 3 or pixels.shape[0] not in (1, 3):
        raise ValueError(f"pixels must be (1 or 3, H, W), got {tuple(pixels.shape)}")
    planes = pixels if alpha is None else torch.cat([pixels, alpha.reshape(1, *pixels.shape[-2:])])
    planes = planes.detach().float().cpu().clamp(0, 1).mul(255 if bits == 8 else 65535).round_()
    arr = planes.permute(1, 2, 0).numpy().astype(np.uint8 if bits == 8 else np.uint16)  # (H, W, C), rounded
    if arr.shape[-1] == 1:
        arr = arr[..., 0]
    if bits == 16:
        _atomic_write(path, lambda f: write_png16(f, arr, icc_profile=icc_profile))
        return
    im = Image.fromarray(arr)
    options = dict(fmt.options)
    if icc_profile and not (fmt.name == 'WEBP' and im.mode in ('L', 'LA')):  # WebP stores gray as RGB
        options['icc_profile'] = icc_profile
    _atomic_write(path, lambda f: im.save(f, format=fmt.name, **options))


def _atomic_write(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ImageError(f"{path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a folder")
    try:
        atomic_write(path, write)
    except (OSError, ValueError) as e:
        raise ImageError(f"{path}: cannot write ({first_line(e)})") from None


# a small 16-bit PNG encoder (Pillow cannot write 16-bit RGB / RGBA / gray+alpha)

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)


def _chunk(f, kind, data):
    f.write(struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data)))


def _filter_rows(rows, above, bpp, filter_type=None):
    """PNG-filter `rows` (n, L) uint8 given the rows above them (n, L): (n, 1 + L) uint8, filter byte first;
    filter_type None picks per row the filter with the smallest sum of absolute signed bytes (the usual way)."""
    x = rows.astype(np.int16)
    b = above.astype(np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    c = np.zeros_like(b)
    c[:, bpp:] = b[:, :-bpp]
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    predictors = [None, a, b, (a + b) >> 1, paeth]
    types = np.arange(5) if filter_type is None else np.array([filter_type])
    candidates = np.stack([(x if t == 0 else x - predictors[t]).astype(np.uint8) for t in types])  # wraps mod 256
    pick = np.stack([np.abs(cand.view(np.int8).astype(np.int32)).sum(1) for cand in candidates]).argmin(0)
    return np.concatenate([types.astype(np.uint8)[pick, None], candidates[pick, np.arange(len(x))]], axis=1)


def write_png16(f, arr, icc_profile=None, filter_type=None):
    """Write uint16 `arr` ((H, W) gray, or (H, W, C) with C = 1 gray, 2 gray+alpha, 3 RGB,
    4 RGBA) to the binary file object `f` as a 16-bit PNG."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    h, w, channels = arr.shape
    if arr.dtype != np.uint16 or channels not in _COLOUR_TYPES or h == 0 or w == 0:
        raise ValueError(f"write_png16 needs a non-empty uint16 (H, W[, 1..4]) array, got {arr.dtype} {arr.shape}")
    bpp = 2 * channels
    f.write(_PNG_SIGNATURE)
    _chunk(f, b'IHDR', struct.pack('>IIBBBBB', w, h, 16, _COLOUR_TYPES[channels], 0, 0, 0))
    if icc_profile:
        _chunk(f, b'iCCP', b'ICC profile\x00\x00' + zlib.compress(icc_profile))
    compressor = zlib.compressobj(6)
    block = max(1, (1 << 20) // (w * bpp))  # rows filtered at a time (~1 MB)
    previous = np.zeros((1, w * bpp), np.uint8)
    for r0 in range(0, h, block):
        rows = arr[r0:r0 + block].astype('>u2').reshape(-1, w * channels).view(np.uint8)
        above = np.concatenate([previous, rows[:-1]])
        data = compressor.compress(_filter_rows(rows, above, bpp, filter_type).tobytes())
        if data:
            _chunk(f, b'IDAT', data)
        previous = rows[-1:]
    _chunk(f, b'IDAT', compressor.flush())
    _chunk(f, b'IEND', b'')
