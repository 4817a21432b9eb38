"""The end-to-end pipeline (`fusionseg.pipeline`): stage caching and resume on stand-in stages, the
Table 4 motion ranking and table formats on hand-made numbers, and the smoke chain end to end."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionseg import evaluate, pipeline, profiles
from fusionseg.paper_numbers import AVG, MOVING, STATIC
from fusionseg.stages import Stage, StageResult


@pytest.fixture()
def runs_tmp(tmp_path, monkeypatch) -> Path:
    """Redirect the pipeline's work dirs, the synthetic world and the caches to a temporary folder."""
    monkeypatch.setenv("FUSIONSEG_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FUSIONSEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "runs"


# ----------------------------------------------------------------------------------------------
# Caching, invalidation, force and resume, on stand-in stages (no training)


class FakeStages:
    """Stand-in stage specs: each body counts its calls and writes one output file."""

    def __init__(self) -> None:
        self.parameters = {stage: {"value": 1} for stage in pipeline.STAGES}
        self.calls = {stage: 0 for stage in pipeline.STAGES}
        self.fail_once: set[str] = set()
        self.profile_fields: dict[str, str] = {}  # stage -> a profile field its parameters include
        self.tables: set[str] = set()  # stages that also write a results table, results/<label>/<stage>.csv

    def stage(self, real: Stage) -> Stage:
        return dataclasses.replace(real, **self.spec(real.name))

    def spec(self, stage: str) -> dict:
        def parameters(profile):
            field = self.profile_fields.get(stage)
            return dict(self.parameters[stage]) | ({field: getattr(profile, field)} if field else {})

        def body(profile, deps):
            self.calls[stage] += 1
            out = pipeline.stage_dir(profile, stage) / "out.txt"
            partial = pipeline.stage_dir(profile, stage) / "partial.txt"
            if stage in self.fail_once:
                self.fail_once.discard(stage)
                partial.write_text("half done")
                raise KeyboardInterrupt  # an interruption, not an error
            out.write_text(str(self.parameters[stage]))
            outputs = {"out": str(out)}
            if stage in self.tables:
                table = pd.DataFrame({"value": [self.parameters[stage]["value"]]})
                outputs["table"] = pipeline._write(profile, stage, table)
            info = {"fingerprint": "f"} if stage == "data" else {}
            return outputs, info | {"partial_seen": partial.is_file()}

        return {"parameters": parameters, "body": body}


@pytest.fixture()
def fake(monkeypatch, runs_tmp, results_tmp) -> FakeStages:
    stages = FakeStages()
    chain = dataclasses.replace(pipeline.CHAIN, stages=tuple(map(stages.stage, pipeline.CHAIN.stages)))
    monkeypatch.setattr(pipeline, "CHAIN", chain)
    return stages


def statuses(results: dict[str, StageResult]) -> dict[str, str]:
    return {stage: result.status for stage, result in results.items()}


def test_second_run_is_cached_and_a_changed_parameter_recomputes_downstream_only(fake, capsys):
    profile = profiles.resolve("smoke")
    first = pipeline.run_all(profile)
    assert set(statuses(first).values()) == {"computed"}
    assert pipeline.read_stamp(profile, "motion")["complete"] is True

    second = pipeline.run_all(profile)
    assert set(statuses(second).values()) == {"cached"}
    assert all(fake.calls[stage] == 1 for stage in pipeline.CHAIN.for_profile(profile))
    assert "pseudo_labels  cached" in capsys.readouterr().out

    fake.parameters["pseudo_labels"]["value"] = 2
    third = statuses(pipeline.run_all(profile))
    recomputed = {stage for stage, status in third.items() if status == "computed"}
    # pseudo_labels -> motion -> fusion -> evaluate; data, appearance and flow are untouched
    assert recomputed == {"pseudo_labels", "motion", "fusion", "evaluate"}
    assert pipeline.stage(profile, "pseudo_labels").path("out").read_text() == "{'value': 2}"


def test_force_and_until(fake):
    profile = profiles.resolve("smoke")
    results = pipeline.run_all(profile, until="flow")
    assert list(results) == ["data", "flow"]
    assert fake.calls["appearance"] == fake.calls["pseudo_labels"] == 0
    pipeline.run_all(profile)
    forced = statuses(pipeline.run_all(profile, force=["fusion"]))
    assert forced["fusion"] == forced["evaluate"] == "computed"
    assert forced["motion"] == "cached"
    with pytest.raises(ValueError, match="unknown stage"):
        pipeline.run_all(profile, force=["training"])


def test_an_interrupted_stage_resumes_in_its_folder(fake):
    profile = profiles.resolve("smoke")
    fake.fail_once.add("motion")
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_all(profile)
    stamp = pipeline.read_stamp(profile, "motion")
    assert stamp["complete"] is False
    results = pipeline.run_all(profile)
    # the partial output survived: the stage resumed instead of starting from an empty folder
    assert results["motion"].info["partial_seen"] is True
    assert results["appearance"].status == "cached"
    assert results["motion"].status == "computed"


def test_a_changed_key_empties_the_stage_folder(fake):
    profile = profiles.resolve("smoke")
    pipeline.run_all(profile, until="appearance")
    stray = pipeline.stage_dir(profile, "appearance") / "stale.txt"
    stray.write_text("from the old parameters")
    fake.parameters["appearance"]["value"] = 3
    pipeline.run_all(profile, until="appearance")
    assert not stray.exists()


def test_an_ablation_reuses_the_stages_whose_key_another_label_computed(fake, results_tmp, capsys):
    """A flow-method ablation computes the flow and what depends on it; data and the appearance stream
    (same key as the profile's own) are copied from the profile's run, result tables included."""
    fake.profile_fields["flow"] = "flow_method"
    fake.tables = {"appearance", "evaluate"}
    base = profiles.resolve("smoke")
    pipeline.run_all(base)
    variant = profiles.resolve("smoke", {"flow_method": "deepflow"})
    stale = results_tmp / variant.label / "appearance.csv"  # from an older run of the label: replaced
    stale.parent.mkdir(parents=True)
    stale.write_text("value\n99\n")
    capsys.readouterr()

    results = statuses(pipeline.run_all(variant))
    assert results == {
        "data": "reused",
        "flow": "computed",
        "appearance": "reused",
        "pseudo_labels": "computed",
        "motion": "computed",
        "fusion": "computed",
        "evaluate": "computed",
    }
    assert "appearance     reusing smoke's" in capsys.readouterr().out
    assert fake.calls["appearance"] == fake.calls["data"] == 1 and fake.calls["flow"] == 2
    appearance = pipeline.stage(variant, "appearance")
    assert appearance.status == "cached"  # the copy is this label's own from now on
    assert appearance.path("out").parent == pipeline.stage_dir(variant, "appearance")
    assert appearance.path("out").read_text() == "{'value': 1}"
    assert appearance.path("table") == results_tmp / variant.label / "appearance.csv"
    assert stale.read_text() == (results_tmp / "smoke" / "appearance.csv").read_text() == "value\n1\n"
    assert (results_tmp / variant.label / "evaluate.csv").is_file()
    stamp = pipeline.read_stamp(variant, "appearance")
    assert stamp["reused_from"] == "smoke" and stamp["complete"]
    assert stamp["key"] == pipeline.read_stamp(base, "appearance")["key"]
    record = json.loads((results_tmp / variant.label / "provenance" / "appearance.json").read_text())
    assert record["profile"] == variant.label and record["parameters"]["reused_from"] == "smoke"
    timings = pd.read_csv(results_tmp / variant.label / "pipeline_timings.csv").set_index("stage")
    assert timings.loc["appearance", "status"] == "reused"

    assert set(statuses(pipeline.run_all(variant)).values()) == {"cached"}
    assert set(statuses(pipeline.run_all(base)).values()) == {"cached"}  # the source is untouched
    # the copy is independent: removing the source does not make the ablation recompute
    shutil.rmtree(pipeline.stage_dir(base, "appearance"))
    assert statuses(pipeline.run_all(variant))["appearance"] == "cached"


def test_reuse_needs_the_same_key_and_intact_outputs_and_force_never_reuses(fake):
    fake.profile_fields["flow"] = "flow_method"
    base = profiles.resolve("smoke")
    pipeline.run_all(base)
    # a source whose output changed since it completed is not reused (and not touched)
    (pipeline.stage_dir(base, "data") / "out.txt").write_text("damaged")
    variant = profiles.resolve("smoke", {"flow_method": "deepflow"})
    results = statuses(pipeline.run_all(variant))
    assert results["data"] == "computed" and results["appearance"] == "reused"
    assert (pipeline.stage_dir(base, "data") / "out.txt").read_text() == "damaged"
    # a different parameter: a different key, nothing to reuse there
    fake.parameters["appearance"]["value"] = 2
    other = statuses(pipeline.run_all(profiles.resolve("smoke", iterations=3)))
    assert other["data"] == "reused" and other["appearance"] == "computed"
    fake.parameters["appearance"]["value"] = 1
    # force recomputes even where a copy is available
    seed = profiles.resolve("smoke", {"flow_method": "farneback"})
    forced = statuses(pipeline.run_all(seed, force=["appearance"]))
    assert forced["appearance"] == "computed" and forced["data"] == "reused"
    # a stage interrupted in its own folder resumes there instead of being replaced by a copy
    fake.fail_once.add("appearance")
    tvl1 = profiles.resolve("smoke", {"flow_method": "tvl1"})
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_all(tvl1, force=["appearance"])
    resumed = pipeline.run_all(tvl1)
    assert resumed["appearance"].status == "computed" and resumed["appearance"].info["partial_seen"]


def test_cli_parses_profile_overrides(fake, capsys):
    from fusionseg.cli import main

    assert main(["reproduce", "--profile", "smoke", "-p", "iterations=3", "--until", "data"]) == 0
    out = capsys.readouterr().out
    assert "profile smoke+iterations=3" in out
    assert "results in" in out


# ----------------------------------------------------------------------------------------------
# Hand-computed pieces


def test_frame_motion_is_mean_magnitude_over_the_diagonal():
    flow = np.zeros((6, 8, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, 4.0  # |flow| = 5 everywhere; the diagonal of 6x8 is 10
    assert evaluate.frame_motion(flow) == pytest.approx(0.5)
    flow[:3] = 0.0  # half the frame still: mean magnitude 2.5
    assert evaluate.frame_motion(flow) == pytest.approx(0.25)


def test_moving_static_takes_the_top_and_bottom_tenth():
    motion = np.arange(20, dtype=float)  # frame k moves k
    rows = []
    for method, offset in (("Ours-A", 0.0), ("Ours-Joint", 0.5)):
        for k in range(20):
            rows.append(
                {
                    "method": method,
                    "sequence": "s",
                    "frame": f"{k:05d}",
                    "index": k,
                    "J": k / 100 + offset,
                    "motion": motion[k],
                }
            )
    rows.append({"method": "Flow-Th", "sequence": "s", "frame": "00000", "index": 0, "J": 1.0, "motion": 0.0})
    table = evaluate.moving_static(pd.DataFrame(rows), 0.1).set_index(["method", "subset"])
    assert table.loc[("Ours-A", MOVING), "n_frames"] == 2  # ceil(0.1 * 20)
    assert table.loc[("Ours-A", MOVING), "J_mean"] == pytest.approx((0.18 + 0.19) / 2)
    assert table.loc[("Ours-A", STATIC), "J_mean"] == pytest.approx((0.00 + 0.01) / 2)
    assert table.loc[("Ours-Joint", STATIC), "motion_max"] == 1.0
    assert "Flow-Th" not in table.index.get_level_values("method")


def test_moving_static_ranks_only_the_frames_every_method_has():
    """The official reference has no first and last frame: all methods are ranked without them."""
    rows = [
        {"method": method, "sequence": "s", "index": k, "J": k / 100, "motion": float(k)}
        for method in ("Ours-A", "Ours-Joint")
        for k in range(12)
    ]
    rows += [
        {"method": evaluate.REFERENCE, "sequence": "s", "index": k, "J": 0.5, "motion": float(k)}
        for k in range(1, 11)
    ]
    table = evaluate.moving_static(pd.DataFrame(rows), 0.1).set_index(["method", "subset"])
    assert table.loc[("Ours-A", MOVING), "n_frames"] == 1  # ceil(0.1 * 10 common frames)
    assert table.loc[("Ours-A", MOVING), "J_mean"] == pytest.approx(0.10)  # frame 11 left out
    assert table.loc[("Ours-A", STATIC), "J_mean"] == pytest.approx(0.01)  # frame 0 left out
    assert table.loc[(evaluate.REFERENCE, MOVING), "J_mean"] == pytest.approx(0.5)


def test_tables_from_per_sequence_scores():
    per_sequence = pd.DataFrame(
        {
            "method": ["Ours-A", "Ours-A", "Ours-A", "Flow-Th", "Flow-Th", "Flow-Th"],
            "sequence": ["a", "b", "c"] * 2,
            "category": ["cat", "cat", "dog"] * 2,
            "J_mean": [0.5, 0.7, 0.9, 0.1, 0.2, 0.3],
            "J_recall": [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            "J_decay": [0.0] * 6,
            "F_mean": [np.nan] * 6,
            "F_recall": [np.nan] * 6,
            "F_decay": [np.nan] * 6,
            "n_frames": [4, 4, 2, 4, 4, 2],
        }
    )
    detail = evaluate.detail_table(per_sequence).set_index("method")
    assert detail.loc["Ours-A", "J_mean"] == pytest.approx(0.7)
    assert detail.loc["Ours-A", "J_recall"] == pytest.approx(2 / 3)
    assert detail.loc["Ours-A", "n_frames"] == 10
    davis = evaluate.comparison_rows(per_sequence, "davis")
    assert list(davis.columns) == ["method", "column", "value"]
    assert davis.set_index("method").loc["Flow-Th", "value"] == pytest.approx(20.0)
    youtube = evaluate.comparison_rows(per_sequence, "youtube_objects").set_index(["method", "column"])
    assert youtube.loc[("Ours-A", "cat"), "value"] == pytest.approx(60.0)
    assert youtube.loc[("Ours-A", "dog"), "value"] == pytest.approx(90.0)
    assert youtube.loc[("Ours-A", AVG), "value"] == pytest.approx(70.0)  # over all sequences


# ----------------------------------------------------------------------------------------------
# The smoke chain, end to end

DETAIL_COLUMNS = [
    "method",
    "J_mean",
    "J_recall",
    "J_decay",
    "F_mean",
    "F_recall",
    "F_decay",
    "n_sequences",
    "n_frames",
]
SCORE_COLUMNS = ["J_mean", "J_recall", "F_mean", "F_recall"]


def _check_fractions(table: pd.DataFrame, columns: list[str], name: str) -> None:
    values = table[columns].to_numpy(dtype=float)
    values = values[~np.isnan(values)]
    assert values.size and ((values >= 0) & (values <= 1)).all(), f"{name}: scores outside [0, 1]"


@pytest.mark.slow
def test_smoke_chain_end_to_end(runs_tmp, results_tmp):
    profile = profiles.resolve("smoke")
    first = pipeline.run_all(profile)
    assert set(statuses(first).values()) == {"computed"}
    ledger = results_tmp / "smoke"

    detail = pd.read_csv(ledger / "table1_davis_detail.csv")
    assert list(detail.columns) == DETAIL_COLUMNS
    assert list(detail["method"]) == list(evaluate.METHODS)
    _check_fractions(detail, SCORE_COLUMNS, "table1_davis_detail")
    for dataset in ("davis", "youtube_objects", "segtrack"):
        per_frame = pd.read_csv(ledger / f"per_frame_{dataset}.csv")
        assert list(per_frame.columns) == [
            "method",
            "sequence",
            "category",
            "frame",
            "index",
            "J",
            "F",
            "motion",
        ]
        _check_fractions(per_frame, ["J"], f"per_frame_{dataset}")
        per_sequence = pd.read_csv(ledger / f"per_sequence_{dataset}.csv")
        assert set(per_sequence["method"]) == set(evaluate.METHODS)
    for table in ("table1_davis", "table2_youtube_objects", "table3_segtrack", "table4_moving_static"):
        long = pd.read_csv(ledger / f"{table}.csv")
        assert list(long.columns) == ["method", "column", "value"]
        assert long["value"].between(0, 100).all()
    categories = set(pd.read_csv(ledger / "table2_youtube_objects.csv")["column"])
    assert {"aeroplane", "train", AVG} <= categories
    table4 = pd.read_csv(ledger / "table4_detail.csv")
    assert set(table4["subset"]) == {MOVING, STATIC}
    assert (
        table4.query("subset == @MOVING")["motion_min"].to_numpy()
        >= table4.query("subset == @STATIC")["motion_max"].to_numpy()
    ).all()
    funnel = pd.read_csv(ledger / "pseudo_label_funnel.csv")
    assert funnel["frames"].iloc[0] > 0
    for stage in pipeline.CHAIN.for_profile(profile):
        assert (ledger / "provenance" / f"{stage}.json").is_file()

    start = time.perf_counter()
    second = pipeline.run_all(profile)
    assert set(statuses(second).values()) == {"cached"}
    assert time.perf_counter() - start < 20

    # Same label, another fusion iteration count: only fusion and evaluate run again.
    changed = dataclasses.replace(profile, fusion_iterations=profile.fusion_iterations + 2)
    third = statuses(pipeline.run_all(changed))
    assert {stage for stage, status in third.items() if status == "computed"} == {"fusion", "evaluate"}


def test_a_moved_runs_folder_stays_cached(fake, monkeypatch, runs_tmp):
    """Stamps name the outputs in their own folder relatively: a runs folder moved whole (a renamed
    clone, runs/ copied to another machine) is reused, not recomputed."""
    profile = profiles.resolve("smoke")
    pipeline.run_all(profile)
    stamp = json.loads((pipeline.stage_dir(profile, "motion") / "stage.json").read_text())
    assert stamp["outputs"]["out"] == "out.txt"
    moved = runs_tmp.with_name("moved-runs")
    runs_tmp.rename(moved)
    monkeypatch.setenv("FUSIONSEG_RUNS", str(moved))
    rerun = pipeline.run_all(profile)
    assert set(statuses(rerun).values()) == {"cached"}
    assert rerun["motion"].path("out") == moved / profile.label / "motion" / "out.txt"


def test_a_damaged_cache_entry_is_detected_and_recomputed(fake, capsys):
    profile = profiles.resolve("smoke")
    pipeline.run_all(profile)
    capsys.readouterr()
    # a stamp that is not JSON any more (a disk error, a hand edit): recomputed, with a message
    (pipeline.stage_dir(profile, "motion") / "stage.json").write_text('{"key": "trunc')
    rerun = statuses(pipeline.run_all(profile))
    assert "unreadable stamp" in capsys.readouterr().out
    assert rerun["motion"] == "computed" and rerun["appearance"] == "cached"
    # an output whose content changed since its stage completed: recomputed, with a message
    output = pipeline.stage_dir(profile, "appearance") / "out.txt"
    output.write_text("truncated")
    rerun = statuses(pipeline.run_all(profile))
    assert "outputs changed or damaged" in capsys.readouterr().out
    assert rerun["appearance"] == "computed" and rerun["flow"] == "cached"
    assert output.read_text() == "{'value': 1}"
