"""ImageNet VID (ILSVRC2015): 3,862 training snippets with boxes and track ids, 86 GB.

    python data_scripts/imagenet_vid.py --url LINK   |   --archive ILSVRC2015_VID.tar.gz   [--target DIR]

The archive is distributed to registered users only; run without --url/--archive to see what to
do. Result: <target>/Data/VID/{train,val}/, Annotations/VID/..., ImageSets/VID/. Needs about
86 GB for the archive plus as much again for the extracted files.
"""

from __future__ import annotations

import sys

from _download import add_registration_options, extract, finish, registered_archive, script_parser

MD5 = "5feb88ac3345e5b5eae71f6ec8a91325"
REGISTER = f"""
ImageNet VID (ILSVRC2015_VID.tar.gz, 86 GB, md5 {MD5}) needs an ImageNet account:
  1. Create an account at https://image-net.org ("Sign up"; an institutional e-mail helps) and
     wait for it to be approved.
  2. Log in, open the download page of ILSVRC 2015 ("Object detection from video", VID), accept
     the terms of access and copy the link of ILSVRC2015_VID.tar.gz (or use a mirror you trust:
     the md5 above is checked either way).
  3. Run again with the link (the download resumes if interrupted) or with a file you fetched:
       python data_scripts/imagenet_vid.py --url 'LINK'
       python data_scripts/imagenet_vid.py --archive path/to/ILSVRC2015_VID.tar.gz
"""


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__, "ILSVRC2015")
    add_registration_options(parser)
    args = parser.parse_args(argv)
    archive = registered_archive(args, "ILSVRC2015_VID.tar.gz", MD5, REGISTER)
    if archive is None:
        return 2
    extract(archive, args.target, strip_top=True)  # the archive holds ILSVRC2015/...
    return finish("imagenet_vid", args)


if __name__ == "__main__":
    sys.exit(main())
