"""DUTS-style salient-object sets: `<Name>/<Name>-Image/*.jpg` with `<Name>/<Name>-Mask/*.png`.

DUTS (root = the folder holding DUTS-TR/ and DUTS-TE/): split "train" = DUTS-TR (10,553 images in
full), "test" = DUTS-TE (5,019). The copy in $FUSIONSEG_DATA is a seeded subset (5,000 / 500).
Images and masks are paired by file stem; an unpaired file on either side is an error. Masks are
read with `threshold_127`: the full release has a few anti-aliased grey edges, and the local subset
was binarised at 128, so both read the same way.
"""

from __future__ import annotations

from pathlib import Path

from fusionseg.data._files import check_pairs, list_by_stem
from fusionseg.data.types import ImagePair, ImageSet, threshold_127
from fusionseg.io import DataError

DUTS_SETS = {"train": "DUTS-TR", "test": "DUTS-TE"}


def load_saliency_set(root: Path, name: str) -> ImageSet:
    """The pairs of `root/<name>/<name>-Image` and `<name>-Mask`, sorted by stem."""
    base = Path(root) / name
    images = list_by_stem(base / f"{name}-Image", what="images")
    masks = list_by_stem(base / f"{name}-Mask", what="masks")
    check_pairs(images, masks, f"saliency set {base}")
    if not images:
        raise DataError(f"{base / f'{name}-Image'}: no images")
    items = [ImagePair(images[stem], masks[stem]) for stem in sorted(images)]
    return ImageSet(name=name, items=items, mask_rule=threshold_127)


def load_duts(root: Path, split: str = "train") -> ImageSet:
    """DUTS-TR ("train") or DUTS-TE ("test")."""
    if split not in DUTS_SETS:
        raise DataError(f"DUTS has splits {sorted(DUTS_SETS)}, not {split!r}")
    return load_saliency_set(root, DUTS_SETS[split])
