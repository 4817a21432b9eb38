"""The transcribed paper numbers agree with the paper's text, when a copy of it is found (a `paper/` folder
beside the data folder, or beside the checkout); otherwise the test skips and says so."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from fusionseg import paper_numbers as paper

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_text() -> str:
    candidates = [REPO_ROOT.parent / "shared" / "paper" / "fusionseg_cvpr2017.txt"]
    if os.environ.get("FUSIONSEG_DATA"):
        candidates.insert(0, Path(os.environ["FUSIONSEG_DATA"]).parent / "paper" / "fusionseg_cvpr2017.txt")
    for path in candidates:
        if path.is_file():
            return path.read_text()
    pytest.skip(f"the paper's text is not at any of {[str(p) for p in candidates]}")


def number_pattern(value: float) -> str:
    """A regex for `value` as the paper may print it (74.5 matches "74.50", 76 matches "76")."""
    text = f"{value:g}"
    return re.escape(text) + (r"0*" if "." in text else r"(?:\.0+)?") + r"(?![\d.])"


def block(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def in_order(values: list[float], text: str, gap: str = r"[\s\S]*?") -> bool:
    return re.search(gap.join(number_pattern(v) for v in values), text) is not None


def test_number_pattern_is_strict():
    assert re.fullmatch(number_pattern(74.5), "74.50")
    assert re.fullmatch(number_pattern(76), "76")
    assert not re.match(number_pattern(7.5), "75")
    assert not re.match(number_pattern(64.1), "64.15")


def test_table1_davis_matches_the_paper(paper_text):
    table = block(paper_text, "DAVIS: Densely Annotated", "Table 1:")
    assert in_order(list(paper.DAVIS_AVG.values()), table)
    assert paper.DAVIS_AVG["Ours-Joint"] == 71.51 and "overlap score of 71.51%" in paper_text


def test_table2_youtube_objects_columns_match_the_paper(paper_text):
    table = block(paper_text, "YouTube-Objects dataset (126 videos)", "Table 2:")
    for method, column in paper.YOUTUBE.items():
        assert in_order(list(column.values()), table, gap=r"\s+"), method
    assert sum(paper.YOUTUBE_CATEGORIES.values()) == 126


def test_table3_and_table4_match_the_paper(paper_text):
    table3 = block(paper_text, "Segtrack-v2 dataset (14 videos)", "Table 3:")
    assert in_order(list(paper.SEGTRACK_AVG.values()), table3)
    table4 = block(paper_text, "Top 10% moving", "Table 4:")
    moving = [paper.MOVING_STATIC[m][paper.MOVING] for m in ("Ours-A", "Ours-Joint")]
    static = [paper.MOVING_STATIC[m][paper.STATIC] for m in ("Ours-A", "Ours-Joint")]
    assert in_order(moving + static, table4, gap=r"\s+(?:Top 10% static\s+)?")


def test_pseudo_label_numbers_match_the_paper(paper_text):
    assert "left with 84,929" in paper_text and paper.PSEUDO_LABELS["frames_kept"] == 84929
    assert "is 77.8 (and 70.2 before pruning" in paper_text
    assert (
        paper.PSEUDO_LABELS["jaccard_vs_human"],
        paper.PSEUDO_LABELS["jaccard_vs_human_before_box_pruning"],
    ) == (
        77.8,
        70.2,
    )


def test_paper_table_long_format():
    table = paper.paper_table(paper.TABLE2)
    assert list(table.columns) == ["method", "human_in_loop", "column", "value"]
    assert len(table) == 10 * 11
    row = table[(table.method == "IVID") & (table.column == "cow")].iloc[0]
    assert (row.value, row.human_in_loop) == (79.1, True)
    with pytest.raises(ValueError, match="unknown table"):
        paper.paper_table("table9")
