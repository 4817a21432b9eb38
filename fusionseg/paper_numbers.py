"""The paper's published numbers, transcribed once from the CVPR 2017 text (Tables 1-4, Sec. 4).

Every number here is the *paper's*, never ours: the book shows them in columns labelled
"paper" beside the numbers each profile produced (`results/<profile>/`). All scores are
Jaccard (IoU) in percent, as printed. `tests/test_paper_numbers.py` checks a few against the
paper's text, so that a typo here cannot silently move a comparison.

Comparison tables share one long format (also used by the notebooks for our own numbers):
columns `method`, `column` (a benchmark category or "Avg. IoU"), `value` (percent).
"""

from __future__ import annotations

import pandas as pd

PAPER = "paper (Jain et al. 2017)"

# Table names: the CSV stem under results/<profile>/ and the key of TABLES below.
TABLE1 = "table1_davis"
TABLE2 = "table2_youtube_objects"
TABLE3 = "table3_segtrack"
TABLE4 = "table4_moving_static"
AVG = "Avg. IoU"

# Whether a method needs a human in the loop at test time (the tables' second header row).
HUMAN_IN_LOOP: dict[str, bool] = {
    "Flow-Th": False,
    "Flow-Sal": False,
    "FST": False,
    "KEY": False,
    "NLC": False,
    "COSEG": False,
    "HVS": True,
    "FCP": True,
    "BVS": True,
    "HBT": True,
    "HOP": True,
    "IVID": True,
    "Ours-A": False,
    "Ours-M": False,
    "Ours-Joint": False,
}

# Table 1: DAVIS 2016, average Jaccard over all 50 videos.
DAVIS_AVG: dict[str, float] = {
    "Flow-Th": 42.95,
    "Flow-Sal": 30.22,
    "FST": 57.5,
    "KEY": 56.9,
    "NLC": 64.1,
    "HVS": 59.6,
    "FCP": 63.1,
    "BVS": 66.5,
    "Ours-A": 64.69,
    "Ours-M": 60.18,
    "Ours-Joint": 71.51,
}

# Table 2: YouTube-Objects, mean IoU per category (number of videos) and over all 126 videos.
YOUTUBE_CATEGORIES: dict[str, int] = {
    "aeroplane": 6,  # the paper's column reads "airplane"
    "bird": 6,
    "boat": 15,
    "car": 7,
    "cat": 16,
    "cow": 20,
    "dog": 27,
    "horse": 14,
    "motorbike": 10,  # "mbike" in the paper
    "train": 5,
}
_YT_ORDER = [*YOUTUBE_CATEGORIES, AVG]
YOUTUBE: dict[str, dict[str, float]] = {
    method: dict(zip(_YT_ORDER, values, strict=True))
    for method, values in {
        "Flow-Th": [18.27, 31.63, 4.35, 21.93, 19.9, 16.56, 17.8, 12.23, 12.99, 18.16, 17.38],
        "Flow-Sal": [33.32, 33.74, 22.59, 48.63, 32.33, 29.11, 25.43, 24.17, 17.06, 24.21, 29.05],
        "FST": [70.9, 70.6, 42.5, 65.2, 52.1, 44.5, 65.3, 53.5, 44.2, 29.6, 53.84],
        "COSEG": [69.3, 76, 53.5, 70.4, 66.8, 49, 47.5, 55.7, 39.5, 53.4, 58.11],
        "HBT": [73.6, 56.1, 57.8, 33.9, 30.5, 41.8, 36.8, 44.3, 48.9, 39.2, 46.29],
        "HOP": [86.27, 81.04, 68.59, 69.36, 58.89, 68.56, 61.78, 53.96, 60.87, 66.33, 67.56],
        "IVID": [89, 81.6, 74.2, 70.9, 67.7, 79.1, 70.3, 67.8, 61.5, 78.2, 74.03],
        "Ours-A": [83.38, 60.89, 72.62, 74.50, 67.99, 69.63, 69.10, 62.79, 61.92, 62.82, 68.57],
        "Ours-M": [59.38, 64.06, 40.21, 61.32, 49.16, 39.38, 54.79, 39.96, 42.95, 43.13, 49.43],
        "Ours-Joint": [81.74, 63.84, 72.38, 74.92, 68.43, 68.07, 69.48, 60.44, 62.74, 62.20, 68.43],
    }.items()
}

# Table 3: SegTrack-v2, average Jaccard over all 14 videos (NLC: over 12 videos, as its paper reports).
SEGTRACK_AVG: dict[str, float] = {
    "Flow-Th": 37.77,
    "Flow-Sal": 27.04,
    "FST": 53.5,
    "KEY": 57.3,
    "NLC": 80.0,
    "HBT": 41.3,
    "HVS": 50.8,
    "Ours-A": 56.88,
    "Ours-M": 53.04,
    "Ours-Joint": 61.40,
}

# Table 4: YouTube-Objects frames ranked by amount of motion: top 10% moving / top 10% static.
MOVING, STATIC = "Top 10% moving", "Top 10% static"
MOVING_STATIC: dict[str, dict[str, float]] = {
    "Ours-A": {MOVING: 71.58, STATIC: 61.79},
    "Ours-Joint": {MOVING: 72.34, STATIC: 59.86},
}

# Sec. 4, "Implementation details" and "Quality of training data".
PSEUDO_LABELS: dict[str, float] = {
    "imagenet_vid_training_videos": 3862,
    "imagenet_vid_boxes": 866870,
    "frames_kept": 84929,
    "human_checked_frames": 100,
    "jaccard_vs_human": 77.8,
    "jaccard_vs_human_before_box_pruning": 70.2,
}
TRAINING: dict[str, float] = {
    "iterations_per_stream": 20000,
    "poly_power": 0.9,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "voc_sbd_training_images": 10582,
}
# Sec. 4: NLC's public code ran on 9% of YouTube-Objects (1,725 frames), Jaccard 43.64 there.
NLC_YOUTUBE_SUBSET = {"frames": 1725, "jaccard": 43.64}


def _long(rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    records = [
        {"method": method, "human_in_loop": HUMAN_IN_LOOP[method], "column": column, "value": value}
        for method, columns in rows.items()
        for column, value in columns.items()
    ]
    return pd.DataFrame.from_records(records)


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's Tables 1-4 in the long format (method, human_in_loop, column, value)."""
    tables = {
        TABLE1: lambda: _long({m: {AVG: v} for m, v in DAVIS_AVG.items()}),
        TABLE2: lambda: _long(YOUTUBE),
        TABLE3: lambda: _long({m: {AVG: v} for m, v in SEGTRACK_AVG.items()}),
        TABLE4: lambda: _long(MOVING_STATIC),
    }
    if name not in tables:
        raise ValueError(f"unknown table {name!r}: expected one of {', '.join(tables)}")
    return tables[name]()
