"""Download PASCAL VOC 2012 and SBD (train_aug = 10,582 images) into their official layouts and verify.

    python data_scripts/voc_sbd.py [--target DIR] [--downloads DIR]

Result: <target>/VOCdevkit/VOC2012/ (~2 GB) and <target>/benchmark_RELEASE/ (~1.4 GB). The reader
uses VOC's JPEGImages, SegmentationClass and ImageSets/Segmentation/{train,val}.txt, and SBD's
dataset/{train,val}.txt, dataset/cls/*.mat and dataset/img/*.jpg (see fusionseg/data/voc.py).
"""

from __future__ import annotations

import sys

from _download import Archive, fetch_and_extract, finish, script_parser

ARCHIVES = (
    Archive(
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "6cd6e144f989b92b3379bac3b3de84fd",
    ),
    Archive(
        "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
        "82b4d87ceb2ed10f6038a1cba92111cb",
    ),
)


def main(argv: list[str] | None = None) -> int:
    args = script_parser(__doc__, "VOC").parse_args(argv)
    for archive in ARCHIVES:
        fetch_and_extract(archive, args, strip_top=False)  # VOCdevkit/ and benchmark_RELEASE/ kept
    return finish("voc", args)


if __name__ == "__main__":
    sys.exit(main())
