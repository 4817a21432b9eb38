"""Profiles: presets, overrides and the labels that keep ablations apart in results/."""

from __future__ import annotations

import pytest

from fusionseg import profiles
from fusionseg.io import DataError


def test_presets_grow_from_smoke_to_paper():
    names = profiles.profile_names()
    assert names == ["smoke", "mini", "real-lite", "paper"]
    iterations = [profiles.get_profile(name).iterations for name in names]
    assert iterations == sorted(iterations)
    assert profiles.get_profile("paper").iterations == 20000
    assert profiles.get_profile("paper").backbone == "resnet101"


def test_resolve_labels_only_changes_that_alter_results():
    assert profiles.resolve("mini") is profiles.get_profile("mini")
    assert profiles.resolve("mini", iterations=None, seed=0).label == "mini"
    tuned = profiles.resolve("mini", {"crop_size": 96}, iterations=50)
    assert (tuned.iterations, tuned.crop_size, tuned.label) == (50, 96, "mini+crop_size=96,iterations=50")
    moved = profiles.resolve("mini", device="cuda", data_root="/somewhere")
    assert (moved.device, moved.label) == ("cuda", "mini")


def test_resolve_rejects_unknown_fields_and_conflicts():
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        profiles.resolve("huge")
    with pytest.raises(ValueError, match=r"unknown profile field\(s\) \['learning_rate'\]"):
        profiles.resolve("mini", {"learning_rate": 0.1})
    with pytest.raises(ValueError, match="given twice"):
        profiles.resolve("mini", {"iterations": 10}, iterations=20)
    assert profiles.resolve("mini", {"iterations": 10}, iterations=10).iterations == 10


def test_data_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONSEG_CACHE", str(tmp_path))
    smoke = profiles.get_profile("smoke").resolve_data_root()
    assert smoke.parent == tmp_path / "synthetic" and smoke.name.startswith("smoke-seed0-")
    # the world's sizes name its folder: an ablation of them never regenerates the profile's world
    mini = profiles.resolve("mini").resolve_data_root()
    assert profiles.resolve("mini", {"iterations": 10}).resolve_data_root() == mini
    assert profiles.resolve("mini", {"world.davis_val": 24}).resolve_data_root() != mini
    assert profiles.resolve("mini", seed=1).resolve_data_root().name.startswith("mini-seed1-")
    assert profiles.resolve("mini", data_root=str(tmp_path / "w")).resolve_data_root() == tmp_path / "w"
    monkeypatch.setenv("FUSIONSEG_RUNS", str(tmp_path / "runs"))
    assert profiles.resolve("mini", seed=3).work_dir() == tmp_path / "runs" / "mini+seed=3"
    monkeypatch.delenv("FUSIONSEG_DATA", raising=False)
    with pytest.raises(DataError, match="FUSIONSEG_DATA is not set"):
        profiles.get_profile("real-lite").resolve_data_root()
    monkeypatch.setenv("FUSIONSEG_DATA", str(tmp_path))
    assert profiles.get_profile("real-lite").resolve_data_root() == tmp_path


def test_each_stream_trains_with_its_own_solver():
    from pathlib import Path

    from fusionseg.pipeline import _train_parameters, train_config

    profile = profiles.resolve("mini", {"optimizer": "adamw", "lr": 5e-4})
    appearance = train_config(profile, Path("run"), "appearance")
    motion = train_config(profile, Path("run"), "motion")
    assert (appearance.optimizer, appearance.lr) == ("adamw", 5e-4)
    # the paper's solver, unless motion_optimizer says otherwise
    assert (motion.optimizer, motion.lr) == ("sgd", 1e-3)
    # the solver is part of what a stream's cache key hashes: another solver never reuses the weights
    paper_solver = profiles.resolve("mini", {"optimizer": "sgd", "lr": 1e-3})
    assert _train_parameters(profile, "appearance", "x") != _train_parameters(paper_solver, "appearance", "x")
    assert _train_parameters(profile, "motion", "x") == _train_parameters(paper_solver, "motion", "x")


def test_the_motion_stream_may_start_from_the_appearance_stream():
    from pathlib import Path

    from fusionseg.pipeline import _train_parameters, stage_dir, train_config

    mini = profiles.resolve("mini", {"motion_init": "imagenet"})
    assert train_config(mini, Path("run"), "motion").pretrained is True  # the paper's: ImageNet
    profile = profiles.resolve("mini", {"motion_init": "appearance"})
    assert train_config(profile, Path("run"), "appearance").pretrained is True
    weights = Path(train_config(profile, Path("run"), "motion").pretrained)
    assert weights == stage_dir(profile, "appearance") / "train" / "model.pt"
    # the key names the choice, not a machine's path (the appearance weights' own key is upstream)
    recipe = _train_parameters(profile, "motion", "x")["config"]
    assert recipe["pretrained"] == "appearance"
    assert _train_parameters(profile, "motion", "x") != _train_parameters(mini, "motion", "x")
    assert _train_parameters(profile, "appearance", "x") == _train_parameters(mini, "appearance", "x")
    with pytest.raises(ValueError, match="motion_init"):
        train_config(profiles.resolve("mini", {"motion_init": "voc"}), Path("run"), "motion")
