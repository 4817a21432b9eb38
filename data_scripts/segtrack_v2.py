"""Download SegTrack-v2 (14 sequences, 1,066 frames, ~200 MB) into its official layout and verify it.

    python data_scripts/segtrack_v2.py [--target DIR] [--downloads DIR]

Result: <target>/JPEGImages/<seq>/, GroundTruth/<seq>/[<k>/], ImageSets/ (and the zip's stray
JPEGImages/CSI_NY.jpg, which the reader ignores). No md5 is published: the script prints it.
"""

from __future__ import annotations

import sys

from _download import Archive, fetch_and_extract, finish, script_parser

ARCHIVE = Archive("https://web.engr.oregonstate.edu/~lif/SegTrack2/SegTrackv2.zip")


def main(argv: list[str] | None = None) -> int:
    args = script_parser(__doc__, "SegTrackv2").parse_args(argv)
    fetch_and_extract(ARCHIVE, args, strip_top=True)  # the zip holds SegTrackv2/...
    return finish("segtrack", args)


if __name__ == "__main__":
    sys.exit(main())
