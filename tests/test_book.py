"""The book's machinery: sources, parameters, the unchanged-not-re-run stamps, failures, and the
smoke profile executed end to end into a temporary folder (slow)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from fusionseg import paper_numbers, profiles
from fusionseg.book import build as book
from fusionseg.book import notebook
from fusionseg.io import DataError

EXPECTED_CHAPTERS = [
    "00_introduction",
    "01_data",
    "02_appearance_stream",
    "03_pseudo_labels",
    "04_motion_stream",
    "05_fusion",
    "06_table1_davis",
    "07_table2_youtube_objects",
    "08_table3_segtrack",
    "09_table4_moving_static",
    "10_figure4_qualitative",
    "10b_ablations",
    "11_appendix_reproducibility",
    "12_appendix_performance",
    "13_appendix_implementation_notes",
]


# ------------------------------------------------------------------------------------------------
# The real book's sources


def test_book_has_every_part_in_order_with_the_standard_parameters():
    chapters = book.load_chapters()
    assert [chapter.name for chapter in chapters] == EXPECTED_CHAPTERS
    for chapter in chapters:
        assert chapter.source.suffix == ".md", chapter.source
        assert set(profiles.NOTEBOOK_PARAMETERS) <= set(chapter.parameters), chapter.name
    by_name = {chapter.name: chapter for chapter in chapters}
    assert by_name["05_fusion"].depends == ("02_appearance_stream", "04_motion_stream")
    reproducibility = EXPECTED_CHAPTERS.index("11_appendix_reproducibility")
    # the appendix needs every chapter of the method and the results, but not the ablations' extra runs
    before = set(EXPECTED_CHAPTERS[:reproducibility]) - {"10b_ablations"}
    assert set(by_name["11_appendix_reproducibility"].depends) == before
    assert by_name["10b_ablations"].depends == ("05_fusion",)


def test_with_dependencies_is_transitive_and_in_book_order():
    chapters = book.load_chapters()
    names = [chapter.name for chapter in book.with_dependencies(chapters, "09_table4_moving_static")]
    assert names == [
        "01_data",
        "02_appearance_stream",
        "03_pseudo_labels",
        "04_motion_stream",
        "05_fusion",
        "07_table2_youtube_objects",
        "09_table4_moving_static",
    ]
    with pytest.raises(book.BookError, match="no notebook called 'nope'"):
        book.with_dependencies(chapters, "nope")


# ------------------------------------------------------------------------------------------------
# Small pieces


def test_declared_parameters_reads_the_tagged_cell_only():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("untagged = 1"),
        nbformat.v4.new_code_cell("profile = 'mini'  # comment\nn: int = 3\nif n:\n    nested = 2\nx == 3\n"),
    ]
    nb.cells[1].metadata["tags"] = ["parameters"]
    assert book.declared_parameters(nb) == ("profile", "n")


def test_chapter_parameters_by_name_and_the_rest_in_overrides():
    chapter = book.Chapter("x", Path("x.md"), (), ("profile", "iterations", "overrides"))
    parameters = book.chapter_parameters(chapter, "mini", {"iterations": 5, "crop_size": 96})
    assert parameters == {"profile": "mini", "iterations": 5, "overrides": {"crop_size": 96}}
    assert book.chapter_parameters(chapter, "smoke", {}) == {"profile": "smoke"}
    closed = book.Chapter("y", Path("y.md"), (), ("profile",))
    with pytest.raises(book.BookError, match="no `overrides`"):
        book.chapter_parameters(closed, "mini", {"crop_size": 96})


def test_parse_overrides_reads_values_as_yaml():
    assert book.parse_overrides(["iterations=100", "device=cuda", "data_root=null", "crop_size = 96"]) == {
        "iterations": 100,
        "device": "cuda",
        "data_root": None,
        "crop_size": 96,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        book.parse_overrides(["iterations"])


def test_input_key_changes_with_each_input():
    base = ("text", {"profile": "mini"}, "lib", {"dep": "abc"})
    key = book.input_key(*base)
    assert book.input_key(*base) == key
    assert book.input_key("text2", *base[1:]) != key
    assert book.input_key(base[0], {"profile": "smoke"}, *base[2:]) != key
    assert book.input_key(*base[:2], "lib2", base[3]) != key
    assert book.input_key(*base[:3], {"dep": "abd"}) != key
    assert book.input_key(*base, {"FUSIONSEG_RESULTS": "/elsewhere"}) != key


def test_library_hash_follows_the_sources(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    first = book.library_hash(tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert book.library_hash(tmp_path) != first


def test_pruned_toc_drops_missing_files_and_empty_parts(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        textwrap.dedent(
            """\
            format: jb-book
            root: intro
            parts:
              - caption: A
                chapters:
                  - file: a1
                  - file: a2
              - caption: B
                chapters:
                  - file: b1
            """
        )
    )
    toc = book.read_toc(tmp_path)
    assert book.toc_order(tmp_path) == ["intro", "a1", "a2", "b1"]
    pruned = book.pruned_toc(toc, {"a2", "b1"})
    assert (pruned["root"], pruned["parts"]) == ("intro", [{"caption": "A", "chapters": [{"file": "a1"}]}])
    rerooted = book.pruned_toc(toc, {"intro", "a2"})
    assert (rerooted["root"], book.toc_files(rerooted)) == ("a1", ["a1", "b1"])


def test_remote_assets_finds_scripts_links_images_and_css_urls(tmp_path):
    (tmp_path / "page.html").write_text(
        '<a href="https://example.org/ok-a-link">x</a>'
        '<script src="_static/local.js"></script>'
        '<script defer src="https://cdn.example.org/lib.js"></script>'
        "<link rel='stylesheet' href='//fonts.example.org/f.css'>"
        '<img alt="" src="http://example.org/i.png">'
    )
    (tmp_path / "style.css").write_text("@font-face { src: url('https://fonts.example.org/a.woff2') }")
    found = book.remote_assets(tmp_path)
    assert found == [
        "page.html: https://cdn.example.org/lib.js",
        "page.html: //fonts.example.org/f.css",
        "page.html: http://example.org/i.png",
        "style.css: https://fonts.example.org/a.woff2",
    ]


def test_comparison_puts_every_ledger_profile_beside_the_paper(results_tmp):
    ours = pd.DataFrame({"method": ["Flow-Th", "Ours-A"], "column": ["Avg. IoU"] * 2, "value": [40.0, 55.5]})
    for label in ("real-lite", "mini"):
        (results_tmp / label).mkdir(parents=True)
        ours.to_csv(results_tmp / label / f"{paper_numbers.TABLE1}.csv", index=False)
    table = notebook.comparison(paper_numbers.TABLE1)
    assert list(table.columns) == [
        ("human in loop?", ""),
        ("Avg. IoU", paper_numbers.PAPER),
        ("Avg. IoU", "mini"),
        ("Avg. IoU", "real-lite"),
    ]
    assert table.loc["Ours-A", ("Avg. IoU", "real-lite")] == 55.5
    assert table.loc["Ours-Joint", ("Avg. IoU", paper_numbers.PAPER)] == 71.51
    assert pd.isna(table.loc["Ours-Joint", ("Avg. IoU", "mini")])
    assert table.loc["BVS", ("human in loop?", "")] == "yes"


FLOW_BASELINES_CSV = """\
source,baseline,camera_compensation,flow,saliency,split,n_sequences,J_mean,J_recall,J_decay,F_mean,F_recall,F_decay
ours,flow-th,True,dis,,val,20,0.4224,0.4080,0.0024,0.3036,0.0773,0.0141
ours,flow-sal,False,dis,fine_grained,val,20,0.1845,0.0251,0.0127,0.1935,0.0044,-0.0043
paper Table 1,flow-th,unknown,ce_liu,,trainval,50,0.4295,,,,,
"""


def test_real_flow_baselines_reads_the_wide_file_in_percent(results_tmp):
    assert notebook.real_flow_baselines() is None
    (results_tmp / "real-lite").mkdir(parents=True)
    (results_tmp / "real-lite" / "table1_flow_baselines.csv").write_text(FLOW_BASELINES_CSV)
    table = notebook.real_flow_baselines().reset_index()
    assert list(table["baseline"]) == ["Flow-Th", "Flow-Sal", "Flow-Th"]
    assert table.loc[0, "J_mean"] == pytest.approx(42.24)
    assert table.loc[1, "F_decay"] == pytest.approx(-0.43)
    assert table.loc[2, "J_mean"] == pytest.approx(42.95) and pd.isna(table.loc[2, "F_mean"])
    (results_tmp / "real-lite" / "table1_flow_baselines.csv").write_text("baseline,J_mean\nflow-th,0.4\n")
    with pytest.raises(DataError, match="table1_flow_baselines.csv: missing columns"):
        notebook.real_flow_baselines()


def test_stacked_results_and_detail_tables_label_each_profile(results_tmp):
    assert notebook.stacked_results("pseudo_label_quality") is None
    detail = pd.DataFrame({"method": ["Ours-A"], "J_mean": [0.5], "F_mean": [0.25], "n_sequences": [2]})
    for label in ("smoke", "real-lite"):
        (results_tmp / label).mkdir(parents=True)
        detail.to_csv(results_tmp / label / "table1_davis_detail.csv", index=False)
    stacked = notebook.stacked_results("table1_davis_detail")
    assert list(stacked["source"]) == ["smoke", "real-lite"] and stacked.columns[0] == "source"
    percent = notebook.detail_tables(paper_numbers.TABLE1)
    assert percent.loc[("real-lite", "Ours-A"), "J_mean"] == 50.0
    assert percent.loc[("smoke", "Ours-A"), "F_mean"] == 25.0
    assert percent.loc[("smoke", "Ours-A"), "n_sequences"] == 2


def test_for_display_rounds_and_marks_missing_numbers():
    table = pd.DataFrame({"a": [1.23456, float("nan")], "b": ["x", "y"]})
    shown = notebook.for_display(table)
    assert shown.loc[0, "a"] == 1.23 and shown.loc[1, "a"] == "–" and shown.loc[1, "b"] == "y"


def test_facts_table_prints_counts_as_integers():
    shown = notebook.facts_table(paper_numbers.PSEUDO_LABELS, "paper")
    assert shown.loc["imagenet_vid_training_videos", "paper"] == "3,862"
    assert shown.loc["imagenet_vid_boxes", "paper"] == "866,870"
    assert shown.loc["jaccard_vs_human", "paper"] == "77.8"
    assert shown.loc["human_checked_frames", "paper"] == "100"
    assert not any(value.endswith(".0") for value in shown["paper"])
    assert notebook.facts_table({"n": 2000.0, "lr": 0.001}, "x")["x"].tolist() == ["2,000", "0.001"]


@pytest.fixture()
def ledger_tmp(results_tmp, tmp_path, monkeypatch) -> Path:
    """This run's results in a temporary folder, and an empty committed reference beside it."""
    monkeypatch.setenv("FUSIONSEG_REFERENCE", str(tmp_path / "reference"))
    return results_tmp


def _ledger(root: Path, label: str, scores: dict[str, dict[str, float]]) -> None:
    """Hand-made benchmark tables of run `label`: {table name: {method: Avg. IoU}}."""
    (root / label).mkdir(parents=True, exist_ok=True)
    for name, by_method in scores.items():
        rows = [(method, paper_numbers.AVG, value) for method, value in by_method.items()]
        pd.DataFrame(rows, columns=["method", "column", "value"]).to_csv(
            root / label / f"{name}.csv", index=False
        )


def test_an_ablation_table_and_its_sentence_come_from_the_numbers(ledger_tmp):
    _ledger(ledger_tmp, "mini", {paper_numbers.TABLE1: {"Ours-M": 40.0, "Ours-Joint": 50.0}})
    variant = "mini+flow_method=deepflow"
    _ledger(ledger_tmp, variant, {paper_numbers.TABLE1: {"Ours-M": 43.25, "Ours-Joint": 49.0}})
    table = notebook.ablation_table("mini", variant)
    assert list(table.columns) == ["mini", variant, "change", paper_numbers.PAPER]
    assert table.loc[("DAVIS 2016", "Ours-M"), "change"] == pytest.approx(3.25)
    assert table.loc[("DAVIS 2016", "Ours-Joint"), paper_numbers.PAPER] == 71.51
    sentence = notebook.change_sentence(table, "DeepFlow instead of DIS", ["Ours-M", "Ours-Joint"])
    assert sentence.startswith(
        "DeepFlow instead of DIS changes Ours-M by +3.2 J points on DAVIS 2016 (40.0 → 43.2)"
    )
    assert "Ours-Joint by -1.0 J points" in sentence and "largest change is Ours-M" in sentence
    assert "nothing to compare" in notebook.change_sentence(table.iloc[:0], "x", ["Ours-M"])
    assert notebook.ablation_table("mini", "no-such-run")["change"].isna().all()
    assert notebook.ablation_table("none", "no-such-run").empty
    _ledger(ledger_tmp, "smoke", {paper_numbers.TABLE1: {"Ours-M": 10.0}})  # another profile: left out
    runs = notebook.own_ablations(profiles.resolve("mini"))
    assert list(runs.columns) == [paper_numbers.PAPER, "mini", variant]
    assert runs.loc["Ours-M", variant] == 43.25 and list(runs.index)[0] == "Flow-Th"


def test_the_fusion_design_table_names_each_design_and_its_size(ledger_tmp):
    _ledger(
        ledger_tmp,
        "mini",
        {
            paper_numbers.TABLE1: {"Ours-Joint": 44.0, "Ours-Joint (release)": 32.5},
            paper_numbers.TABLE3: {"Ours-Joint": 30.0, "Ours-Joint (release)": 31.0},
        },
    )
    training = pd.DataFrame({"design": ["paper", "release"], "parameters": [24, 374]})
    training.to_csv(ledger_tmp / "mini" / "fusion_training.csv", index=False)
    table = notebook.fusion_design_table("mini")
    assert list(table.index) == ["DAVIS 2016", "SegTrack-v2"]
    assert table.columns[0] == "paper design (Ours-Joint, 24 parameters)"
    assert table.columns[1] == "release design (Ours-Joint (release), 374 parameters)"
    assert table.iloc[0, 2] == pytest.approx(-11.5) and table.iloc[1, 3] == 61.40
    sentence = notebook.fusion_design_sentence(table)
    assert "-11.5 J points on DAVIS 2016, +1.0 J points on SegTrack-v2" in sentence
    assert "higher on 1 of 2 benchmarks" in sentence


def test_the_quality_ablation_compares_each_filter_with_the_full_pipeline(ledger_tmp):
    assert notebook.quality_ablation("mini") is None
    (ledger_tmp / "mini").mkdir(parents=True)
    rows = [
        ("all steps", 84, 84, 60.0, 60.0, 77.8),
        ("all steps, before pruning", 84, 84, 49.0, 48.0, 70.2),
        ("without box test", 294, 100, 25.0, 28.0, float("nan")),
    ]
    columns = ["variant", "frames_kept", "frames_sampled", "jaccard_sample", "jaccard_all", "paper_jaccard"]
    pd.DataFrame(rows, columns=columns).to_csv(ledger_tmp / "mini" / "pseudo_label_quality.csv", index=False)
    table = notebook.quality_ablation("mini")
    assert table.loc["without box test", "change (jaccard_all)"] == pytest.approx(-32.0)
    sentence = notebook.quality_sentence(table)
    assert "“without box test” keeps 294 frames (3.5x) at -32.0 J points" in sentence
    assert "(the paper: -7.6 J points before pruning, ours -12.0)" in sentence


def test_a_variant_changes_one_more_parameter_of_the_chapters_run():
    cfg = profiles.resolve("mini", iterations=600)
    variant = notebook.variant(cfg, {"flow_method": "deepflow"})
    assert variant.iterations == 600 and variant.flow_method == "deepflow"
    assert variant.label == "mini+flow_method=deepflow,iterations=600"
    nested = notebook.variant(cfg, {"pseudo_labels": {"flow_threshold": 20}})
    assert nested.pseudo_labels.flow_threshold == 20 and nested.iterations == 600


def test_stage_summary_keeps_the_facts_with_the_prefix(tmp_path):
    from fusionseg.stages import StageResult

    result = StageResult(
        "evaluate", tmp_path, "k", "cached", {}, 0.0, {"davis:Ours-A": 0.51234, "segtrack:Ours-A": 0.3}, 9.87
    )
    summary = notebook.stage_summary(result, prefix="davis:")
    assert list(summary.columns) == ["status", "compute_time_s", "davis:Ours-A"]
    assert (
        summary.loc["evaluate", "davis:Ours-A"] == 0.5123 and summary.loc["evaluate", "compute_time_s"] == 9.9
    )


def test_the_site_carries_each_chapters_source_and_the_download_button_links_it(tmp_path):
    from fusionseg.book import sphinx_sources

    book_dir, site = tmp_path / "book", tmp_path / "site"
    book_dir.mkdir()
    (book_dir / "first.md").write_text("# first\n")
    config = {"sphinx": {"config": {"extensions": ["myst_nb"]}}, "exclude_patterns": ["_build"]}
    assert book.chapter_sources(book_dir, ["first"], site, config) == {"first": "first.md"}
    assert (site / book.CHAPTER_SOURCES / "_sources" / "first.md").read_text() == "# first\n"
    settings = config["sphinx"]["config"]
    assert settings["extensions"] == ["myst_nb", book.SOURCES_EXTENSION]
    assert settings["html_extra_path"] == [book.CHAPTER_SOURCES]
    assert book.CHAPTER_SOURCES in config["exclude_patterns"]

    class App:
        class config:  # noqa: N801 (Sphinx's app.config)
            fusionseg_chapter_sources = settings["fusionseg_chapter_sources"]

    def group():
        return {
            "label": "download-buttons",
            "buttons": [{"label": "download-source-button"}, {"label": "download-pdf-button"}],
        }

    context = {"header_buttons": [group()], "pathto": lambda name, resource: name}
    sphinx_sources.add_chapter_source(App, "first", "page.html", context, None)
    buttons = context["header_buttons"][0]["buttons"]
    assert [b["label"] for b in buttons][1] == sphinx_sources.BUTTON_LABEL
    assert buttons[1]["url"] == "_sources/first.md" and buttons[1]["text"] == ".md"
    other = {"header_buttons": [group()], "pathto": lambda name, resource: name}
    sphinx_sources.add_chapter_source(App, "index", "page.html", other, None)  # a page without source
    assert len(other["header_buttons"][0]["buttons"]) == 2


# ------------------------------------------------------------------------------------------------
# The chain on a tiny two-notebook book (real kernels, no library imports)

TINY_CONFIG = "title: tiny\nexecute:\n  execute_notebooks: 'off'\n"
TINY_TOC = "format: jb-book\nroot: first\nchapters:\n  - file: second\n"


def tiny_notebook(depends: list[str], body: str) -> str:
    return textwrap.dedent(
        f"""\
        ---
        jupytext:
          text_representation:
            extension: .md
            format_name: myst
        fusionseg:
          depends: {depends}
        ---

        # A page

        ```{{code-cell}} ipython3
        :tags: [parameters]

        profile = "mini"
        overrides = {{}}
        ```

        ```{{code-cell}} ipython3
        {body}
        ```
        """
    )


@pytest.fixture()
def tiny_book(tmp_path) -> Path:
    root = tmp_path / "book"
    root.mkdir()
    (root / "_config.yml").write_text(TINY_CONFIG)
    (root / "_toc.yml").write_text(TINY_TOC)
    (root / "first.md").write_text(tiny_notebook([], "print('first', profile)"))
    (root / "second.md").write_text(tiny_notebook(["first"], "print('second', overrides)"))
    return root


def statuses(runs: list[book.ChapterRun]) -> list[str]:
    return [run.status for run in runs]


def test_chain_reuses_unchanged_notebooks_and_reruns_dependents(tiny_book, tmp_path, monkeypatch):
    chapters = book.load_chapters(tiny_book)
    profile = profiles.get_profile("smoke")
    out = tmp_path / "executed"
    runs = book.run_chain(chapters, profile, {"crop_size": 32}, out)
    assert statuses(runs) == ["executed", "executed"]
    executed = nbformat.read(out / "second.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for cell in executed.cells for o in cell.get("outputs", []))
    assert "second {'crop_size': 32}" in printed
    assert runs[1].peak_memory_mb is not None and runs[1].peak_memory_mb > 10
    assert statuses(book.run_chain(book.load_chapters(tiny_book), profile, {"crop_size": 32}, out)) == [
        "reused",
        "reused",
    ]
    (tiny_book / "second.md").write_text(tiny_notebook(["first"], "print('second, edited', overrides)"))
    assert statuses(book.run_chain(book.load_chapters(tiny_book), profile, {"crop_size": 32}, out)) == [
        "reused",
        "executed",
    ]
    (tiny_book / "first.md").write_text(tiny_notebook([], "print('first, edited', profile)"))
    assert statuses(book.run_chain(book.load_chapters(tiny_book), profile, {"crop_size": 32}, out)) == [
        "executed",
        "executed",
    ]
    monkeypatch.setenv("FUSIONSEG_RESULTS", str(tmp_path / "other-results"))
    assert statuses(book.run_chain(book.load_chapters(tiny_book), profile, {"crop_size": 32}, out)) == [
        "executed",
        "executed",
    ]


def test_chain_failure_names_notebook_and_cell_and_keeps_partial_output(tiny_book, tmp_path, capsys):
    (tiny_book / "second.md").write_text(tiny_notebook(["first"], "raise ValueError('broken on purpose')"))
    out = tmp_path / "executed"
    runs = book.run_chain(book.load_chapters(tiny_book), profiles.get_profile("smoke"), {}, out)
    assert statuses(runs) == ["executed", "failed"]
    message = capsys.readouterr().err
    assert "notebook second (second.md) failed at cell" in message
    assert "ValueError: broken on purpose" in message
    assert f"partial output kept: {out / 'second.ipynb'}" in message
    partial = nbformat.read(out / "second.ipynb", as_version=4)
    errors = [o for cell in partial.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["evalue"] == "broken on purpose"
    assert not book.stamp_path(out / "second.ipynb").exists()


# ------------------------------------------------------------------------------------------------
# The smoke profile end to end (shared with tests/test_book_browser.py)

_SMOKE_BOOK: dict[str, Path] = {}


def build_smoke_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Execute and render the smoke book once per test session; returns its build folder."""
    if "build" not in _SMOKE_BOOK:
        root = tmp_path_factory.mktemp("smoke_book")
        folders = {"FUSIONSEG_RESULTS": "results", "FUSIONSEG_CACHE": "cache", "FUSIONSEG_RUNS": "runs"}
        saved = {key: os.environ.get(key) for key in folders}
        os.environ.update({key: str(root / folder) for key, folder in folders.items()})
        try:
            code = book.build_book("smoke", build_dir=root / "build")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        assert code == 0, "the smoke book failed: see the captured output for the notebook and cell"
        _SMOKE_BOOK["build"] = root / "build"
        _SMOKE_BOOK["results"] = root / "results"
    return _SMOKE_BOOK["build"]


@pytest.mark.slow
def test_smoke_book_executes_every_notebook_and_renders_offline_html(tmp_path_factory):
    build = build_smoke_book(tmp_path_factory)
    executed = build / "executed" / "smoke"
    for name in EXPECTED_CHAPTERS:
        nb = nbformat.read(executed / f"{name}.ipynb", as_version=4)
        assert nb.metadata["papermill"]["exception"] is None, name
        code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert all(cell.execution_count is not None for cell in code_cells), name
        assert (build / "html" / f"{name}.html").is_file(), name
        # the download button offers the chapter's own source beside the executed notebook
        assert (build / "html" / "_sources" / f"{name}.md").is_file(), name
        page = (build / "html" / f"{name}.html").read_text()
        assert f'href="_sources/{name}.md"' in page and f'href="_sources/{name}.ipynb"' in page, name
    html = build / "html"
    assert (html / "index.html").is_file()
    assert (html / "_static" / "mathjax" / "tex-svg.js").is_file()
    assert book.remote_assets(html) == []
    record = json.loads((_SMOKE_BOOK["results"] / "smoke" / "provenance" / "book.json").read_text())
    assert list(record["notebooks"]) == EXPECTED_CHAPTERS
    assert all(entry["wall_time_s"] > 0 for entry in record["notebooks"].values())
    assert (_SMOKE_BOOK["results"] / "smoke" / f"{paper_numbers.TABLE1}.png").is_file()


@pytest.mark.slow
def test_smoke_book_shows_the_pipeline_results_not_placeholders(tmp_path_factory):
    build = build_smoke_book(tmp_path_factory)
    results = _SMOKE_BOOK["results"] / "smoke"
    for name in EXPECTED_CHAPTERS:
        text = (build / "executed" / "smoke" / f"{name}.ipynb").read_text()
        assert "Not yet implemented" not in text, name
    table1 = pd.read_csv(results / f"{paper_numbers.TABLE1}.csv")
    assert {"Flow-Th", "Flow-Sal", "Ours-A", "Ours-M", "Ours-Joint", "Ours-Joint (release)"} == set(
        table1["method"]
    )
    for figure in (
        "data_examples",
        "appearance_predictions",
        "motion_predictions",
        "fusion_training",
        "figure4_davis",
    ):
        assert (results / f"{figure}.png").is_file(), figure
    table1_page = nbformat.read(build / "executed" / "smoke" / "06_table1_davis.ipynb", as_version=4)
    shown = "".join(
        o.get("data", {}).get("text/html", "") for cell in table1_page.cells for o in cell.get("outputs", [])
    )
    assert "Ours-Joint (release)" in shown and paper_numbers.PAPER in shown


def test_per_sequence_comparison_pivots_j_by_method_with_a_mean_row(results_tmp):
    assert notebook.per_sequence_comparison() is None
    table = pd.DataFrame(
        {
            "method": ["Ours-Joint", "Ours-Joint", "FusionSeg (official)", "FusionSeg (official)"],
            "sequence": ["cows", "bmx", "cows", "bmx"],
            "J_mean": [0.5, 0.7, 0.9, 0.6],
        }
    )
    (results_tmp / "real-lite").mkdir(parents=True)
    table.to_csv(results_tmp / "real-lite" / "per_sequence_davis.csv", index=False)
    wide = notebook.per_sequence_comparison()
    assert list(wide.columns) == ["Ours-Joint", "FusionSeg (official)"]
    assert list(wide.index) == ["cows", "bmx", "mean"]  # the file's order, then the mean
    assert wide.loc["cows", "FusionSeg (official)"] == pytest.approx(90.0)
    assert wide.loc["mean", "Ours-Joint"] == pytest.approx(60.0)
