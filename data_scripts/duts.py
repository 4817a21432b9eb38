"""Download DUTS (DUTS-TR 10,553 and DUTS-TE 5,019 images with masks) and verify it.

    python data_scripts/duts.py [--target DIR] [--downloads DIR]

Result: <target>/DUTS-TR/DUTS-TR-{Image,Mask}/ and <target>/DUTS-TE/DUTS-TE-{Image,Mask}/.
No md5 is published: the script prints each archive's md5 for your records. Research use only.
"""

from __future__ import annotations

import sys

from _download import Archive, fetch_and_extract, finish, script_parser

ARCHIVES = (
    Archive("http://saliencydetection.net/duts/download/DUTS-TR.zip"),
    Archive("http://saliencydetection.net/duts/download/DUTS-TE.zip"),
)


def main(argv: list[str] | None = None) -> int:
    args = script_parser(__doc__, "DUTS").parse_args(argv)
    for archive in ARCHIVES:
        fetch_and_extract(archive, args, strip_top=False)  # each zip holds DUTS-TR/ or DUTS-TE/
    return finish("duts", args)


if __name__ == "__main__":
    sys.exit(main())
