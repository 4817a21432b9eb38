"""`fusionseg bench`: the quick benchmark writes a complete record; FLOP counting is exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fusionseg import bench
from fusionseg.cli import main
from fusionseg.infer import INFERENCE_BATCH

SECTIONS = (
    "machine",
    "frames",
    "peak",
    "flow",
    "inference",
    "threads",
    "wait_policy",
    "joint",
    "training",
    "book",
)


def test_count_flops_of_one_convolution_matches_hand_count():
    """3x3 conv, 3 -> 8 channels, 16x16 output, batch 2: 2 * N * Cout * H * W * Cin * 9 (bias not counted)."""
    conv = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.rand(2, 3, 16, 16)
    assert bench.count_flops(lambda: conv(x)) == 2 * 2 * 8 * 16 * 16 * 3 * 9


def test_count_flops_of_a_depthwise_convolution_divides_by_groups():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    x = torch.rand(1, 4, 8, 8)
    assert bench.count_flops(lambda: conv(x)) == 2 * 4 * 8 * 8 * 1 * 9


def test_time_call_reports_the_median_and_load():
    calls = []
    timing = bench.time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5
    assert timing["repeats"] == 3 and len(timing["seconds_all"]) == 3
    assert timing["seconds"] == pytest.approx(sorted(timing["seconds_all"])[1], abs=1e-6)
    assert len(timing["load_start"]) == 3 and len(timing["load_end"]) == 3


def test_synthetic_frames_are_shifted_copies():
    a, b = bench.synthetic_frames(2, size=(40, 60), shift=(3, 2))
    assert a.shape == (40, 60, 3) and a.dtype == np.uint8
    # frame 2 = frame 1 moved right by 3 and down by 2
    np.testing.assert_array_equal(b[2:, 3:], a[:-2, :-3])


def test_machine_name_is_a_file_name_slug():
    name = bench.machine_name()
    assert name.endswith("c") and all(c.isalnum() or c == "-" for c in name)


def test_book_timings_reads_every_profiles_record(tmp_path):
    record = {"wall_time_s": 12.5, "peak_memory_mb": 300.0, "notebooks": {"01_data": {"wall_time_s": 2.0}}}
    path = tmp_path / "mini" / "provenance" / "book.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    found = bench.book_timings(tmp_path)
    assert found["mini"]["wall_time_s"] == 12.5
    assert found["mini"]["notebooks"]["01_data"]["wall_time_s"] == 2.0


def _positive(rows: list[dict], key: str) -> None:
    assert rows, f"no rows for {key}"
    for row in rows:
        assert row[key] > 0, row
        assert len(row["load_start"]) == 3


@pytest.mark.slow  # ~20 s on an idle 2-core CPU, more under load
def test_quick_bench_writes_a_complete_record(tmp_path, results_tmp):
    out = tmp_path / "bench" / "machine.json"
    threads = torch.get_num_threads()
    assert main(["bench", "--quick", "--threads", "1", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads  # restored
    record = json.loads(out.read_text())
    assert record["format"] == bench.FORMAT and record["quick"] is True
    for section in SECTIONS:
        assert section in record, section
    assert record["machine"]["name"] == bench.machine_name()
    assert record["machine"]["torch_threads"] == 1
    assert {row["dtype"] for row in record["peak"]} == {"fp32", "bf16"}
    _positive(record["peak"], "gflops")
    _positive(record["flow"], "fps")
    assert {row["method"] for row in record["flow"]} == {"dis-medium", "farneback"}
    _positive(record["inference"], "fps")
    _positive(record["inference"], "gflop_per_frame")
    _positive(record["threads"], "fps")
    _positive(record["training"], "images_per_s")
    assert {row["dtype"] for row in record["inference"]} == {"fp32", "bf16"}
    for row in record["joint"]:
        stages = row["per_frame"]["stage_ms_per_frame"]
        assert set(stages) == {"decode", "flow", "flow_image", "to_tensor", "appearance", "motion", "fusion"}
        assert all(ms > 0 for ms in stages.values())
        assert abs(sum(stages.values()) - row["per_frame"]["total_ms_per_frame"]) < 1e-6
        assert row["per_frame"]["fps"] > 0 and row["library_path"]["fps"] > 0
        assert row["per_frame"]["fold_batchnorm"] is True
        variants = [(v["fold_batchnorm"], v["overlap_flow"]) for v in row["library_variants"]]
        assert variants == [(False, False), (True, False), (True, True)]
        assert row["library_path"] == row["library_variants"][-1]  # the default path
        assert all(v["fps"] > 0 and v["batch_size"] == INFERENCE_BATCH for v in row["library_variants"])
        assert row["gflop_per_frame"] > 0 and row["network_achieved_gflops"] > 0
    assert record["wait_policy"] == []  # a full run only: it starts two more processes
    assert record["book"] == {}  # the temporary results folder holds no book run
    assert len(record["load_start"]) == 3 and len(record["load_end"]) == 3


def test_summary_names_each_joint_variant():
    variants = [
        {"fold_batchnorm": False, "overlap_flow": False, "fps": 6.8},
        {"fold_batchnorm": True, "overlap_flow": False, "fps": 7.5},
        {"fold_batchnorm": True, "overlap_flow": True, "fps": 8.3},
    ]
    row = {
        "width": 427,
        "height": 240,
        "dtype": "fp32",
        "target_fps": 10.0,
        "per_frame": {"fps": 6.0, "stage_ms_per_frame": {"flow": 7.8}},
        "library_path": variants[-1],
        "library_variants": variants,
    }
    record = {"peak": [{"dtype": "fp32", "gflops_best": 332.0}], "joint": [row]}
    text = bench.summary(record | {"load_start": [1, 1, 1], "load_end": [1, 1, 1]})
    assert "8.3 frames/s via predict_joint (target 10)" in text
    assert "unfolded BN, sequential flow: 6.8 frames/s" in text
    assert "folded BN, sequential flow: 7.5 frames/s" in text
    assert "folded BN, overlapped flow: 8.3 frames/s" in text


def test_latest_record_prefers_full_records_then_the_newest(tmp_path):
    assert bench.latest_record(tmp_path) is None
    runs = {
        "old-full": {"quick": False, "finished_at": "2026-01-01T10:00:00+0000"},
        "new-full": {"quick": False, "finished_at": "2026-01-02T10:00:00+0000"},
        "newest-quick": {"quick": True, "finished_at": "2026-01-03T10:00:00+0000"},
    }
    for name, fields in runs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({"format": bench.FORMAT, **fields}))
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    path, record = bench.latest_record(tmp_path)
    assert path.name == "new-full.json" and record["finished_at"].startswith("2026-01-02")
