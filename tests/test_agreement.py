"""`fusionseg agreement`: paths through the CPU as environments, and the side-by-side comparison."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from fusionseg.agreement import compare_runs, parse_path, path_folder, run_environment, summary
from fusionseg.cli import main
from fusionseg.io import DataError


def write_ledger(folder: Path, name: str, rows: list[tuple[str, str, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["method", "column", "value"]).to_csv(folder / f"{name}.csv", index=False)


def test_parse_path_reads_default_and_assignments():
    assert parse_path("default") == {}
    assert parse_path("ONEDNN_MAX_CPU_ISA=SSE41") == {"ONEDNN_MAX_CPU_ISA": "SSE41"}
    assert parse_path("ONEDNN_MAX_CPU_ISA=AVX2,OMP_NUM_THREADS=1") == {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OMP_NUM_THREADS": "1",
    }
    for bad in ("SSE41", "isa=SSE41", "OMP_NUM_THREADS=", "A=1,,B=2"):
        with pytest.raises(DataError, match="NAME=VALUE"):
            parse_path(bad)


def test_each_path_runs_in_its_own_folder_and_never_writes_the_reference(tmp_path):
    parent = {"FUSIONSEG_RESULTS": "/repo/results", "PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
    folder = path_folder("ONEDNN_MAX_CPU_ISA=SSE41", tmp_path)
    assert folder == tmp_path / "ONEDNN_MAX_CPU_ISA=SSE41"
    assert path_folder("A=1,B=2", tmp_path) != path_folder("A=1", tmp_path)
    environment = run_environment("ONEDNN_MAX_CPU_ISA=SSE41", folder, parent)
    assert environment["ONEDNN_MAX_CPU_ISA"] == "SSE41"
    assert environment["FUSIONSEG_RUNS"] == str(folder)
    assert environment["FUSIONSEG_RESULTS"] == str(folder / "results")  # not the recording parent's
    assert environment["PATH"] == "/bin"
    assert run_environment("default", folder, parent)["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"


def test_compare_runs_puts_every_ledger_value_side_by_side_with_its_spread(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_ledger(a, "table1_davis", [("Ours-A", "Avg. IoU", 43.1), ("Ours-M", "Avg. IoU", 47.1)])
    write_ledger(b, "table1_davis", [("Ours-A", "Avg. IoU", 44.0), ("Ours-M", "Avg. IoU", 39.9)])
    write_ledger(a, "table3_segtrack", [("Ours-A", "Avg. IoU", 11.6)])  # missing from b
    pd.DataFrame({"dataset": ["DUTS-TE"], "J_mean": [0.43]}).to_csv(
        a / "appearance_test_iou.csv"
    )  # not a ledger

    compared = compare_runs({"default": a, "SSE41": b})

    assert list(compared.columns) == [
        "table",
        "method",
        "column",
        "default",
        "SSE41",
        "spread",
        "within ±1.5",
    ]
    assert set(compared["table"]) == {"table1_davis", "table3_segtrack"}
    rows = compared.set_index(["table", "method"])
    assert rows.loc[("table1_davis", "Ours-A"), "spread"] == pytest.approx(0.9)
    assert rows.loc[("table1_davis", "Ours-A"), "within ±1.5"]
    assert rows.loc[("table1_davis", "Ours-M"), "spread"] == pytest.approx(7.2)
    assert not rows.loc[("table1_davis", "Ours-M"), "within ±1.5"]
    assert math.isnan(rows.loc[("table3_segtrack", "Ours-A"), "spread"])  # one run lacks it: not within
    assert not rows.loc[("table3_segtrack", "Ours-A"), "within ±1.5"]
    assert summary(compared) == "1 of 3 values agree within ±1.5 points; largest spread 7.20 points"


def test_compare_runs_fails_clearly_without_ledger_tables(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="no ledger table"):
        compare_runs({"x": tmp_path / "a", "y": tmp_path / "b"})


def test_the_command_refuses_fewer_than_two_paths_and_bad_paths(capsys):
    assert main(["agreement", "--profile", "smoke", "--path", "default", "--path", "default"]) == 1
    assert "at least two different paths" in capsys.readouterr().err
    assert main(["agreement", "--profile", "smoke", "--path", "default", "--path", "SSE41"]) == 1
    assert "NAME=VALUE" in capsys.readouterr().err


def test_the_overview_counts_each_recorded_runs_agreement_per_table(tmp_path, monkeypatch):
    from fusionseg.book import notebook as nbk

    columns = "table,method,column,default,OMP_NUM_THREADS=1,spread,within ±1.5\n"
    rows = {
        "mini": ["table1_davis,Ours-A,Avg. IoU,40,43,3,False", "table1_davis,Ours-M,Avg. IoU,40,41,1,True",
                 "table2_youtube_objects,Ours-A,car,20,20.5,0.5,True"],
        "mini+x=1": ["table1_davis,Ours-A,Avg. IoU,40,40.2,0.2,True"],
    }  # fmt: skip
    for label, lines in rows.items():
        (tmp_path / "ref" / label).mkdir(parents=True)
        (tmp_path / "ref" / label / "agreement.csv").write_text(columns + "\n".join(lines) + "\n")
    monkeypatch.setenv("FUSIONSEG_REFERENCE", str(tmp_path / "ref"))
    monkeypatch.setenv("FUSIONSEG_RESULTS", str(tmp_path / "own"))
    overview = nbk.agreement_overview()
    assert overview.loc[("mini", "table1_davis")].to_dict() == {
        "values": 2, "within": 1, "largest_spread": 3.0, "mean_spread": 2.0
    }  # fmt: skip
    assert overview.loc[("mini", "table2_youtube_objects"), "within"] == 1
    assert overview.loc[("mini+x=1", "table1_davis"), "largest_spread"] == 0.2
    monkeypatch.setenv("FUSIONSEG_REFERENCE", str(tmp_path / "none"))
    assert nbk.agreement_overview() is None
