"""`fusionseg train`: a stream on an image set or a folder of pairs, or (`--fusion`) the fusion layers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fusionseg.io import DataError
from fusionseg.models.decoder import DECODERS
from fusionseg.train.fusion import run_fusion
from fusionseg.train.stream import (
    OPTIMIZERS,
    FolderPairs,
    ImageSetPairs,
    PairDataset,
    TrainConfig,
    train_stream,
)


def load_pairs(dataset: str | None, split: str, root: Path | None, pairs_dir: Path | None) -> PairDataset:
    """The training pairs named on the command line: an image set (`--dataset`) or a folder (`--pairs`)."""
    if pairs_dir is not None:
        return FolderPairs(pairs_dir)
    from fusionseg.data import DEFAULT_FOLDERS, load_image_set
    from fusionseg.io import data_root

    folder = root if root is not None else data_root() / DEFAULT_FOLDERS[dataset]
    return ImageSetPairs(load_image_set(dataset, folder, split))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=["duts", "voc"], help="an image set (appearance stream)")
    source.add_argument(
        "--pairs", type=Path, help="a folder <dir>/images/*.png + <dir>/masks/*.png (label maps)"
    )
    source.add_argument(
        "--fusion", choices=["paper", "release"], help="fusion layers on two trained streams' logits"
    )
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--root", type=Path, help="dataset folder (default: $FUSIONSEG_DATA/<dataset>)")
    fusion = parser.add_argument_group("fusion training (--fusion)")
    fusion.add_argument("--videos", default="davis", help="held-out video dataset (default: davis)")
    fusion.add_argument("--appearance-weights", type=Path, help="trained appearance stream (.pt)")
    fusion.add_argument("--motion-weights", type=Path, help="trained motion stream (.pt)")
    fusion.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="working size of the logits")
    fusion.add_argument("--every", type=int, default=1, help="use every k-th annotated frame")
    fusion.add_argument("--flow-method", default="dis", help="optical flow for the motion stream")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints and model.pt")
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="global batch")
    parser.add_argument("--crop", type=int, default=defaults.crop_size, help="square crop size (px)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="base learning rate (poly schedule)")
    parser.add_argument(
        "--optimizer", default=defaults.optimizer, choices=list(OPTIMIZERS), help="sgd: the paper's solver"
    )
    parser.add_argument("--scale", type=float, nargs=2, default=defaults.scale_range, metavar=("MIN", "MAX"))
    parser.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    parser.add_argument("--backbone", default=defaults.backbone, choices=["lite0", "resnet101"])
    parser.add_argument("--output-stride", type=int, default=defaults.output_stride, choices=[8, 16])
    parser.add_argument(
        "--decoder",
        default=defaults.decoder,
        choices=list(DECODERS),
        help="none: the paper's head alone; skip4: refined at stride 4 with low-level features",
    )
    init = parser.add_mutually_exclusive_group()
    init.add_argument("--no-pretrained", action="store_true", help="random backbone (no ImageNet weights)")
    init.add_argument(
        "--init", type=Path, help="start from these weights (a stream .pt or a backbone state dict)"
    )
    parser.add_argument("--train-bn", action="store_true", help="update BatchNorm statistics")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        out_dir=str(args.out),
        iterations=args.iterations,
        batch_size=args.batch_size,
        crop_size=args.crop,
        lr=args.lr,
        optimizer=args.optimizer,
        scale_range=tuple(args.scale),
        flip=not args.no_flip,
        backbone=args.backbone,
        output_stride=args.output_stride,
        decoder=args.decoder,
        pretrained=str(args.init) if args.init else not args.no_pretrained,
        freeze_bn=not args.train_bn,
        precision="fp32" if args.fp32 else "auto",
        seed=args.seed,
        workers=args.workers,
        threads=args.threads,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )


def run_command(args: argparse.Namespace) -> int:
    try:
        if args.fusion:
            run_fusion(args)
        else:
            train_stream(config_from_args(args), load_pairs(args.dataset, args.split, args.root, args.pairs))
    except (DataError, ValueError) as exc:
        print(f"fusionseg train: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"weights: {args.out / 'model.pt'}")
    return 0
