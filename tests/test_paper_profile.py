"""The `paper` profile, the path a GPU user takes, run end to end on the CPU: fixture data in every
official layout (VOC+SBD, ImageNet VID with its XML, DAVIS, YouTube-Objects, SegTrack-v2),
ResNet-101 at a tiny crop for two iterations, through `fusionseg reproduce --profile paper -p ...`
and then the book's chapters. The numbers are meaningless (random ImageNet weights, 12x16 frames);
what is tested is that every stage and every chapter runs and writes its tables."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torchvision
from data_fixtures import write_davis, write_segtrack, write_vid, write_voc_sbd, write_youtube_objects

from fusionseg import cli
from fusionseg.data import DEFAULT_FOLDERS
from fusionseg.models.resnet_deeplab import torch_hub_checkpoint

SMALL = ["iterations=2", "fusion_iterations=2", "crop_size=24", "batch_size=2"]


@pytest.fixture()
def paper_data(tmp_path, monkeypatch):
    """A data root laid out as the paper profile expects it, and torchvision's ResNet-101 file where a
    GPU user's machine keeps it after a download (random weights in torchvision's format)."""
    root = tmp_path / "data"
    write_voc_sbd(root / DEFAULT_FOLDERS["voc"])
    write_vid(root / DEFAULT_FOLDERS["imagenet_vid"])
    write_davis(root / DEFAULT_FOLDERS["davis"])
    write_youtube_objects(root / DEFAULT_FOLDERS["youtube_objects"])
    write_segtrack(root / DEFAULT_FOLDERS["segtrack"])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(0)
    checkpoint = torch_hub_checkpoint()
    checkpoint.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet101().state_dict(), checkpoint)
    for name in ("RUNS", "CACHE", "RESULTS"):
        monkeypatch.setenv(f"FUSIONSEG_{name}", str(tmp_path / name.lower()))
    return root


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without a GPU gives")
def test_asking_for_cuda_without_a_gpu_fails_at_once_with_a_clear_message(paper_data, capsys):
    args = ["reproduce", "--profile", "paper", "-p", f"data_root={paper_data}", "--until", "appearance"]
    assert cli.main(args) == 1
    error = capsys.readouterr().err
    assert "asks for device 'cuda'" in error and "-p device=cpu" in error


@pytest.mark.slow
def test_the_paper_chain_and_its_book_run_end_to_end_on_the_cpu(paper_data, tmp_path):
    from fusionseg.book.build import build_book

    overrides = [f"data_root={paper_data}", "device=cpu", *SMALL]
    args = ["reproduce", "--profile", "paper", *[arg for o in overrides for arg in ("-p", o)]]
    assert cli.main(args) == 0
    ledger = tmp_path / "results" / "paper+batch_size=2,crop_size=24,fusion_iterations=2,iterations=2"
    appearance = pd.read_csv(ledger / "appearance_test_iou.csv")
    assert appearance["dataset"].tolist() == ["voc_val"] and appearance["n_images"].tolist() == [1]
    for table in ("table1_davis", "table2_youtube_objects", "table3_segtrack"):
        assert set(pd.read_csv(ledger / f"{table}.csv")["method"]) >= {"Ours-A", "Ours-M", "Ours-Joint"}
    assert set(pd.read_csv(ledger / "table4_moving_static.csv")["method"]) >= {"Ours-A", "Ours-Joint"}
    weights = torch.load(ledger.parents[1] / "runs" / ledger.name / "appearance" / "train" / "model.pt")
    assert weights["config"]["backbone"] == "resnet101" and weights["config"]["output_stride"] == 8

    book_overrides = dict(o.split("=", 1) for o in overrides)
    book_overrides = {
        k: (v if k == "data_root" else int(v) if v.isdigit() else v) for k, v in book_overrides.items()
    }
    assert build_book("paper", book_overrides, build_dir=tmp_path / "book", html=False) == 0
    executed = sorted((tmp_path / "book" / "executed").rglob("*.ipynb"))
    assert len(executed) >= 13
