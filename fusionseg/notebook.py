"""Helpers the book's notebooks share: the ledger's tables beside the paper's, and honest notices.

The notebooks tell the story; what two of them need lives here. Table notebooks call
`comparison(TABLE1)` to show the paper's numbers beside every profile found in `results/`
(so the committed real-data numbers appear even when the reader's own run is `mini`), and
call `not_yet(...)` where a library piece they need is not implemented yet, instead of
showing numbers that no code produced.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from fusionseg import paper_numbers
from fusionseg.io import DataError
from fusionseg.profiles import PROFILES, Profile
from fusionseg.results import results_root

# The library modules the book calls, with what each provides (for the status tables).
LIBRARY_MODULES: dict[str, str] = {
    "fusionseg.data": "dataset readers (DAVIS, SegTrack-v2, YouTube-Objects, ImageNet VID, DUTS, VOC)",
    "fusionseg.data.synthetic": "the synthetic world (the smoke and mini profiles' data)",
    "fusionseg.metrics": "J, F and their sequence statistics (DAVIS 2016 definitions)",
    "fusionseg.evaluate": "benchmark scoring (score_videos, summarize)",
    "fusionseg.flow": "optical flow and Middlebury flow images",
    "fusionseg.baselines": "Flow-Th and Flow-Sal",
    "fusionseg.models": "appearance / motion streams and the two fusion designs",
    "fusionseg.train": "stream and fusion training",
    "fusionseg.infer": "video segmentation with trained weights",
    "fusionseg.pseudo_labels": "Sec. 3.2 pseudo-label bootstrapping",
}


def has(module: str, *attributes: str) -> bool:
    """Whether `module` can be imported and defines every name in `attributes`."""
    try:
        if importlib.util.find_spec(module) is None:
            return False
        loaded = importlib.import_module(module)
    except ImportError:
        return False
    return all(hasattr(loaded, name) for name in attributes)


def library_status(modules: Iterable[str] = LIBRARY_MODULES) -> pd.DataFrame:
    """One row per library module the book uses: whether this checkout has it yet."""
    rows = [
        {"module": name, "provides": LIBRARY_MODULES.get(name, ""), "available": has(name)}
        for name in modules
    ]
    return pd.DataFrame.from_records(rows)


def not_yet(what: str, needs: Iterable[str]) -> None:
    """Show a notice that `what` cannot run yet, and what it is waiting for (library pieces, data)."""
    from IPython.display import Markdown, display

    missing = ", ".join(f"`{name}`" for name in needs)
    display(
        Markdown(
            f":::{{admonition}} Not yet implemented\n:class: warning\n{what} is not implemented in the book "
            f"yet: it needs {missing}. This cell shows no numbers rather than invented ones.\n:::"
        )
    )


def ledger_labels(table: str | None = None) -> list[str]:
    """Run labels found in `results/` (holding `<table>.csv` when given): presets first, then others."""
    root = results_root()
    if not root.is_dir():
        return []
    labels = [
        p.name for p in root.iterdir() if p.is_dir() and (table is None or (p / f"{table}.csv").is_file())
    ]
    presets = [name for name in PROFILES if name in labels]
    return presets + sorted(set(labels) - set(presets))


def ledger_table(name: str) -> pd.DataFrame:
    """Every profile's `results/<label>/<name>.csv` stacked, with a `source` column naming the label."""
    frames = []
    for label in ledger_labels(name):
        frame = pd.read_csv(results_root() / label / f"{name}.csv")
        frames.append(frame.assign(source=label))
    if not frames:
        return pd.DataFrame(columns=["method", "column", "value", "source"])
    return pd.concat(frames, ignore_index=True)


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


def data_root_or_none(profile: Profile) -> Path | None:
    """The profile's data folder, or None when it reads real data and FUSIONSEG_DATA is not set."""
    try:
        return profile.resolve_data_root()
    except DataError:
        return None


def provenance_table() -> pd.DataFrame:
    """One row per provenance record in `results/*/provenance/*.json`: what ran, where, how long."""
    rows = []
    for label in ledger_labels():
        for path in sorted((results_root() / label / "provenance").glob("*.json")):
            record = json.loads(path.read_text())
            hardware = record.get("hardware", {})
            rows.append(
                {
                    "profile": label,
                    "stage": record.get("stage", path.stem),
                    "wall_time_s": record.get("wall_time_s"),
                    "peak_memory_mb": record.get("peak_memory_mb"),
                    "git_commit": str(record.get("git_commit", ""))[:12],
                    "data_fingerprint": record.get("data_fingerprint"),
                    "hardware": hardware.get("cuda") or hardware.get("processor"),
                    "finished_at": record.get("finished_at"),
                }
            )
    return pd.DataFrame.from_records(rows)


def book_timings(label: str) -> pd.DataFrame:
    """Wall time and kernel peak memory per notebook from `results/<label>/provenance/book.json`."""
    path = results_root() / label / "provenance" / "book.json"
    if not path.is_file():
        return pd.DataFrame(columns=["notebook", "status", "wall_time_s", "peak_memory_mb"])
    notebooks = json.loads(path.read_text()).get("notebooks", {})
    return pd.DataFrame.from_records([{"notebook": name, **entry} for name, entry in notebooks.items()])


# ------------------------------------------------------------------------------------------------
# The profile's data and the flow baselines (Tables 1-3 share them)

BASELINES = {"flow-th": "Flow-Th", "flow-sal": "Flow-Sal"}


def prepare_data(profile: Profile) -> Path | None:
    """The profile's data folder, generating the synthetic world first when the profile uses it
    (reused when already there). None when real data is asked for and FUSIONSEG_DATA is not set."""
    root = data_root_or_none(profile)
    if root is not None and profile.data == "synthetic":
        from fusionseg.data import synthetic

        synthetic.generate(profile.name, profile.seed, root)
    return root


def benchmark_videos(profile: Profile, dataset: str, split: str | None = None) -> list | None:
    """The videos of a benchmark ("davis", "youtube_objects", "segtrack") for this profile, capped at
    `profile.max_videos`; None when this profile has no copy of it."""
    from fusionseg.data import DEFAULT_FOLDERS, load_videos

    root = prepare_data(profile)
    if root is None:
        return None
    if profile.data == "synthetic":
        from fusionseg.data import synthetic

        folder = synthetic.SynthManifest.load(root).dataset_root(dataset)
    else:
        folder = root / DEFAULT_FOLDERS[dataset]
    if not folder.is_dir():
        return None
    videos = load_videos(dataset, folder, split)
    return videos if profile.max_videos is None else videos[: profile.max_videos]


def flow_baseline_rows(profile: Profile, dataset: str, videos: list) -> pd.DataFrame:
    """Flow-Th and Flow-Sal on `videos`, scored by the benchmark's convention, as ledger rows
    (method, column, value in percent): per category and "Avg. IoU" for YouTube-Objects, else "Avg. IoU"."""
    from fusionseg.baselines import run_baseline
    from fusionseg.evaluate import category_table

    rows = []
    for baseline, method in BASELINES.items():
        out_dir = profile.work_dir() / "baselines" / dataset / baseline
        per_sequence = run_baseline(videos, dataset, out_dir, baseline, method=profile.flow_method)
        if dataset == "youtube_objects":
            for _, row in category_table(per_sequence).iterrows():
                column = paper_numbers.AVG if row["category"] == "Avg." else row["category"]
                rows.append((method, column, 100 * row["J_mean"]))
        else:
            rows.append((method, paper_numbers.AVG, 100 * per_sequence["J_mean"].mean()))
    return pd.DataFrame(rows, columns=["method", "column", "value"])
