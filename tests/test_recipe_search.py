"""`fusionseg select-recipe`: variants are trained without the held-out images and scored on them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fusionseg import profiles
from fusionseg.cli import main
from fusionseg.recipe_search import split_training_set, variant_name


def test_held_out_images_are_the_last_ones_and_never_trained_on(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONSEG_RUNS", str(tmp_path / "runs"))
    profile = profiles.resolve("smoke")
    train, kept_out = split_training_set(profile, 5)  # runs the data stage: the world exists after it
    whole = profile.image_set(*profile.plan.appearance)
    assert len(kept_out) == 5 and len(train) == len(whole) - 5
    assert kept_out.items == whole.items[-5:]
    assert not {item.image_path for item in train.items} & {item.image_path for item in kept_out.items}
    with pytest.raises(ValueError, match="--heldout"):
        split_training_set(profile, len(whole))


def test_variant_names():
    assert variant_name({}) == "base"
    assert variant_name({"decoder": "skip4", "pseudo_labels": {"flow_threshold": 20}}) == (
        "decoder=skip4,pseudo_labels.flow_threshold=20"
    )


def test_select_recipe_writes_one_row_per_variant(
    results_tmp, tmp_path, monkeypatch, one_torch_thread, capsys
):
    monkeypatch.setenv("FUSIONSEG_RUNS", str(tmp_path / "runs"))
    args = ["select-recipe", "--profile", "smoke", "--variant", "decoder=none", "--variant", "decoder=skip4"]
    assert main([*args, "--iterations", "2", "--heldout", "4"]) == 0
    table = pd.read_csv(results_tmp / "smoke" / "recipe_selection.csv")
    assert list(table["variant"]) == ["decoder=none", "decoder=skip4"]
    assert (table["heldout_images"] == 4).all() and (table["iterations"] == 2).all()
    assert table["heldout_iou"].between(0, 1).all()
    record = json.loads((results_tmp / "smoke" / "provenance" / "recipe_selection.json").read_text())
    assert record["command"].startswith("fusionseg select-recipe --profile smoke")
    # the chain's data stage ran for it, but its record belongs to `fusionseg reproduce --record`
    assert not (results_tmp / "smoke" / "provenance" / "data.json").exists()
    assert (tmp_path / "runs" / "results" / "smoke" / "provenance" / "data.json").is_file()
    weights = (
        tmp_path / "runs" / "smoke" / "recipe_selection" / "decoder=skip4,iterations=2" / "train" / "model.pt"
    )
    assert weights.is_file()
    assert "decoder=skip4" in capsys.readouterr().out
    assert (table["train_s_per_iteration"] > 0).all()

    assert main([*args, "--iterations", "2", "--heldout", "4"]) == 0  # resumed: nothing left to train
    again = pd.read_csv(results_tmp / "smoke" / "recipe_selection.csv")
    assert list(again["heldout_iou"]) == list(table["heldout_iou"])
    assert again["train_s_per_iteration"].isna().all()  # no step ran, so no speed to report

    # a second question gets a table of its own; the first one's stays as it was
    solver = ["--variant", "optimizer=adamw,lr=0.01", "--question", "solver"]
    assert main(["select-recipe", "--profile", "smoke", *solver, "--iterations", "2", "--heldout", "4"]) == 0
    assert list(pd.read_csv(results_tmp / "smoke" / "recipe_selection_solver.csv")["variant"]) == [
        "optimizer=adamw,lr=0.01"
    ]
    assert list(pd.read_csv(results_tmp / "smoke" / "recipe_selection.csv")["variant"]) == list(
        table["variant"]
    )
    record = json.loads((results_tmp / "smoke" / "provenance" / "recipe_selection_solver.json").read_text())
    assert record["command"].endswith("--question solver")
    capsys.readouterr()
    assert main(["select-recipe", "--profile", "smoke", "--question", "a/b", "--iterations", "2"]) != 0
    assert "--question 'a/b'" in capsys.readouterr().err


def test_motion_variants_hold_out_whole_videos_and_score_them_on_true_masks(
    results_tmp, tmp_path, monkeypatch, one_torch_thread
):
    """--stream motion trains on the pseudo-labels of all weak videos but the last ones, and scores
    J on those videos' true masks; a variant that would change the pseudo-labels is refused."""
    from fusionseg import pipeline
    from fusionseg.recipe_search import split_pseudo_labels

    monkeypatch.setenv("FUSIONSEG_RUNS", str(tmp_path / "runs"))
    profile = profiles.resolve("smoke")
    train, videos = split_pseudo_labels(profile, 1)
    names = sorted(video.name for video in pipeline.weak_videos_of(profile))
    assert [video.name for video in videos] == names[-1:]
    assert all(video.label(i) is not None for video in videos for i in video.annotated_indices)
    assert not any(item.image_path.name.startswith(names[-1] + "_") for item in train.items)

    args = [
        "select-recipe",
        "--profile",
        "smoke",
        "--stream",
        "motion",
        "--iterations",
        "2",
        "--heldout",
        "1",
    ]
    assert main([*args, "--variant", "motion_decoder=none", "--variant", "motion_decoder=skip4"]) == 0
    table = pd.read_csv(results_tmp / "smoke" / "recipe_selection_motion.csv")
    assert list(table["variant"]) == ["motion_decoder=none", "motion_decoder=skip4"]
    assert (table["heldout_videos"] == names[-1]).all() and (table["train_images"] == len(train)).all()
    assert table["heldout_J"].between(0, 1).all()
    with pytest.raises(ValueError, match="changes the pseudo_labels stage"):
        main([*args, "--variant", "pseudo_labels.flow_threshold=3"])
