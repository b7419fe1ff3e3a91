"""datasets/wrappers.py's augmentation: the same flips and transpose on LR and HR, each of them
drawn, non-square crops transposed, on downsampled and paired data."""
import torch

import datasets
from dataset_helpers import folder, gt_image, hr_shape, image_folder, noise, wrapper
from datasets import wrappers
from utils.coords import make_coord


DIHEDRAL = [(h, v, d) for h in (False, True) for v in (False, True) for d in (False, True)]


transform = wrappers.augment  # row flip, column flip, transpose: which one applies is what the tests find


# ------------------------------------------------------------------------------------------
# augmentation

def test_augment_consistent_and_all_flips(tmp_path):
    root = folder(tmp_path / 'i', {'a.png': noise((40, 44, 3), 5)})
    ds = wrapper('sr-implicit-downsampled', image_folder(root, repeat=40), inp_size=8, scale_min=2,
                 augment=True)
    used = []
    for idx in range(40):
        lr0, hr0 = ds.pair(idx)  # the same crop, before augmentation
        s = ds[idx]
        gt = gt_image(s, 16, 16)
        match = [t for t in DIHEDRAL if torch.equal(transform(hr0, *t), gt)]
        assert len(match) == 1
        assert torch.equal(transform(lr0, *match[0]), s['inp'])
        assert torch.equal(s['coord'], make_coord((16, 16)))
        used.append(match[0])
    for k in range(3):  # each of the three flips happens, and not always
        assert {t[k] for t in used} == {False, True}
    assert len(set(used)) >= 6


def test_augment_non_square_transpose(tmp_path):
    img = noise((30, 20, 3), 6)
    ds = wrapper('sr-implicit-downsampled', image_folder(folder(tmp_path / 'i', {'a.png': img}), repeat=20),
                 scale_min=2, augment=True, sample_q=50)
    shapes = set()
    for idx in range(20):
        s = ds[idx]
        H, W = hr_shape(s)
        assert s['inp'].shape[-2:] == (H // 2, W // 2)
        shapes.add((H, W))
    assert shapes == {(30, 20), (20, 30)}


def test_augment_paired(tmp_path):
    lr_img, hr_img = noise((12, 12, 3), 1), noise((36, 36, 3), 2)
    inner = datasets.make({'name': 'paired-image-folders', 'args': {
        'root_path_1': folder(tmp_path / 'lr', {'a.png': lr_img}),
        'root_path_2': folder(tmp_path / 'hr', {'a.png': hr_img}), 'repeat': 16}})
    ds = wrapper('sr-implicit-paired', inner, inp_size=5, augment=True)
    used = set()
    for idx in range(16):
        lr0, hr0 = ds.pair(idx)
        s = ds[idx]
        match = [t for t in DIHEDRAL if torch.equal(transform(hr0, *t), gt_image(s, 15, 15))]
        assert len(match) == 1 and torch.equal(transform(lr0, *match[0]), s['inp'])
        used.add(match[0])
    assert len(used) > 2
