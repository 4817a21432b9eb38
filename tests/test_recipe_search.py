"""`fusionseg select-recipe`: variants are trained without the held-out images and scored on them."""

from __future__ import annotations

import dataclasses
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
    variants = ["motion_decoder=none", "motion_decoder=skip4", "motion_iterations=3"]
    assert main([*args, *(f"--variant={variant}" for variant in variants)]) == 0
    table = pd.read_csv(results_tmp / "smoke" / "recipe_selection_motion.csv")
    assert list(table["variant"]) == variants
    assert list(table["iterations"]) == [2, 2, 3]  # --iterations, unless the variant sets its own budget
    assert (table["heldout_videos"] == names[-1]).all() and (table["train_images"] == len(train)).all()
    assert table["heldout_J"].between(0, 1).all()
    with pytest.raises(ValueError, match="changes the pseudo_labels stage"):
        main([*args, "--variant", "pseudo_labels.flow_threshold=3"])


def test_fusion_heldout_j_averages_frames_per_video_then_videos():
    """Hand-computed: video a has frames of J 1 and 0.5 (mean 0.75), video b one frame of J 0; the
    fusion's J is the mean over videos, 0.375 (not the mean over frames, 0.5)."""
    import torch

    from fusionseg.recipe_search import fusion_heldout_j
    from fusionseg.train.fusion import FusionData

    def data(foreground: list[list[int]], labels: list[list[int]]) -> FusionData:
        fg = torch.tensor(foreground, dtype=torch.float16)[:, None, None, :]  # (N,1,1,W)
        logits = torch.cat([-fg, fg], dim=1)  # foreground where fg > 0
        return FusionData(
            logits, torch.zeros_like(logits), torch.tensor(labels, dtype=torch.uint8)[:, None, :]
        )

    class AppearanceOnly(torch.nn.Module):
        def forward(self, app, mot):
            return app + mot

    videos = {
        "a": data([[1, 1, -1, -1], [1, 1, -1, -1]], [[1, 1, 0, 0], [1, 0, 0, 0]]),
        "b": data([[1, -1, -1, -1]], [[0, 0, 0, 1]]),
    }
    assert fusion_heldout_j(AppearanceOnly(), videos) == pytest.approx(0.375)
    # label 255 (void) counts neither way: J 1 on the frame below
    videos = {"c": data([[1, 1, -1, -1]], [[1, 255, 0, 255]])}
    assert fusion_heldout_j(AppearanceOnly(), videos) == pytest.approx(1.0)


def test_fusion_variants_train_on_all_but_the_held_out_fusion_videos(
    results_tmp, tmp_path, monkeypatch, one_torch_thread, capsys
):
    """--stream fusion trains both designs on the frozen streams' logits of the fusion videos but the
    last one and scores them there; a variant that would change a stream is refused."""
    from fusionseg.recipe_search import split_fusion_logits

    monkeypatch.setenv("FUSIONSEG_RUNS", str(tmp_path / "runs"))
    profile = profiles.resolve("smoke")
    train, heldout = split_fusion_logits(profile, 1)  # runs the chain up to the motion stream first
    videos = sorted(profile.videos(*profile.plan.fusion), key=lambda video: video.name)
    assert list(heldout) == [videos[-1].name]
    assert 0 < len(train) and len(train) + len(heldout[videos[-1].name]) <= sum(
        len(video.annotated_indices) for video in videos
    )

    args = ["select-recipe", "--profile", "smoke", "--stream", "fusion", "--heldout", "1"]
    assert main([*args, "--variant", "fusion_lr_paper=0.001", "--variant", "fusion_lr_paper=0.1"]) == 0
    table = pd.read_csv(results_tmp / "smoke" / "recipe_selection_fusion.csv")
    assert list(table["variant"]) == ["fusion_lr_paper=0.001", "fusion_lr_paper=0.1"]
    assert (table["heldout_videos"] == videos[-1].name).all() and (table["train_frames"] == len(train)).all()
    assert table[["heldout_J_paper", "heldout_J_release"]].stack().between(0, 1).all()
    # the release design's learning rate did not change, so neither did its score
    assert table["heldout_J_release"].nunique() == 1
    with pytest.raises(ValueError, match="changes the motion stage"):
        main([*args, "--variant", "motion_lr=0.1"])

    # a held-out video may be called "train" (DAVIS train has one): the training set stays its own
    listed = profiles.Profile.videos

    def with_a_video_called_train(self, dataset, split):  # the same videos, the last one renamed "train"
        found = listed(self, dataset, split)
        first = [dataclasses.replace(video, name=f"a-{video.name}") for video in found[:-1]]
        return [*first, dataclasses.replace(found[-1], name="train")]

    monkeypatch.setattr(profiles.Profile, "videos", with_a_video_called_train)
    train_again, heldout_again = split_fusion_logits(profile, 1)
    assert list(heldout_again) == ["train"] and len(train_again) == len(train)
    with pytest.raises(ValueError, match="fusion_iterations"):
        main([*args, "--iterations", "5"])


def test_the_motion_stream_may_train_for_its_own_number_of_iterations():
    """`motion_iterations` changes the motion stream's training (and stage key) and nothing before it;
    unset, the motion stream trains as long as the appearance stream, under the same key as before."""
    from pathlib import Path

    from fusionseg import pipeline
    from fusionseg.recipe_search import check_keeps_the_inputs

    base = profiles.resolve("smoke")
    assert base.motion_iterations is None and base.stream_iterations("motion") == base.iterations
    shorter = profiles.resolve("smoke", motion_iterations=7)
    assert (shorter.stream_iterations("appearance"), shorter.stream_iterations("motion")) == (
        base.iterations,
        7,
    )
    assert pipeline.train_config(shorter, Path("."), "motion").iterations == 7
    assert pipeline.train_config(shorter, Path("."), "appearance").iterations == base.iterations
    check_keeps_the_inputs(base, {"motion_iterations": 7}, "motion")  # accepted: the pseudo-labels stay
    motion_parameters = pipeline.CHAIN.stage("motion").parameters
    assert motion_parameters(shorter) != motion_parameters(base)
    same = profiles.resolve("smoke", motion_iterations=base.iterations)
    assert motion_parameters(same) == motion_parameters(base)


def test_the_fusion_weight_decay_is_a_fusion_variant():
    """`--variant fusion_weight_decay=X` leaves the streams' inputs alone and changes the fusion stage."""
    from fusionseg import pipeline
    from fusionseg.recipe_search import check_keeps_the_inputs

    base = profiles.resolve("smoke")
    check_keeps_the_inputs(base, {"fusion_weight_decay": 0.05}, "fusion")  # accepted
    fusion_parameters = pipeline.CHAIN.stage("fusion").parameters
    changed = profiles.resolve("smoke", fusion_weight_decay=0.05)
    assert fusion_parameters(changed)["weight_decay"] == 0.05
    assert fusion_parameters(changed) != fusion_parameters(base)
