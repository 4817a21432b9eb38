"""`fusionseg bench`: the quick benchmark writes a complete record; FLOP counting is exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fusionseg import bench, checkpoints, profiles
from fusionseg.checkpoints import cpu_has_bf16_instructions
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
    "segment",
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
    # bf16 is measured where the CPU computes in it, and not where oneDNN would emulate it
    expected = {"fp32", "bf16"} if cpu_has_bf16_instructions() else {"fp32"}
    assert set(record["dtypes"]) == expected
    assert {row["dtype"] for row in record["inference"]} == expected
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
    [segment] = record["segment"]  # `fusionseg segment` in its own process, timed by itself
    real_lite = profiles.get_profile("real-lite")
    assert segment["decoder"] == f"appearance {real_lite.decoder}, motion {real_lite.motion_decoder}"
    assert segment["frames"] == 3
    assert segment["loop_fps"] > 0 and 0 < segment["loop_s"] < segment["command_s"] < segment["process_s"]
    assert "fusionseg segment, 3 frames" in bench.summary(record)
    assert list(bench.segment_table(record).columns)[2] == "loop, frames/s"
    assert bench.segment_table({}).empty  # records made before it was measured
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


# ----------------------------------------------------------------------------------------------
# Reading a record: the tables and figures of the appendix 'Performance', on a small hand-made record


def _timed(seconds: float) -> dict:
    return {"seconds": seconds, "seconds_all": [seconds], "repeats": 1, "load_start": [0.5, 0.5, 0.5]}


def _record() -> dict:
    """A full record in miniature: two dtypes, two flow sizes, one inference setting, one joint size."""
    variants = [
        {"fold_batchnorm": False, "overlap_flow": False, "fps": 1 / 0.25, "batch_size": 8},
        {"fold_batchnorm": True, "overlap_flow": False, "fps": 1 / 0.2, "batch_size": 8},
        {"fold_batchnorm": True, "overlap_flow": True, "fps": 1 / 0.125, "batch_size": 8},
    ]
    joint = [
        {
            "height": 240,
            "width": 427,
            "dtype": dtype,
            "gflop_per_frame": 1.6,
            "network_achieved_gflops": achieved,
            "target_fps": 10.0,
            "per_frame": {
                "fps": 1000 / 160,
                "stage_ms_per_frame": {"decode": 10.0, "flow": 50.0, "appearance": 100.0},
            },
            "library_path": variants[-1],
            "library_variants": variants,
        }
        for dtype, achieved in (("fp32", 40.0), ("bf16", 30.0))
    ]
    return {
        "format": bench.FORMAT,
        "quick": False,
        "finished_at": "2026-01-02T10:00:00+0000",
        "machine": {
            "processor": "Test CPU",
            "cpu_count": 2,
            "torch_threads": 2,
            "bf16_native": False,
            "environment": {"OMP_WAIT_POLICY": "PASSIVE"},
        },
        "frames": "synthetic textured frames",
        "load_start": [0.5, 1.0, 1.0],
        "load_end": [3.25, 1.5, 1.0],
        "peak": [
            {
                "dtype": "fp32",
                "n": 2048,
                "gflops": 300.0,
                "gflops_best": 332.0,
                **_timed(0.05),
                "load_end": [1, 1, 1],
            },
            {
                "dtype": "bf16",
                "n": 2048,
                "gflops": 150.0,
                "gflops_best": 169.0,
                **_timed(0.1),
                "load_end": [1, 1, 1],
            },
        ],
        "flow": [
            {"method": "dis-medium", "height": 240, "width": 427, "fps": 1 / 0.02, **_timed(0.02)},
            {"method": "tvl1", "height": 240, "width": 427, "fps": 1 / 0.5, **_timed(0.5)},
            {"method": "dis-medium", "height": 480, "width": 854, "fps": 1 / 0.08, **_timed(0.08)},
        ],
        "inference": [
            {
                "backbone": "lite0",
                "output_stride": 16,
                "height": 240,
                "width": 427,
                "batch": 8,
                "dtype": dtype,
                "fps": 8 / seconds,
                "gflop_per_frame": 0.8,
                "achieved_gflops": 0.8 * 8 / seconds,
                "fraction_of_peak": 0.8 * 8 / seconds / peak,
                **_timed(seconds),
            }
            for dtype, seconds, peak in (("fp32", 0.25, 332.0), ("bf16", 0.5, 169.0))
        ],
        "threads": [
            {"threads": threads, "dtype": dtype, "fps": fps}
            for threads, dtype, fps in (
                (1, "fp32", 20.0),
                (1, "bf16", 15.0),
                (2, "fp32", 30.0),
                (2, "bf16", 22.0),
            )
        ],
        "wait_policy": [
            {
                "omp_wait_policy": "default",
                "threads": 2,
                "width": 427,
                "height": 240,
                "dtype": "fp32",
                "fps": 5.0,
                "load_start": [2, 2, 2],
                "load_end": [2, 2, 2],
            },
            {
                "omp_wait_policy": "passive",
                "threads": 2,
                "width": 427,
                "height": 240,
                "dtype": "fp32",
                "fps": 25.0,
                "load_start": [2, 2, 2],
                "load_end": [2, 2, 2],
            },
        ],
        "joint": joint,
        "training": [
            {
                "backbone": "lite0",
                "output_stride": 16,
                "crop_size": 128,
                "batch": 8,
                "dtype": "fp32",
                "images_per_s": 8 / 0.4,
                "gflop_per_image": 1.5,
                "flop_rule": "3 x forward",
                "achieved_gflops": 1.5 * 8 / 0.4,
                "fraction_of_peak": 1.5 * 8 / 0.4 / 332.0,
                **_timed(0.4),
            }
        ],
        "book": {
            "mini": {
                "wall_time_s": 299.4,
                "peak_memory_mb": 1502.8,
                "notebooks": {
                    "00_introduction": {"status": "executed", "wall_time_s": 1.0, "peak_memory_mb": 108.0},
                    "01_data": {"status": "cached", "wall_time_s": 14.5, "peak_memory_mb": 911.0},
                },
            }
        },
    }


def test_record_overview_names_the_record_and_notes_a_load_above_the_core_count(tmp_path):
    text = bench.record_overview(tmp_path / "test-cpu-2c.json", _record())
    assert "record: test-cpu-2c.json, full run finished 2026-01-02T10:00:00+0000" in text
    assert "machine: Test CPU, 2 cores, torch threads 2, native bf16: False" in text
    assert "load average (1, 5, 15 min): [0.5, 1.0, 1.0] at start, [3.25, 1.5, 1.0] at end" in text
    assert "note: up to 3.2 runnable processes shared 2 cores" in text
    assert text.splitlines()[-1] == "frames: synthetic textured frames"
    quiet = _record() | {"load_end": [1.5, 1.0, 1.0], "quick": True}
    text = bench.record_overview(tmp_path / "q.json", quiet)
    assert "quick run" in text and "note:" not in text


def test_peak_table_and_peak_gflops():
    table = bench.peak_table(_record())
    assert list(table.columns) == ["dtype", "n", "gflops_best", "gflops", "load_start", "load_end"]
    assert table.set_index("dtype").loc["bf16", "gflops_best"] == 169.0
    assert bench.peak_gflops(_record()) == {"fp32": 332.0, "bf16": 169.0}


def test_flow_table_has_a_column_per_size_fastest_method_first():
    table = bench.flow_table(_record())
    assert list(table.columns) == ["427x240", "854x480"]
    assert list(table.index) == ["dis-medium", "tvl1"]
    assert table.loc["dis-medium", "427x240"] == pytest.approx(50.0)  # 1 / 0.02 s
    assert table.loc["dis-medium", "854x480"] == pytest.approx(12.5)  # 1 / 0.08 s
    assert table.loc["tvl1", "427x240"] == pytest.approx(2.0)
    assert np.isnan(table.loc["tvl1", "854x480"])  # slow methods only at the first size


def test_inference_tables_name_each_setting():
    table = bench.inference_table(_record())
    assert list(table.columns) == [
        "setting",
        "dtype",
        "fps",
        "gflop_per_frame",
        "achieved_gflops",
        "fraction_of_peak",
    ]
    assert list(table["setting"]) == ["lite0 OS16 427x240 b8"] * 2
    fp32 = table.set_index("dtype").loc["fp32"]
    assert fp32["fps"] == pytest.approx(32.0)  # batch 8 in 0.25 s
    assert fp32["achieved_gflops"] == pytest.approx(25.6)
    by_dtype = bench.inference_fps_table(_record())
    assert by_dtype.loc["lite0 OS16 427x240 b8", "bf16"] == pytest.approx(16.0)  # batch 8 in 0.5 s


def test_joint_tables_per_dtype():
    record = _record()
    stages = bench.joint_stage_table(record)
    assert list(stages.index) == ["fp32", "bf16"]
    assert list(stages.columns) == ["decode", "flow", "appearance"]
    assert stages.loc["bf16", "flow"] == 50.0
    table = bench.joint_table(record)
    assert table.loc["fp32", "frame by frame, frames/s"] == pytest.approx(6.25)  # 160 ms per frame
    assert table.loc["fp32", "library path, frames/s"] == pytest.approx(8.0)  # the last variant: 0.125 s
    assert table.loc["bf16", "networks, achieved GFLOP/s"] == 30.0
    assert table.loc["bf16", "target, frames/s"] == 10.0


def test_joint_variants_table_names_each_speed_up_and_is_empty_for_older_records():
    record = _record()
    table = bench.joint_variants_table(record)
    assert len(table) == 6
    assert table.loc[("fp32", "unfolded", "sequential"), "frames/s"] == pytest.approx(4.0)  # 1 / 0.25 s
    assert table.loc[("bf16", "folded", "sequential"), "frames/s"] == pytest.approx(5.0)
    assert table.loc[("bf16", "folded", "overlapped"), "batch"] == 8
    for row in record["joint"]:
        del row["library_variants"]
    older = bench.joint_variants_table(record)
    assert older.empty and list(older.columns) == ["frames/s", "batch"]


def test_training_table_keeps_the_shown_columns():
    table = bench.training_table(_record())
    assert list(table.columns) == [
        "backbone",
        "crop_size",
        "batch",
        "dtype",
        "images_per_s",
        "gflop_per_image",
        "achieved_gflops",
        "fraction_of_peak",
    ]
    assert table.loc[0, "images_per_s"] == pytest.approx(20.0)  # batch 8 in 0.4 s
    assert table.loc[0, "achieved_gflops"] == pytest.approx(30.0)


def test_achieved_table_lists_inference_then_joint_then_training():
    table = bench.achieved_table(_record())
    assert list(table["what"]) == [
        "lite0 OS16 427x240 b8 fp32",
        "lite0 OS16 427x240 b8 bf16",
        "joint networks 427x240 fp32",
        "joint networks 427x240 bf16",
        "train lite0 128px b8 fp32",
    ]
    assert list(table["dtype"]) == ["fp32", "bf16", "fp32", "bf16", "fp32"]
    assert table["achieved"].tolist() == pytest.approx([25.6, 12.8, 40.0, 30.0, 30.0])


def test_threads_and_wait_policy_tables():
    record = _record()
    threads = bench.threads_table(record)
    assert list(threads.index) == [1, 2] and list(threads.columns) == ["bf16", "fp32"]
    assert threads.loc[2, "fp32"] == 30.0 and threads.loc[1, "bf16"] == 15.0
    policy = bench.wait_policy_table(record)
    assert list(policy.columns) == [
        "omp_wait_policy",
        "threads",
        "width",
        "height",
        "dtype",
        "fps",
        "load_start",
    ]
    assert policy.set_index("omp_wait_policy").loc["passive", "fps"] == 25.0
    assert bench.wait_policy_table(record | {"wait_policy": []}).empty  # a quick record
    del record["wait_policy"]  # a record made before the probe
    assert bench.wait_policy_table(record).empty


def test_book_runs_one_per_profile():
    (run,) = bench.book_runs(_record())
    assert run.label == "mini" and run.wall_time_s == 299.4
    assert list(run.notebooks.index) == ["00_introduction", "01_data"]
    assert run.notebooks.loc["01_data", "wall_time_s"] == 14.5
    assert run.notebooks.loc["00_introduction", "peak_memory_mb"] == 108.0
    assert bench.book_runs(_record() | {"book": {}}) == []


def test_figures_draw_the_tables():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = _record()
    try:
        flow = bench.flow_figure(record)
        assert len(flow.axes[0].patches) == 4  # 2 methods x 2 sizes (a NaN bar included)
        joint = bench.joint_stages_figure(record)
        assert joint.axes[0].get_title() == "joint pipeline at 427x240, frame by frame"
        achieved = bench.achieved_figure(record)
        ax = achieved.axes[0]
        assert [bar.get_width() for bar in ax.patches] == pytest.approx([25.6, 12.8, 40.0, 30.0, 30.0])
        assert [line.get_xdata()[0] for line in ax.lines] == [332.0, 169.0]  # the two peaks
        assert len(bench.inference_figure(record).axes[0].patches) == 2
        book = bench.book_figure(bench.book_runs(record)[0])
        assert book.get_suptitle() == "profile mini: 299.4 s in all"
    finally:
        plt.close("all")


def test_bf16_is_measured_only_on_a_cpu_with_bf16_instructions(monkeypatch, capsys):
    monkeypatch.setattr(checkpoints, "_cpu_flags", lambda: frozenset({"sse4_1", "avx2"}))
    assert not checkpoints.cpu_has_bf16_instructions()
    plan = bench.plan_for_this_cpu(bench.FULL)
    assert plan.dtypes == ("fp32",) and plan.inference == bench.FULL.inference
    assert "no bf16 instructions" in capsys.readouterr().out
    for flags in ({"avx2", "avx512_bf16"}, {"amx_bf16"}, {"fp", "asimd", "bf16"}):  # x86 and Arm
        monkeypatch.setattr(checkpoints, "_cpu_flags", lambda flags=flags: frozenset(flags))
        assert bench.plan_for_this_cpu(bench.FULL) is bench.FULL
