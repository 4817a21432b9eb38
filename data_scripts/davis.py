"""Download DAVIS 2016 (50 sequences, 480p and 1080p, ~1.9 GB) into its official layout and verify it.

    python data_scripts/davis.py [--target DIR] [--downloads DIR]

Result: <target>/JPEGImages/480p/<seq>/, Annotations/480p/<seq>/, Annotations/db_info.yml,
ImageSets/480p/{train,val,trainval}.txt. Licence: CC BY 4.0 (DAVIS/README.md in the archive).
"""

from __future__ import annotations

import sys

from _download import Archive, fetch_and_extract, finish, script_parser

ARCHIVE = Archive(
    "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip", "0cb3cf9c5617209fa3cc4794e52a2ffa"
)


def main(argv: list[str] | None = None) -> int:
    args = script_parser(__doc__, "DAVIS").parse_args(argv)
    fetch_and_extract(ARCHIVE, args, strip_top=True)  # the zip holds DAVIS/...
    return finish("davis", args)


if __name__ == "__main__":
    sys.exit(main())
