"""The synthetic world: readable by the ordinary readers, deterministic, exact masks and boxes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fusionseg.cli import main as cli_main
from fusionseg.data import load_image_set, load_videos
from fusionseg.io import DataError, read_gray
from fusionseg.profiles import PROFILES
from fusionseg.synth import content, scenes
from fusionseg.synth.world import (
    YOUTUBE_OBJECTS_CATEGORIES,
    SynthConfig,
    SynthManifest,
    generate,
    load_vid_with_masks,
)

SMOKE = PROFILES["smoke"].world
TINY = SynthConfig(
    profile="tiny",
    image_size=(32, 32),
    train_images=3,
    test_images=2,
    vid_videos=2,
    vid_val_videos=1,
    vid_frames=3,
    vid_size=(32, 48),
    davis_train=1,
    davis_val=1,
    davis_frames=3,
    davis_size=(32, 48),
    yto_shots_per_category=1,
    yto_frames=3,
    yto_annotation_step=2,
    yto_size=(32, 48),
    segtrack_sequences=2,
    segtrack_frames=3,
    segtrack_size=(32, 48),
)


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory) -> SynthManifest:
    return generate(SMOKE, seed=0, out=tmp_path_factory.mktemp("smoke"))


def test_readers_load_every_synthetic_set(smoke_world):
    m = smoke_world
    train = load_image_set("duts", m.dataset_root("duts"), "train")
    test = load_image_set("duts", m.dataset_root("duts"), "test")
    assert (len(train), len(test)) == (SMOKE.train_images, SMOKE.test_images)
    image, label = train.image(0), train.label(0)
    assert image.shape[:2] == label.shape and set(np.unique(label)) <= {0, 1} and label.any()

    davis_train = load_videos("davis", m.dataset_root("davis"), "train")
    davis_val = load_videos("davis", m.dataset_root("davis"), "val")
    assert (len(davis_train), len(davis_val)) == (SMOKE.davis_train, SMOKE.davis_val)
    video = davis_val[0]
    assert len(video) == SMOKE.davis_frames and video.category in m.categories["seen"] + m.unseen_categories
    assert video.image(0).shape == (*SMOKE.davis_size, 3) and video.mask(0).any()

    yto = load_videos("youtube_objects", m.dataset_root("youtube_objects"))
    assert sorted({v.category for v in yto}) == sorted(YOUTUBE_OBJECTS_CATEGORIES)
    assert all(
        v.annotated_indices == list(range(0, SMOKE.yto_frames, SMOKE.yto_annotation_step)) for v in yto
    )

    segtrack = load_videos("segtrack", m.dataset_root("segtrack"))
    assert len(segtrack) == SMOKE.segtrack_sequences
    n_objects = {r["name"]: len(r["objects"]) for r in m.records("segtrack")}
    for video in segtrack:
        assert all(len(f.mask_paths) == n_objects[video.name] for f in video.frames)
        assert video.image(0).shape == (*SMOKE.segtrack_size, 3)

    vid = load_videos("imagenet_vid", m.dataset_root("imagenet_vid"))
    assert len(vid) == SMOKE.vid_videos and all(len(v) == SMOKE.vid_frames for v in vid)
    assert all(f.boxes for v in vid for f in v.frames[:1])
    assert len(load_videos("imagenet_vid", m.dataset_root("imagenet_vid"), "val")) == SMOKE.vid_val_videos


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    digests = [
        tree_digest(generate(TINY, seed, tmp_path / f"run{i}").root) for i, seed in enumerate((3, 3, 4))
    ]
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_vid_boxes_are_the_true_masks_bounding_boxes(smoke_world):
    root = smoke_world.dataset_root("imagenet_vid")
    checked = 0
    for video in load_vid_with_masks(smoke_world, "train") + load_vid_with_masks(smoke_world, "val"):
        for t, frame in enumerate(video.frames):
            instances = read_gray(frame.mask_paths[0])
            assert sorted(b.track_id + 1 for b in frame.boxes) == sorted(set(np.unique(instances)) - {0})
            np.testing.assert_array_equal(video.mask(t), instances > 0)
            for box in frame.boxes:
                rows, cols = np.nonzero(instances == box.track_id + 1)
                assert (box.x0, box.y0, box.x1, box.y1) == (
                    cols.min(),
                    rows.min(),
                    cols.max() + 1,
                    rows.max() + 1,
                )
                checked += 1
    assert checked >= (SMOKE.vid_videos + SMOKE.vid_val_videos) * SMOKE.vid_frames
    assert root.joinpath("Masks").is_dir()


def test_davis_masks_are_the_union_of_the_visible_objects(smoke_world):
    """Re-render a DAVIS-like scene and compare with what the reader loads back."""
    from fusionseg.synth.world import _rng, build_scene

    video = load_videos("davis", smoke_world.dataset_root("davis"), "train")[0]
    scene = build_scene(_rng(0, "davis_train", 0), "davis_train", 0, SMOKE.davis_frames, SMOKE.davis_size)
    for t, frame in enumerate(scenes.render(scene)):
        np.testing.assert_array_equal(video.mask(t), frame.masks[0])


def test_box_from_mask_is_tight_and_half_open():
    mask = np.zeros((6, 8), bool)
    mask[2:4, 3:7] = True
    mask[5, 1] = True
    box = scenes.box_from_mask(mask, track_id=2, label="x")
    assert (box.x0, box.y0, box.x1, box.y1, box.track_id) == (1, 2, 7, 6, 2)
    assert scenes.box_from_mask(np.zeros((3, 3), bool)) is None


def test_occluder_removes_the_object_pixels_behind_it():
    """A 10x10 square at x 5..14 behind a 4-pixel pole at x 8..11: visible = square minus pole."""
    height, width = 20, 24
    world = np.full((height, width, 3), 0.5, np.float32)
    square = scenes.SceneObject(
        0, "blob", "noise", np.ones((10, 10, 3), np.float32), np.ones((10, 10), np.float32), start=(9.5, 9.5)
    )
    pole = scenes.Occluder(
        np.zeros((height, 4, 3), np.float32),
        np.ones((height, 4), np.float32),
        start=(9.5, (height - 1) / 2),
        velocity=(0.0, 0.0),
    )
    scene = scenes.Scene(height, width, 1, world, [np.eye(3)], [square], occluder=pole)
    (frame,) = scenes.render(scene)
    expected = np.zeros((height, width), bool)
    expected[5:15, 5:15] = True
    expected[:, 8:12] = False
    np.testing.assert_array_equal(frame.masks[0], expected)
    assert frame.boxes[0].occluded and (frame.boxes[0].x0, frame.boxes[0].x1) == (5, 15)
    assert (frame.image[10, 9] == 0).all() and (frame.image[10, 6] == 255).all()


def test_metadata_covers_camera_motion_static_objects_and_unseen_categories(smoke_world):
    m = smoke_world
    for dataset in ("davis", "youtube_objects", "imagenet_vid"):
        assert {r["camera_motion"] for r in m.records(dataset)} > {"static"}, dataset
    assert {r["static_objects"] for r in m.records("youtube_objects")} == {True, False}
    assert not any(r["static_objects"] for r in m.records("davis"))
    unseen = set(m.unseen_categories)
    assert unseen == {content.category_name(*c) for c in content.UNSEEN_CATEGORIES} and unseen
    training = (
        m.records("duts", split="train") + m.records("imagenet_vid") + m.records("davis", split="train")
    )
    assert not {o["category"] for r in training for o in r["objects"]} & unseen
    testing = m.records("duts", split="test") + m.records("davis", split="val") + m.records("youtube_objects")
    assert {o["category"] for r in testing for o in r["objects"]} & unseen


def test_static_objects_stand_still_under_a_static_camera(smoke_world):
    videos = load_videos("youtube_objects", smoke_world.dataset_root("youtube_objects"))
    records = [smoke_world.record("youtube_objects", v.name) for v in videos]
    still = [
        v
        for v, r in zip(videos, records, strict=True)
        if r["static_objects"] and r["camera_motion"] == "static" and not r["occluder"]
    ]
    moving = [
        v
        for v, r in zip(videos, records, strict=True)
        if not r["static_objects"] and r["camera_motion"] == "static"
    ]
    assert still and moving, "the smoke world should film static and moving objects with a static camera"
    for video in still:
        first, *rest = (video.mask(i) for i in video.annotated_indices)
        for mask in rest:
            np.testing.assert_array_equal(mask, first)
    for video in moving:
        first, *rest = (video.mask(i) for i in video.annotated_indices)
        assert any((mask != first).any() for mask in rest)


def test_existing_world_is_reused_and_foreign_folders_are_refused(tmp_path):
    out = tmp_path / "world"
    generate(TINY, 1, out)
    marker = out / "DUTS" / "DUTS-TR" / "DUTS-TR-Image" / "synth_train_00000.jpg"
    before = marker.stat().st_mtime_ns
    generate(TINY, 1, out)
    assert marker.stat().st_mtime_ns == before
    generate(TINY, 2, out)
    assert marker.stat().st_mtime_ns != before and SynthManifest.load(out).seed == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="refusing"):
        generate(TINY, 1, foreign)


def test_cli_generates_the_smoke_world(tmp_path, capsys):
    assert cli_main(["synth", "--profile", "smoke", "--seed", "5", "--out", str(tmp_path / "w")]) == 0
    assert "davis" in capsys.readouterr().out
    manifest = SynthManifest.load(tmp_path / "w")
    assert manifest.complete and manifest.config == SMOKE.as_dict()


def test_motion_study_separates_static_objects_and_camera_motion(smoke_world):
    from fusionseg.synth.study import motion_table, summarize_motion

    table = motion_table(smoke_world, "youtube_objects")
    assert len(table) == len(YOUTUBE_OBJECTS_CATEGORIES) * len(
        range(0, SMOKE.yto_frames, SMOKE.yto_annotation_step)
    )
    assert table[["flow_th_J", "flow_th_compensated_J"]].apply(lambda c: c.between(0, 1)).all().all()
    still = table[(table.camera_motion == "static") & table.static_objects]
    panned = table[(table.camera_motion == "pan") & ~table.static_objects]
    assert still.object_flow.mean() < 0.5 and panned.background_flow.mean() > 1.0
    assert set(summarize_motion(table).columns) >= {"clips", "frames", "flow_th_J"}
