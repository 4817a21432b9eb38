"""Helpers the book's notebooks share: the ledger's tables beside the paper's, the committed real-data
results, small figures of the pipeline's outputs, and honest notices.

The notebooks tell the story and call the pipeline (`fusionseg.pipeline`) stage they present; what
several of them need lives here. Table notebooks call `comparison(TABLE1)` to show the paper's
numbers beside every profile found in `results/` (so the committed real-data numbers appear even
when the reader's own run is `mini`), and `absent(...)` where a profile genuinely lacks something
(e.g. a benchmark), instead of showing numbers that no code produced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionseg import paper_numbers
from fusionseg.profiles import PROFILES, Profile, flatten_overrides, resolve
from fusionseg.results import TOLERANCE_J, recording, reference_root, results_root

REAL_LITE = "real-lite"  # the committed real-data run (DAVIS 2016 + DUTS)


def setup(profile: str, overrides: dict[str, Any] | None = None, **fields: Any) -> Profile:
    """Every chapter's first call: the run's profile from the chapter's parameters cell
    (`fusionseg.profiles.resolve`), announced with its label, so that a reader sees which run the
    chapter shows and where an ablation's numbers go."""
    cfg = resolve(profile, overrides, **fields)
    changed = ", ".join(f"{key}={value}" for key, value in cfg.overrides) or "none"
    print(f"profile {cfg.label}: {cfg.description}")
    print(f"changed from the {cfg.name} profile: {changed}; results in results/{cfg.label}/")
    return cfg


def absent(what: str, why: str) -> None:
    """Show a notice that `what` is not shown for this profile, and why (no numbers are invented)."""
    from IPython.display import Markdown, display

    display(
        Markdown(
            f":::{{admonition}} Not available here\n:class: note\n{what}: {why}. "
            "This cell shows no numbers rather than invented ones.\n:::"
        )
    )


# ------------------------------------------------------------------------------------------------
# The results ledger: the committed reference (results/) and this checkout's own runs (runs/results/)

RUN_SUFFIX = " (this run)"  # how the tables name a reader's own run beside the committed reference


def _labels(root: Path, table: str | None) -> list[str]:
    """Run labels under `root` (holding `<table>.csv` when given): presets first, then others."""
    if not root.is_dir():
        return []
    labels = [
        p.name for p in root.iterdir() if p.is_dir() and (table is None or (p / f"{table}.csv").is_file())
    ]
    presets = [name for name in PROFILES if name in labels]
    return presets + sorted(set(labels) - set(presets) - {"bench"})


def ledger_sources(table: str | None = None) -> list[tuple[str, Path]]:
    """(source name, folder) of every run that holds `<table>.csv`: the committed reference's labels
    first ("real-lite", "mini"), then this checkout's own runs ("mini (this run)")."""
    sources = [(label, reference_root() / label) for label in _labels(reference_root(), table)]
    if not recording():
        sources += [(label + RUN_SUFFIX, results_root() / label) for label in _labels(results_root(), table)]
    return sources


def ledger_labels(table: str | None = None) -> list[str]:
    """The source names of `ledger_sources`."""
    return [name for name, _ in ledger_sources(table)]


def ledger_table(name: str) -> pd.DataFrame:
    """Every source's `<name>.csv` stacked, with a `source` column naming it (`ledger_sources`)."""
    frames = [
        pd.read_csv(folder / f"{name}.csv").assign(source=source) for source, folder in ledger_sources(name)
    ]
    if not frames:
        return pd.DataFrame(columns=["method", "column", "value", "source"])
    return pd.concat(frames, ignore_index=True)


def result_path(label: str, name: str) -> Path:
    """`<label>/<name>` from this checkout's own run if it made it, else from the committed reference."""
    own = results_root() / label / name
    return own if own.exists() else reference_root() / label / name


def result_table(label: str, name: str) -> pd.DataFrame | None:
    """`<name>.csv` of run `label` (`result_path`), or None when no run wrote it."""
    path = result_path(label, f"{name}.csv")
    return pd.read_csv(path) if path.is_file() else None


def run_vs_reference(name: str, label: str) -> pd.DataFrame | None:
    """This run's numbers of the ledger table `name` (method, column, value in percent) beside the
    committed reference's for the same label, with the difference and whether it is within
    `TOLERANCE_J`; None when either is missing (or this run is the reference being recorded)."""
    own, committed = results_root() / label / f"{name}.csv", reference_root() / label / f"{name}.csv"
    if recording() or not (own.is_file() and committed.is_file()):
        return None
    keys = ["method", "column"]
    both = pd.read_csv(committed).merge(
        pd.read_csv(own), on=keys, how="outer", suffixes=(" committed", " this run")
    )
    both = both.rename(columns={"value committed": "committed", "value this run": "this run"})
    both["difference"] = both["this run"] - both["committed"]
    both[f"within ±{TOLERANCE_J}"] = both["difference"].abs() <= TOLERANCE_J
    return both.set_index(keys)


def reference_check(name: str, label: str) -> pd.DataFrame | None:
    """Show `run_vs_reference` and say plainly whether this run reproduces the committed numbers."""
    from IPython.display import Markdown, display

    table = run_vs_reference(name, label)
    if table is None:
        display(Markdown(f"*No comparison with a committed reference: this checkout has no run of `{label}` "
                         "beside the committed one (or this run is recording the reference).*"))  # fmt: skip
        return None
    outside = table[~table.iloc[:, -1].astype(bool)]
    if outside.empty:
        verdict = f"Your run agrees with the committed `{label}` reference within ±{TOLERANCE_J} J points on every method."
    else:
        rows = ", ".join(f"{m} ({c}): {d:+.1f}" for (m, c), d in outside["difference"].items())
        verdict = (f"**Your run differs from the committed `{label}` reference by more than ±{TOLERANCE_J} "
                   f"J points** for {rows}. See the reproducibility appendix for what moves between machines.")  # fmt: skip
    display(Markdown(verdict))
    return table.round(2)


def agreement_check(label: str) -> pd.DataFrame | None:
    """Show `fusionseg agreement`'s table of `label` (two paths through the CPU, every ledger value
    side by side) and say plainly how many values differ by more than `TOLERANCE_J`."""
    from IPython.display import Markdown, display

    from fusionseg.agreement import summary

    table = result_table(label, "agreement")
    if table is None:
        display(Markdown(f"*No agreement run of `{label}` yet: `fusionseg agreement --profile {label}` makes one "
                         "(two chains, about twice the time of `fusionseg reproduce`).*"))  # fmt: skip
        return None
    within = table.iloc[:, -1].astype(bool)
    verdict = summary(table)
    if within.all():
        display(Markdown(f"The two runs agree: {verdict}."))
    else:
        display(Markdown(f"**The two runs disagree beyond ±{TOLERANCE_J} J points on {int((~within).sum())} "
                         f"values:** {verdict}."))  # fmt: skip
    return table.set_index(["table", "method", "column"]).round(2)


def agreement_overview() -> pd.DataFrame | None:
    """Every recorded `fusionseg agreement` run, per table: how many values it compared, how many agree
    within the tolerance, and the largest and mean spread (points); None when there is none."""
    table = ledger_table("agreement")
    if table.empty:
        return None
    within = table.filter(like="within").fillna(False).astype(bool).any(axis=1)
    grouped = table.assign(within=within).groupby(["source", "table"], sort=False)
    return grouped.agg(
        values=("spread", "size"), within=("within", "sum"), largest_spread=("spread", "max"),
        mean_spread=("spread", "mean"),
    ).round(2)  # fmt: skip


def comparison(name: str, index: str = "method") -> pd.DataFrame:
    """The paper's table `name` beside every profile's numbers from the ledger.

    Both are in the long format (method, column, value). `index="method"` gives one row per
    method and a column per (benchmark column, source); `index="column"` one row per benchmark
    column (e.g. a YouTube-Objects category) and a column per (method, source).
    """
    paper = paper_numbers.paper_table(name).assign(source=paper_numbers.PAPER)
    ours = ledger_table(name)
    stacked = pd.concat([paper, ours[["method", "column", "value", "source"]]], ignore_index=True)
    other = "column" if index == "method" else "method"
    wide = stacked.pivot_table(
        index=index, columns=[other, "source"], values="value", aggfunc="first", sort=False
    )
    sources = [paper_numbers.PAPER, *ledger_labels(name)]
    order = [
        (key, src) for key in dict.fromkeys(stacked[other]) for src in sources if (key, src) in wide.columns
    ]
    wide = wide[order]
    if index == "method":
        humans = [paper_numbers.HUMAN_IN_LOOP.get(method) for method in wide.index]
        wide.insert(0, ("human in loop?", ""), ["yes" if h else "no" if h is False else "" for h in humans])
    return wide


def comparison_figure(name: str, title: str = "") -> Any:
    """A grouped bar chart of `comparison(name)`: one group per method, one bar per (column, source)."""
    import matplotlib.pyplot as plt

    table = comparison(name, index="method").drop(columns=[("human in loop?", "")])
    methods = list(table.index)
    bars = list(table.columns)
    width = 0.8 / max(len(bars), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(methods) * max(1, len(bars) / 3)), 3.2))
    for number, column in enumerate(bars):
        values = table[column].to_numpy(dtype=float)
        positions = [i + (number - (len(bars) - 1) / 2) * width for i in range(len(methods))]
        label = column[1] if column[0] == paper_numbers.AVG else f"{column[0]} ({column[1]})"
        ax.bar(positions, values, width=width, label=label)
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    ax.set_ylabel("Jaccard (IoU), %")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    if len(bars) <= 12:
        ax.legend(fontsize="small", ncols=2 if len(bars) > 4 else 1)
    fig.tight_layout()
    return fig


def for_display(table: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """`table` rounded, with "–" where a source has no number (as text, so pandas keeps the dtype rules)."""
    rounded = table.round(decimals)
    return rounded.astype(object).where(rounded.notna(), "–")


def facts_table(facts: dict[str, Any], name: str) -> pd.DataFrame:
    """A column of facts (counts and scores, e.g. `paper_numbers.PSEUDO_LABELS`) for display: counts
    as integers with thousands separators ("866,870", never "866870.0"), other numbers as written."""

    def text(value: Any) -> str:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return f"{int(value):,}"
        if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)

    return pd.DataFrame({name: [text(value) for value in facts.values()]}, index=list(facts))


def detail_tables(name: str) -> pd.DataFrame:
    """Every profile's `<name>_detail.csv` (J and F statistics, fractions) in percent, one row per
    (source, method)."""
    table = ledger_table(f"{name}_detail")
    if table.empty:
        return table
    return _in_percent(table).set_index(["source", "method"])


def _in_percent(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with its J and F statistics (columns `J_*`, `F_*`, fractions) multiplied by 100, in place."""
    scores = [c for c in table.columns if c[:2] in ("J_", "F_")]
    table[scores] = 100 * table[scores]
    return table


# ------------------------------------------------------------------------------------------------
# The committed real-data results that are not in the ledger format

FLOW_VARIANT_COLUMNS = [
    "source",
    "baseline",
    "camera_compensation",
    "flow",
    "saliency",
    "split",
    "n_sequences",
]


def real_flow_baselines(label: str = REAL_LITE) -> pd.DataFrame | None:
    """`results/<label>/table1_flow_baselines.csv` (one row per baseline x variant x flow method x
    split, J/F as fractions; the paper's two rows included) with J and F in percent; None if absent."""
    table = result_table(label, "table1_flow_baselines")
    if table is None:
        return None
    missing = sorted(set(FLOW_VARIANT_COLUMNS) - set(table.columns))
    if missing:
        from fusionseg.io import DataError

        raise DataError(f"{result_path(label, 'table1_flow_baselines.csv')}: missing columns {missing}")
    from fusionseg.evaluate import BASELINE_METHODS

    table = _in_percent(table)
    names = {baseline: method for method, baseline in BASELINE_METHODS.items()}
    table["baseline"] = table["baseline"].map(names).fillna(table["baseline"])
    return table.set_index(FLOW_VARIANT_COLUMNS)


def per_sequence_comparison(label: str = REAL_LITE, dataset: str = "davis") -> pd.DataFrame | None:
    """J mean per sequence (rows) and method (columns) of a run, in percent, with a last row "mean";
    from `results/<label>/per_sequence_<dataset>.csv`; None when that run did not write it."""
    table = result_table(label, f"per_sequence_{dataset}")
    if table is None:
        return None
    wide = table.pivot_table(index="sequence", columns="method", values="J_mean", sort=False) * 100
    wide = wide[list(dict.fromkeys(table["method"]))]
    wide.loc["mean"] = wide.mean()
    wide.columns.name = None
    return wide


def committed_figure(name: str, what: str, label: str = REAL_LITE) -> None:
    """Display `results/<label>/<name>.png` (a committed run's figure), or say that it is absent."""
    from IPython.display import Image, display

    path = result_path(label, f"{name}.png")
    if path.is_file():
        display(Image(filename=str(path)))
    else:
        absent(what, f"{path} is not in this checkout")


def stacked_results(name: str) -> pd.DataFrame | None:
    """Every profile's `<name>.csv` (any columns) stacked with a leading `source` column; None if none."""
    table = ledger_table(name)
    if table.empty:
        return None
    return table[["source", *[c for c in table.columns if c != "source"]]]


# ------------------------------------------------------------------------------------------------
# Pipeline outputs as figures and small tables


def stage_summary(result: Any, prefix: str = "") -> pd.DataFrame:
    """One `fusionseg.stages.StageResult` as a one-row table: status, time it took, and its facts (those whose
    name starts with `prefix`, e.g. "davis:" for the evaluate stage's scores on DAVIS)."""
    info = {
        key: round(value, 4) if isinstance(value, float) else value
        for key, value in result.info.items()
        if key.startswith(prefix)
    }
    row = {"stage": result.stage, "status": result.status, "compute_time_s": round(result.compute_time_s, 1)}
    return pd.DataFrame([row | info]).set_index("stage")


def image_grid(rows: Sequence[Sequence[tuple[str, np.ndarray | None]]], size: float = 2.0) -> Any:
    """A figure with one row per sequence of (title, image) panels; boolean images are drawn grey,
    None leaves the panel blank but for its title."""
    import matplotlib.pyplot as plt

    n_cols = max(len(row) for row in rows)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(size * n_cols, size * 0.8 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(row):
                continue
            title, image = row[c]
            ax.set_title(title, fontsize=8)
            if image is not None and image.ndim == 2:
                ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            elif image is not None:
                ax.imshow(image)
    fig.tight_layout()
    return fig


def draw_boxes(
    image: np.ndarray, boxes: Sequence[Any], color: tuple[int, int, int] = (255, 220, 0)
) -> np.ndarray:
    """A copy of `image` with each box's outline drawn (2 px)."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    for box in boxes:
        cv2.rectangle(out, (int(box.x0), int(box.y0)), (int(box.x1) - 1, int(box.y1) - 1), color, 2)
    return out


def middle_annotated(video: Any) -> int:
    """The annotated frame in the middle of a video (every frame when none is annotated)."""
    indices = video.annotated_indices or list(range(len(video)))
    return indices[len(indices) // 2]


def stream_masks(weights: Path, images: Sequence[np.ndarray], device: str = "cpu") -> list[np.ndarray]:
    """A trained stream's boolean masks on `images` (frames for appearance, flow images for motion)."""
    from fusionseg.checkpoints import load_stream
    from fusionseg.infer import masks_from, predict_video

    model = load_stream(weights).to(device)
    return masks_from(predict_video(model, images))


QUALITATIVE_METHODS = ("Ours-A", "Ours-M", "Ours-Joint", "Ours-Joint (release)")


def qualitative_rows(profile: Profile, dataset: str, split: str | None, n_videos: int = 3) -> list[list]:
    """Figure 4 rows for `n_videos` evenly spread videos of a benchmark: frame, flow image, the masks the
    evaluate stage wrote for each of QUALITATIVE_METHODS, and the ground truth (middle annotated frame)."""
    from fusionseg import pipeline
    from fusionseg.io import read_gray, read_rgb

    videos = profile.videos(dataset, split)
    picks = sorted({round(i) for i in np.linspace(0, len(videos) - 1, min(n_videos, len(videos)))})
    cache = pipeline.flow_cache(profile)
    rows = []
    for video in (videos[i] for i in picks):
        index = middle_annotated(video)
        frame = video.frames[index]
        row = [(f"{video.name}/{frame.name}", video.image(index))]
        row.append(("flow image", read_rgb(cache.flow_images(video, profile.flow_method)[index])))
        for method in QUALITATIVE_METHODS:
            path = pipeline.mask_folder(profile, dataset, method) / video.name / f"{frame.name}.png"
            row.append((method, read_gray(path) > 0))
        row.append(("ground truth", video.mask(index)))
        rows.append(row)
    return rows


OVERLAY_COLORS = {"ground truth": (40, 200, 60)}  # every method's mask in the overlay's default red
OUTLINE_COLOR = (255, 230, 0)  # each mask's boundary, so that it reads on an object of its tint too


def qualitative_overlays(profile: Profile, dataset: str, split: str | None, n_videos: int = 3) -> list[list]:
    """`qualitative_rows` as the paper's Figure 4 draws them: each mask (methods and ground truth)
    tinted on its frame (`fusionseg.infer.overlay`) with its boundary outlined, instead of a binary
    panel; frame and flow image first."""
    import cv2

    from fusionseg.infer import overlay

    rows = []
    for row in qualitative_rows(profile, dataset, split, n_videos):
        frame = row[0][1]
        height, width = frame.shape[:2]
        panels = row[:2]
        for title, mask in row[2:]:
            if mask.shape != (height, width):
                mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
            mask = mask.astype(bool)
            tinted = np.ascontiguousarray(overlay(frame, mask, **_overlay_color(title)))
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(tinted, contours, -1, OUTLINE_COLOR, max(1, round(max(height, width) / 160)))
            panels.append((title, tinted))
        rows.append(panels)
    return rows


def _overlay_color(title: str) -> dict[str, Any]:
    return {"color": OVERLAY_COLORS[title]} if title in OVERLAY_COLORS else {}


def pseudo_label_figure(profile: Profile, seed: int = 0) -> Any | None:
    """The paper's Fig. 3 for this profile's pseudo-label stage (`fusionseg.pseudo_labels.plot_examples`
    on a few frames per outcome); None when the stage checked no box."""
    from fusionseg import pipeline
    from fusionseg.pseudo_labels import (
        PseudoLabelConfig,
        pick_examples,
        plot_examples,
        read_records,
        weak_videos,
    )

    out = pipeline.stage_dir(profile, "pseudo_labels") / "set"
    tables = [read_records(path) for path in sorted((out / "records").glob("*.csv"))]
    records = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    config = PseudoLabelConfig()
    examples = pick_examples(records, config, seed=seed) if len(records) else records
    if not len(examples):
        return None
    source, split = profile.plan.weak
    videos = weak_videos(source, profile.dataset_folder(source), split, max_videos=profile.max_videos)
    return plot_examples(examples, records, out, videos, pipeline.flow_image_arrays(profile), config)


# ------------------------------------------------------------------------------------------------
# Ablations: one parameter changed, the run's numbers beside the variant's and the paper's

BENCHMARKS = {
    paper_numbers.TABLE1: "DAVIS 2016",
    paper_numbers.TABLE2: "YouTube-Objects",
    paper_numbers.TABLE3: "SegTrack-v2",
}
DIFFERENCE = "change"  # a short header: the tables are read at 1280 px


def variant(cfg: Profile, overrides: dict[str, Any]) -> Profile:
    """`cfg` with `overrides` changed on top of its own (the chapter's run plus one change: the
    ablation of this run, not of the bare preset); nested settings as dicts or dotted keys."""
    return resolve(cfg.name, dict(cfg.overrides) | flatten_overrides(overrides))


def avg_iou(label: str, tables: Sequence[str] = tuple(BENCHMARKS)) -> pd.Series:
    """Run `label`'s average J (percent) per (benchmark, method) over the benchmark tables it wrote."""
    rows = {}
    for name in tables:
        table = result_table(label, name)
        if table is None:
            continue
        for row in table[table["column"] == paper_numbers.AVG].itertuples(index=False):
            rows[(BENCHMARKS.get(name, name), row.method)] = float(row.value)
    return _by_benchmark_and_method(rows)


def _by_benchmark_and_method(rows: dict[tuple[str, str], float]) -> pd.Series:
    names = ["benchmark", "method"]
    index = (
        pd.MultiIndex.from_tuples(list(rows), names=names)
        if rows
        else pd.MultiIndex.from_arrays([[], []], names=names)
    )
    return pd.Series(list(rows.values()), index=index, dtype=float)


def paper_avg_iou(tables: Sequence[str] = tuple(BENCHMARKS)) -> pd.Series:
    """The paper's average J (percent) per (benchmark, method)."""
    rows = {}
    for name in tables:
        table = paper_numbers.paper_table(name)
        for row in table[table["column"] == paper_numbers.AVG].itertuples(index=False):
            rows[(BENCHMARKS.get(name, name), row.method)] = float(row.value)
    return _by_benchmark_and_method(rows)


def ablation_table(base: str, changed: str, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Average J (percent) per (benchmark, method) of run `base` beside run `changed`, their difference
    (changed - base) and the paper's number where it has one; `methods` keeps those (in that order)."""
    from fusionseg.evaluate import METHODS

    ours, theirs = avg_iou(base), avg_iou(changed)
    index = ours.index.union(theirs.index, sort=False)
    table = pd.DataFrame({base: ours.reindex(index), changed: theirs.reindex(index)}, index=index)
    table[DIFFERENCE] = table[changed] - table[base]
    table[paper_numbers.PAPER] = paper_avg_iou().reindex(index)
    keep = list(methods or METHODS)
    rows = [(b, m) for b in dict.fromkeys(index.get_level_values(0)) for m in keep if (b, m) in index]
    return table.loc[rows] if rows else table.iloc[:0]


def _points(value: float) -> str:
    return "no number" if pd.isna(value) else f"{value:+.1f} J points"


def _score(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.1f}"


def change_sentence(table: pd.DataFrame, what: str, methods: Sequence[str]) -> str:
    """One sentence, computed from an `ablation_table`, on what `what` changes for each of `methods`
    on each benchmark, e.g. "DeepFlow instead of DIS changes Ours-M by +1.2 J points on DAVIS 2016
    (43.1 -> 44.3), ...". True whatever the numbers are."""
    base, changed = table.columns[:2]
    parts = []
    for method in methods:
        rows = table.xs(method, level="method") if method in table.index.get_level_values("method") else None
        if rows is None or rows.empty:
            continue
        each = [
            f"{_points(row[DIFFERENCE])} on {benchmark} ({_score(row[base])} → {_score(row[changed])})"
            for benchmark, row in rows.iterrows()
        ]
        parts.append(f"{method} by " + ", ".join(each))
    if not parts:
        return f"No benchmark table holds both runs ({base}, {changed}), so there is nothing to compare."
    largest = table[DIFFERENCE].abs().idxmax() if table[DIFFERENCE].notna().any() else None
    tail = ""
    if largest is not None:
        benchmark, method = largest
        tail = f"; of all rows, the largest change is {method} on {benchmark} ({_points(table.loc[largest, DIFFERENCE])})"
    return f"{what} changes " + "; ".join(parts) + tail + "."


def fusion_design_table(label: str) -> pd.DataFrame:
    """Run `label`'s two fusion designs side by side per benchmark (average J, percent): the paper's
    (Ours-Joint) and the release's (Ours-Joint (release)), their difference, and the paper's Ours-Joint.
    The column names carry each design's trainable parameters (`fusion_training.csv`)."""
    from fusionseg.evaluate import FUSION_DESIGNS

    scores = avg_iou(label)
    training = result_table(label, "fusion_training")
    count = {} if training is None else dict(zip(training["design"], training["parameters"], strict=True))
    columns, paper = {}, paper_avg_iou()
    for method, design in FUSION_DESIGNS.items():
        size = f", {int(count[design])} parameters" if design in count else ""
        columns[method] = f"{design} design ({method}{size})"
    benchmarks = list(dict.fromkeys(scores.index.get_level_values("benchmark")))
    table = pd.DataFrame(
        {
            name: [scores.get((benchmark, method), np.nan) for benchmark in benchmarks]
            for method, name in columns.items()
        },
        index=pd.Index(benchmarks, name="benchmark"),
    )
    paper_name, release_name = columns.values()
    table[f"{DIFFERENCE} (release - paper)"] = table[release_name] - table[paper_name]
    table[f"{paper_numbers.PAPER}, Ours-Joint"] = [paper.get((b, "Ours-Joint"), np.nan) for b in benchmarks]
    return table


def fusion_design_sentence(table: pd.DataFrame) -> str:
    """One sentence, computed from `fusion_design_table`, on what the release's design changes."""
    if table.empty:
        return "This run wrote no benchmark table, so the two designs cannot be compared."
    difference = table.iloc[:, 2]
    each = [f"{_points(value)} on {benchmark}" for benchmark, value in difference.items()]
    better = int((difference > 0).sum())
    return (
        f"The release's design instead of the paper's changes Ours-Joint by {', '.join(each)}: "
        f"it scores higher on {better} of {difference.notna().sum()} benchmarks in this run."
    )


QUALITY_COLUMNS = ["frames_kept", "jaccard_sample", "jaccard_all", "paper_jaccard"]
FULL_PIPELINE = "all steps"


def quality_ablation(label: str) -> pd.DataFrame | None:
    """Run `label`'s pseudo-label quality study (`pseudo_label_quality.csv`): per variant of the
    filters, the frames it keeps and their Jaccard against the true masks, with the difference from
    the full pipeline's `jaccard_all`; None when the run has no quality study."""
    table = result_table(label, "pseudo_label_quality")
    if table is None:
        return None
    table = table.set_index("variant")[QUALITY_COLUMNS]
    table[f"{DIFFERENCE} (jaccard_all)"] = table["jaccard_all"] - table.loc[FULL_PIPELINE, "jaccard_all"]
    return table


def quality_sentence(table: pd.DataFrame) -> str:
    """One sentence, computed from `quality_ablation`, on what switching each filter off does."""
    full = table.loc[FULL_PIPELINE]
    parts = []
    for name, row in table.drop(index=FULL_PIPELINE).iterrows():
        ratio = row["frames_kept"] / full["frames_kept"] if full["frames_kept"] else float("nan")
        parts.append(
            f"“{name}” keeps {int(row['frames_kept'])} frames ({ratio:.1f}x) at "
            f"{_points(row['jaccard_all'] - full['jaccard_all'])}"
        )
    paper = ""
    if "all steps, before pruning" in table.index:
        row = table.loc["all steps, before pruning"]
        paper = (
            f" (the paper: {row['paper_jaccard'] - full['paper_jaccard']:+.1f} J points before pruning, "
            f"ours {row['jaccard_all'] - full['jaccard_all']:+.1f})"
        )
    return (
        f"Against the {int(full['frames_kept'])} frames and {full['jaccard_all']:.1f} Jaccard of every "
        f"filter on: " + "; ".join(parts) + paper + "."
    )


def funnel_comparison(base: str, changed: str) -> pd.DataFrame | None:
    """The pseudo-label funnel (frames left after each step) of run `base` beside run `changed`."""
    tables = {label: result_table(label, "pseudo_label_funnel") for label in (base, changed)}
    if any(table is None for table in tables.values()):
        return None
    return pd.DataFrame({label: table.set_index("stage")["frames"] for label, table in tables.items()})


def own_ablations(cfg: Profile, name: str = paper_numbers.TABLE1) -> pd.DataFrame:
    """Average J on one benchmark table of every run of this profile in this checkout's results
    (the profile's own and every ablation of it, `<profile>+...`) beside the paper's: one row per
    method, one column per run."""
    paper = paper_numbers.paper_table(name)
    columns = {paper_numbers.PAPER: paper[paper["column"] == paper_numbers.AVG].set_index("method")["value"]}
    for label in _labels(results_root(), name):
        if label == cfg.name or label.startswith(cfg.name + "+"):
            table = pd.read_csv(results_root() / label / f"{name}.csv")
            columns[label] = table[table["column"] == paper_numbers.AVG].set_index("method")["value"]
    from fusionseg.evaluate import METHODS

    table = pd.DataFrame(columns)
    return table.reindex([m for m in METHODS if m in table.index])


# ------------------------------------------------------------------------------------------------
# Provenance and timings


def stage_timings(profile: Profile) -> pd.DataFrame:
    """Per pipeline stage of `profile`: whether it is complete and how long computing it took (its stamp)."""
    from fusionseg import pipeline

    rows = []
    for stage in pipeline.STAGES:
        stamp = pipeline.read_stamp(profile, stage) or {}
        rows.append(
            {
                "stage": stage,
                "complete": bool(stamp.get("complete")),
                "compute_time_s": round(stamp["wall_time_s"], 1) if "wall_time_s" in stamp else None,
                "key": stamp.get("key"),
            }
        )
    return pd.DataFrame(rows)


def _short_commit(commit: str) -> str:
    return commit[:7] + (" (dirty)" if commit.endswith("+dirty") else "")


def profiles_table() -> pd.DataFrame:
    """The profiles' main settings, one column per profile (chapter 0; every field: `fusionseg.profiles`)."""
    shown = ["description", "data", "backbone", "output_stride", "decoder", "motion_decoder", "optimizer", "lr",
             "motion_optimizer", "motion_lr", "motion_init", "iterations", "motion_iterations", "crop_size", "batch_size", "fusion_iterations",
             "flow_method", "device"]  # fmt: skip
    rows = {name: {field: getattr(profile, field) for field in shown} for name, profile in PROFILES.items()}
    return pd.DataFrame(rows)


def provenance_table() -> pd.DataFrame:
    """One row per provenance record in `results/*/provenance/*.json`: what ran, where, how long."""
    rows = []
    for label, folder in ledger_sources():
        for path in sorted((folder / "provenance").glob("*.json")):
            record = json.loads(path.read_text())
            hardware = record.get("hardware", {})
            rows.append(
                {
                    "profile": label,
                    "stage": record.get("stage", path.stem),
                    "wall_time_s": record.get("wall_time_s"),
                    "peak_memory_mb": record.get("peak_memory_mb"),
                    "commit": _short_commit(str(record.get("git_commit", ""))),
                    "data": (record.get("data_fingerprint") or "")[:8],
                    "hardware": " ".join(str(hardware.get("cuda") or hardware.get("processor")).split()[:3]),
                    "finished": str(record.get("finished_at", ""))[:10],
                }
            )
    return pd.DataFrame.from_records(rows)


def book_timings(label: str) -> pd.DataFrame:
    """Wall time and kernel peak memory per notebook from `results/<label>/provenance/book.json`."""
    path = result_path(label, "provenance/book.json")
    if not path.is_file():
        return pd.DataFrame(columns=["notebook", "status", "wall_time_s", "peak_memory_mb"])
    notebooks = json.loads(path.read_text()).get("notebooks", {})
    return pd.DataFrame.from_records([{"notebook": name, **entry} for name, entry in notebooks.items()])
