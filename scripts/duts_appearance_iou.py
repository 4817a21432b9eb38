"""Mean IoU on DUTS-TE of an appearance stream: before training (the seeded initial network that
`fusionseg train` starts from) and after (a run folder's model.pt). Writes a JSON summary.

    python scripts/duts_appearance_iou.py --run .cache/runs/duts-lite0 --which before
    python scripts/duts_appearance_iou.py --run .cache/runs/duts-lite0 --which after
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from fusionseg.data import DEFAULT_FOLDERS, load_image_set
from fusionseg.infer import image_set_iou, load_stream
from fusionseg.io import data_root, write_json
from fusionseg.models import build_stream
from fusionseg.train import load_checkpoint


def untrained(run: Path) -> torch.nn.Module:
    """The network `train_stream` builds before its first step: seeded with the run's seed."""
    config = load_checkpoint(run / "model.pt")["config"] if (run / "model.pt").is_file() else {}
    torch.manual_seed(config.get("seed", 0))
    return build_stream(config.get("backbone", "lite0"), config.get("output_stride", 16), True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--which", choices=["before", "after"], required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = untrained(args.run) if args.which == "before" else load_stream(args.run / "model.pt")
    test = load_image_set("duts", data_root() / DEFAULT_FOLDERS["duts"], "test")
    start = time.perf_counter()
    scores = image_set_iou(model, test)
    seconds = time.perf_counter() - start
    summary = {
        "which": args.which,
        "images": len(scores),
        "mean_iou": float(np.mean(scores)),
        "seconds": round(seconds, 1),
        "images_per_second": round(len(scores) / seconds, 2),
    }
    write_json(args.run / f"duts_te_{args.which}.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
