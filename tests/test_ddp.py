"""Two CPU processes under torchrun (gloo) train the same model as one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np
    import torch
    from torch import nn

    from fusionseg.train.stream import TrainConfig, train_stream

    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))

        def forward(self, x):
            return self.body(x)

    class Pairs:
        # images of different sizes, so that crops carry different numbers of padded (ignored) pixels
        def __init__(self):
            rng = np.random.default_rng(1)
            self.items = []
            for _ in range(7):
                h, w = rng.integers(10, 30, size=2)
                image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                self.items.append((image, (image[..., 1] > 100).astype(np.uint8)))

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            return self.items[index]

    config = TrainConfig(out_dir=sys.argv[1], iterations=5, batch_size=4, crop_size=16, lr=0.2,
                         precision="fp32", workers=0, checkpoint_every=5, progress=False, threads=1)
    torch.manual_seed(0)
    train_stream(config, Pairs(), TinyNet())
    """
)


def run(command: list[str], tmp_path: Path) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow  # three Python processes importing torch: 15-30 s on the shared 2-core machine
def test_two_gloo_processes_match_single_process_training(tmp_path):
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT)
    run([sys.executable, str(script), str(tmp_path / "single")], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run([*torchrun, str(script), str(tmp_path / "ddp")], tmp_path)

    single = torch.load(tmp_path / "single" / "model.pt", weights_only=True)["model"]
    ddp = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)["model"]
    initial = None
    for name, value in single.items():
        torch.testing.assert_close(ddp[name], value, rtol=1e-5, atol=1e-6, msg=name)
        initial = name
    assert initial is not None
    # both runs wrote the rank-0 checkpoint of the last iteration
    assert (tmp_path / "ddp" / "checkpoint-0000005.pt").is_file()
