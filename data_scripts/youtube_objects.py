"""YouTube-Objects pixel masks (Jain & Grauman, ECCV 2014): 126 shots of 10 categories.

    python data_scripts/youtube_objects.py --url LINK   |   --archive FILE   [--target DIR]

The masks are distributed after registration, so the script cannot fetch them by itself; run it
without --url/--archive to see what to do. Result: <target>/youtube_masks/<category>/data/<NNNN>/
shots/001/{images,labels}/.
"""

from __future__ import annotations

import sys

from _download import add_registration_options, extract, finish, registered_archive, script_parser

REGISTER = """
The YouTube-Objects masks are distributed after a (free) registration:
  1. Open http://vision.cs.utexas.edu/projects/videoseg/data_download_register.html
  2. Fill in the form and accept the terms of use; the page then gives you the download link.
  3. Download the masks archive (it unpacks to youtube_masks/<category>/data/<NNNN>/shots/001/
     {images,labels}); the full videos are the separate YouTube-Objects v2.2 release (CALVIN,
     University of Edinburgh), which this project does not need.
  4. Run again with the link or the downloaded file:
       python data_scripts/youtube_objects.py --url 'LINK'
       python data_scripts/youtube_objects.py --archive path/to/the/archive
"""


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__, "YouTube-Objects")
    add_registration_options(parser)
    args = parser.parse_args(argv)
    archive = registered_archive(args, "youtube_masks.zip", None, REGISTER)
    if archive is None:
        return 2
    extract(archive, args.target, strip_top=False)  # keeps youtube_masks/ (the reader accepts both)
    return finish("youtube_objects", args)


if __name__ == "__main__":
    sys.exit(main())
