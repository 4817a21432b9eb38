"""Readers on the real DAVIS copy and on fixtures written in each official layout."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import scipy.io
from data_fixtures import (
    VID_SNIPPET,
    frames,
    rect,
    vid_boxes,
    write_davis,
    write_duts,
    write_segtrack,
    write_vid,
    write_voc_sbd,
    write_youtube_objects,
)

from fusionseg.data import layouts, load_image_set, load_videos
from fusionseg.data.davis import read_db_info
from fusionseg.data.types import IGNORE, Box
from fusionseg.io import DataError, image_size

# --- DAVIS -------------------------------------------------------------------------------------------


def test_real_davis_counts_splits_and_sizes(davis_root):
    videos = {split: load_videos("davis", davis_root, split) for split in ("train", "val", "trainval")}
    assert [len(videos[s]) for s in ("train", "val", "trainval")] == [30, 20, 50]
    assert [sum(len(v) for v in videos[s]) for s in ("train", "val", "trainval")] == [2079, 1376, 3455]
    assert {v.name for v in videos["train"]}.isdisjoint(v.name for v in videos["val"])
    bear = next(v for v in videos["train"] if v.name == "bear")
    assert len(bear) == 82 and bear.frames[0].name == "00000" and bear.frames[-1].name == "00081"
    assert image_size(bear.frames[0].image_path) == (240, 427)  # frames downsampled 2x ...
    assert image_size(bear.frames[0].mask_paths[0]) == (480, 854)  # ... annotations untouched
    label = bear.label(0)
    assert label.shape == (480, 854) and set(np.unique(label)) == {0, 1}
    assert all(f.annotated for v in videos["trainval"] for f in v.frames)


def test_real_davis_db_info_agrees_and_has_no_categories(davis_root):
    info = read_db_info(davis_root)
    videos = load_videos("davis", davis_root, "trainval")
    assert len(info) == 50
    assert all(info[v.name]["num_frames"] == len(v) for v in videos)
    assert {info[v.name]["set"] for v in load_videos("davis", davis_root, "val")} == {"test"}
    assert "DEF" in info["bear"]["attributes"]
    assert {v.category for v in videos} == {""}  # the official db_info.yml names no categories


def test_davis_fixture_categories_masks_and_default_split(tmp_path):
    write_davis(tmp_path)
    videos = load_videos("davis", tmp_path)  # default split: trainval
    assert [(v.name, v.category, len(v)) for v in videos] == [
        ("bear", "animal", 3),
        ("boat", "", 2),
        ("car", "", 4),
    ]
    np.testing.assert_array_equal(videos[2].mask(3), rect(5, 9, 5, 15))
    assert [v.name for v in load_videos("davis", tmp_path, "val")] == ["car"]


def test_davis_missing_annotation_is_named(tmp_path):
    write_davis(tmp_path)
    missing = tmp_path / "Annotations" / "480p" / "boat" / "00001.png"
    missing.unlink()
    with pytest.raises(DataError, match="boat.*1 file.*missing") as error:
        load_videos("davis", tmp_path, "train")
    assert str(missing) in str(error.value)


def test_davis_missing_split_file_and_bad_line(tmp_path):
    with pytest.raises(DataError, match="val.txt: file not found"):
        load_videos("davis", tmp_path, "val")
    write_davis(tmp_path)
    (tmp_path / "ImageSets" / "480p" / "val.txt").write_text("/JPEGImages/480p/car/00000.jpg\n")
    with pytest.raises(DataError, match=r"val.txt:1: expected '<image> <annotation>'"):
        load_videos("davis", tmp_path, "val")


def test_corrupt_frame_raises_when_decoded_not_when_listed(tmp_path):
    write_davis(tmp_path)
    corrupt = tmp_path / "JPEGImages" / "480p" / "car" / "00002.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    car = load_videos("davis", tmp_path, "val")[0]
    with pytest.raises(DataError, match="00002.jpg: not a readable image"):
        car.image(2)


# --- SegTrack-v2 ----------------------------------------------------------------------------------------


def test_segtrack_quirks(tmp_path):
    write_segtrack(tmp_path)
    videos = {v.name: v for v in load_videos("segtrack", tmp_path)}
    assert list(videos) == ["birdfall", "bmx", "worm"]  # the stray CSI_NY.jpg is not a sequence
    bmx = videos["bmx"]
    assert [f.image_path.suffix for f in bmx.frames] == [".bmp", ".bmp"]
    assert [p.parent.name for p in bmx.frames[1].mask_paths] == ["1", "2"]
    # 3-channel GT, two objects merged with logical OR
    np.testing.assert_array_equal(bmx.mask(1), rect(0, 2, 0, 2) | rect(8, 10, 8, 10))
    assert bmx.label(0).sum() == 8
    worm = videos["worm"]  # .png frames with .bmp ground truth, matched by stem
    assert worm.frames[0].mask_paths[0].suffix == ".bmp"
    np.testing.assert_array_equal(worm.mask(0), rect(4, 6, 0, 16))


def test_segtrack_without_image_sets_lists_folders(tmp_path):
    write_segtrack(tmp_path)
    for index_file in (tmp_path / "ImageSets").iterdir():
        index_file.unlink()
    videos = load_videos("segtrack", tmp_path)
    assert [(v.name, len(v)) for v in videos] == [("birdfall", 3), ("bmx", 2), ("worm", 2)]


def test_a_partial_segtrack_copy_reads_as_the_subset_it_is(tmp_path):
    import shutil

    from fusionseg.data.segtrack import present_sequences
    from fusionseg.data.verify import verify_dataset

    write_segtrack(tmp_path)
    shutil.rmtree(tmp_path / "JPEGImages" / "bmx")  # a partial download: listed, not there
    assert present_sequences(tmp_path) == (["birdfall", "worm"], ["bmx"])
    with pytest.warns(UserWarning, match="2 of 3 sequences present .*missing: bmx"):
        videos = load_videos("segtrack", tmp_path)
    assert [v.name for v in videos] == ["birdfall", "worm"]
    report = verify_dataset("segtrack", tmp_path, expect_subset=True)
    assert "2 of 3 sequences present (birdfall, worm); missing: bmx" in report.notes
    for name in ("birdfall", "worm"):
        shutil.rmtree(tmp_path / "JPEGImages" / name)
    with pytest.raises(DataError, match="none of the 3 listed SegTrack-v2 sequences"):
        load_videos("segtrack", tmp_path)


def test_segtrack_orphan_and_missing_ground_truth(tmp_path):
    write_segtrack(tmp_path)
    orphan = tmp_path / "GroundTruth" / "birdfall" / "birdfall_00007.png"
    orphan.write_bytes((tmp_path / "GroundTruth" / "birdfall" / "birdfall_00000.png").read_bytes())
    with pytest.raises(DataError, match="1 mask.*without an image") as error:
        load_videos("segtrack", tmp_path)
    assert str(orphan) in str(error.value)
    orphan.unlink()
    (tmp_path / "GroundTruth" / "worm" / "worm_00001.bmp").unlink()
    with pytest.raises(DataError, match="worm: 1 frame.*without ground truth"):
        load_videos("segtrack", tmp_path)


def test_segtrack_same_stem_twice_is_ambiguous(tmp_path):
    write_segtrack(tmp_path)
    folder = tmp_path / "JPEGImages" / "birdfall"
    (folder / "birdfall_00000.bmp").write_bytes((folder / "birdfall_00000.png").read_bytes())
    with pytest.raises(DataError, match="both birdfall_00000.bmp and birdfall_00000.png"):
        load_videos("segtrack", tmp_path)


# --- YouTube-Objects -----------------------------------------------------------------------------------------


def test_youtube_objects_sparse_labels(tmp_path):
    write_youtube_objects(tmp_path)
    videos = load_videos("youtube_objects", tmp_path)
    assert [(v.name, v.category, len(v), v.annotated_indices) for v in videos] == [
        ("cat-0001-001", "cat", 4, [0, 2]),
        ("dog-0007-001", "dog", 2, [1]),
    ]
    cat = videos[0]
    assert cat.label(1) is None
    np.testing.assert_array_equal(cat.mask(2), rect(3, 9, 3, 9))  # JPEG noise removed by threshold 127
    assert load_videos("youtube_objects", tmp_path / "youtube_masks")[1].name == "dog-0007-001"


def test_youtube_objects_label_without_frame(tmp_path):
    write_youtube_objects(tmp_path)
    labels = tmp_path / "youtube_masks" / "dog" / "data" / "0007" / "shots" / "001" / "labels"
    (labels / "00001.jpg").rename(labels / "00009.jpg")
    with pytest.raises(DataError, match=r"00009\.jpg"):
        load_videos("youtube_objects", tmp_path)


# --- DUTS and VOC + SBD -----------------------------------------------------------------------------------------


def test_real_duts_subset(duts_root):
    train, test = load_image_set("duts", duts_root, "train"), load_image_set("duts", duts_root, "test")
    assert (train.name, len(train), test.name, len(test)) == ("DUTS-TR", 5000, "DUTS-TE", 500)
    assert train.items[0].image_path.stem == train.items[0].mask_path.stem
    assert set(np.unique(test.label(0))) == {0, 1}


def test_duts_fixture_and_unpaired_image(tmp_path):
    write_duts(tmp_path)
    test = load_image_set("duts", tmp_path, "test")
    assert [p.name for p in test.items] == ["img_0", "img_1"]
    np.testing.assert_array_equal(test.label(1), rect(1, 5, 0, 5).astype(np.uint8))
    (tmp_path / "DUTS-TR" / "DUTS-TR-Mask" / "img_1.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) without a mask:\n.*img_1.jpg"):
        load_image_set("duts", tmp_path, "train")


def test_voc_train_aug_definition_and_masks(tmp_path):
    write_voc_sbd(tmp_path)
    train_aug = load_image_set("voc", tmp_path)
    assert [p.name for p in train_aug.items] == ["2008_00000a", "2008_00000b", "2008_00000d", "2008_00000e"]
    assert [p.mask_path.suffix for p in train_aug.items] == [".png", ".png", ".mat", ".mat"]
    from_voc, from_sbd = train_aug.label(0), train_aug.label(2)
    assert (from_voc[0] == IGNORE).all() and from_voc[4, 5] == 1 and from_voc[10, 10] == 0
    assert (from_sbd[0] == 0).all() and from_sbd[4, 5] == 1 and from_sbd.sum() == 4 * 8
    val = load_image_set("voc", tmp_path, "val")
    assert [p.name for p in val.items] == ["2008_00000c"]


def test_voc_bad_mat_and_missing_sbd(tmp_path):
    write_voc_sbd(tmp_path)
    mat = tmp_path / "benchmark_RELEASE" / "dataset" / "cls" / "2008_00000d.mat"
    scipy.io.savemat(mat, {"GTinst": {"Segmentation": np.zeros((2, 2), np.uint8)}})
    with pytest.raises(DataError, match="2008_00000d.mat: not an SBD class file"):
        load_image_set("voc", tmp_path).label(2)
    (tmp_path / "benchmark_RELEASE" / "dataset" / "val.txt").unlink()
    with pytest.raises(DataError, match="dataset/val.txt: file not found .*SBD val list"):
        load_image_set("voc", tmp_path)
    assert len(load_image_set("voc", tmp_path, "train")) == 2  # VOC's own lists need no SBD


# --- ImageNet VID -----------------------------------------------------------------------------------------------


def test_vid_boxes_tracks_and_flags(tmp_path):
    write_vid(tmp_path)
    (video,) = load_videos("imagenet_vid", tmp_path)
    assert (video.name, video.category, len(video)) == (VID_SNIPPET, "n02084071,n02691156", 3)
    assert [f.name for f in video.frames] == ["000000", "000001", "000002"]
    assert [list(f.boxes) for f in video.frames] == vid_boxes()  # half-open boxes survive the round trip
    generated = [(i, b.track_id) for i, f in enumerate(video.frames) for b in f.boxes if b.generated]
    assert generated == [(1, 0)]
    assert {b.track_id for f in video.frames for b in f.boxes if b.label == "n02691156"} == {1}
    assert not video.frames[0].annotated  # boxes, no masks


def test_vid_lists_from_folders_without_image_sets(tmp_path):
    write_vid(tmp_path)
    layouts.write_vid_snippet(
        tmp_path, "ILSVRC2015_VID_train_0001", "ILSVRC2015_train_00100000", frames(1), [[]]
    )
    # a snippet without boxes is in no train_<class>.txt list: listing falls back only when none exist
    assert len(load_videos("imagenet_vid", tmp_path)) == 1
    for index_file in (tmp_path / "ImageSets" / "VID").iterdir():
        index_file.unlink()
    assert [v.name for v in load_videos("imagenet_vid", tmp_path)] == [
        VID_SNIPPET,
        "ILSVRC2015_train_00100000",
    ]


def test_vid_broken_xml_is_named(tmp_path):
    write_vid(tmp_path)
    xml = next((tmp_path / "Annotations").rglob("000001.xml"))
    xml.write_text("<annotation><size><width>4</width></size>")
    with pytest.raises(DataError, match="000001.xml: not a readable ImageNet VID annotation"):
        load_videos("imagenet_vid", tmp_path)
    xml.unlink()
    with pytest.raises(DataError, match="1 frame.*without an annotation XML"):
        load_videos("imagenet_vid", tmp_path)


# --- dispatch and laziness --------------------------------------------------------------------------------------


def test_unknown_dataset_and_split_are_clear(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'davis2017'"):
        load_videos("davis2017", tmp_path)
    with pytest.raises(DataError, match="it is an image set: use load_image_set"):
        load_videos("duts", tmp_path)
    with pytest.raises(DataError, match="davis has no split 'test'.*'trainval', 'train', 'val'"):
        load_videos("davis", tmp_path, "test")
    with pytest.raises(DataError, match="duts has no split 'val'"):
        load_image_set("duts", tmp_path, "val")


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    """A 1,000-frame video in each video layout (2x2 frames, to keep writing fast)."""
    root = tmp_path_factory.mktemp("long")
    n = 1000
    tiny, masks = frames(n, 2, 2), [rect(0, 1, 0, 1, 2, 2)] * n
    layouts.write_davis_sequence(root / "davis", "long", tiny, masks, "train")
    layouts.write_segtrack_sequence(root / "segtrack", "long", tiny, [masks, masks])
    layouts.write_youtube_objects_shot(root / "youtube_objects", "cat", 1, tiny, masks)
    layouts.write_vid_snippet(
        root / "imagenet_vid", "c", "long", tiny, [[Box(0, 0, 1, 1, label="n02084071")]] * n
    )
    return root


@pytest.mark.parametrize("dataset", ["davis", "segtrack", "youtube_objects", "imagenet_vid"])
def test_listing_a_1000_frame_video_decodes_nothing(long_videos, dataset, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was opened while listing")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    (video,) = load_videos(
        dataset, long_videos / dataset, "train" if dataset in ("davis", "imagenet_vid") else None
    )
    assert len(video) == 1000 and video.frames[-1].name.endswith("999")
    with pytest.raises(AssertionError, match="opened while listing"):
        video.image(0)  # the patch is live: decoding would have been caught
