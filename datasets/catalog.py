"""The published data sets the configs read from load/: where each is published, the folders it
must fill and how many images it has (README.md, Data). `scripts/check_data.py` checks a copy
against this list; test.py names it when data is missing."""
import os
from dataclasses import dataclass

LR_SCALES = (2, 3, 4)  # the LR_bicubic/X<s> folders the archives hold (MATLAB bicubic)
WHERE = "README.md, Data, names where each set is published; python scripts/check_data.py checks a copy"
BENCHMARK_TAR = "benchmark.tar of EDSR-PyTorch (cv.snu.ac.kr/research/EDSR/benchmark.tar)"
DIV2K_SITE = "data.vision.ee.ethz.ch/cvl/DIV2K"


@dataclass(frozen=True)
class PublishedSet:
    name: str            # as test.py's tables name it
    hr: str              # HR folder, relative to the load folder
    lr: str | None       # the LR_bicubic folder holding X2, X3, X4 (None: HR only)
    count: int           # images in the published set
    source: str          # who published it, and the archive the layout comes from

    def lr_folder(self, load_dir, scale):
        """Where its LR files of `scale` are, named as in the archives: babyx4.png, 0801x4.png."""
        return os.path.join(load_dir, self.lr, f'X{scale}')


SETS = (
    PublishedSet('Set5', 'benchmark/Set5/HR', 'benchmark/Set5/LR_bicubic', 5,
                 f"Bevilacqua et al., BMVC 2012; in the {BENCHMARK_TAR}"),
    PublishedSet('Set14', 'benchmark/Set14/HR', 'benchmark/Set14/LR_bicubic', 14,
                 f"Zeyde et al., 2010; in the {BENCHMARK_TAR}"),
    PublishedSet('B100', 'benchmark/B100/HR', 'benchmark/B100/LR_bicubic', 100,
                 f"the 100 test images of BSD300 (Martin et al., ICCV 2001); in the {BENCHMARK_TAR}"),
    PublishedSet('Urban100', 'benchmark/Urban100/HR', 'benchmark/Urban100/LR_bicubic', 100,
                 f"Huang et al., CVPR 2015; in the {BENCHMARK_TAR}"),
    PublishedSet('DIV2K train', 'div2k/DIV2K_train_HR', None, 800,
                 f"DIV2K_train_HR.zip from {DIV2K_SITE} (Agustsson and Timofte, 2017)"),
    PublishedSet('DIV2K valid', 'div2k/DIV2K_valid_HR', 'div2k/DIV2K_valid_LR_bicubic', 100,
                 f"DIV2K_valid_HR.zip and DIV2K_valid_LR_bicubic_X2/X3/X4.zip from {DIV2K_SITE}"),
)


def owner(path, load_dir):
    """The published set whose folders hold `path` (a folder under `load_dir`), or None."""
    rel = os.path.normpath(os.path.relpath(path, load_dir))
    for data in SETS:
        roots = [data.hr] + ([data.lr] if data.lr else [])
        if any(rel == root or rel.startswith(root + os.sep) for root in map(os.path.normpath, roots)):
            return data
    return None


def not_shipped(path, load_dir='load'):
    """For a missing folder of a published set: which set, and where to get it (None for other folders)."""
    data = owner(path, load_dir)
    return data and f"{data.name} is not shipped with the code: {WHERE}"
