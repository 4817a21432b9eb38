"""Download the authors' released stream weights (DeepLab-v2 ResNet-101 Caffe models, ~170 MB each).

    python data_scripts/release_weights.py [--target DIR]

Result: <target>/appearance_stream.caffemodel and <target>/motion_stream.caffemodel, beside the
joint_davis_{train,val}/joint_stream.caffemodel fusion weights. No md5 is published: the script
prints each file's md5. Convert them with `fusionseg import-caffe`. Research/academic use.
"""

from __future__ import annotations

import sys

from _download import Archive, download, script_parser

ARCHIVES = (
    Archive("http://vision.cs.utexas.edu/projects/fusionseg/models/appearance_stream.caffemodel"),
    Archive("http://vision.cs.utexas.edu/projects/fusionseg/models/motion_stream.caffemodel"),
)


def main(argv: list[str] | None = None) -> int:
    args = script_parser(__doc__, "fusionseg_release", archives=False).parse_args(argv)
    for archive in ARCHIVES:
        path = download(archive.url, args.target / archive.filename, archive.md5)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
