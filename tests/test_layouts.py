"""The layout writers put every file where the official releases keep it, in the official format."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import scipy.io
import yaml
from data_fixtures import (
    VID_CHUNK,
    VID_SNIPPET,
    frames,
    rect,
    voc_label,
    write_davis,
    write_duts,
    write_segtrack,
    write_vid,
    write_voc_sbd,
    write_youtube_objects,
)
from PIL import Image

from fusionseg.data import layouts
from fusionseg.data.types import Box


def test_davis_layout_files_split_lists_and_db_info(tmp_path):
    write_davis(tmp_path)
    assert sorted(p.name for p in (tmp_path / "JPEGImages" / "480p" / "bear").iterdir()) == [
        "00000.jpg",
        "00001.jpg",
        "00002.jpg",
    ]
    with Image.open(tmp_path / "Annotations" / "480p" / "car" / "00003.png") as png:
        assert png.format == "PNG"
        raw = np.asarray(png)
    assert set(np.unique(raw)) == {0, 255}
    assert (raw == 255).sum() == 4 * 10
    train = (tmp_path / "ImageSets" / "480p" / "train.txt").read_text().splitlines()
    assert train[0] == "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png"
    assert len(train) == 5
    val = (tmp_path / "ImageSets" / "480p" / "val.txt").read_text().splitlines()
    assert val == [f"/JPEGImages/480p/car/{i:05d}.jpg /Annotations/480p/car/{i:05d}.png" for i in range(4)]
    trainval = (tmp_path / "ImageSets" / "480p" / "trainval.txt").read_text().splitlines()
    assert len(trainval) == 9
    info = yaml.safe_load((tmp_path / "Annotations" / "db_info.yml").read_text())
    assert info["attributes"] == ["OCC"]
    entries = {s["name"]: s for s in info["sequences"]}
    assert entries["bear"] == {
        "attributes": [],
        "name": "bear",
        "num_frames": 3,
        "set": "training",
        "eval_t": True,
        "category": "animal",
    }
    assert entries["car"]["set"] == "test" and "category" not in entries["car"]


def test_davis_db_info_has_the_real_files_keys(tmp_path, davis_root):
    write_davis(tmp_path)
    ours = yaml.safe_load((tmp_path / "Annotations" / "db_info.yml").read_text())
    real = yaml.safe_load((davis_root / "Annotations" / "db_info.yml").read_text())
    assert set(ours) == set(real)
    assert set(ours["sequences"][1]) == set(real["sequences"][0])  # "boat": no category key


def test_davis_rewriting_a_sequence_replaces_its_entry(tmp_path):
    write_davis(tmp_path)
    layouts.write_davis_sequence(tmp_path, "car", frames(2), [rect(0, 1, 0, 1)] * 2, "train")
    info = yaml.safe_load((tmp_path / "Annotations" / "db_info.yml").read_text())
    assert [s["name"] for s in info["sequences"]] == ["bear", "boat", "car"]
    assert (tmp_path / "ImageSets" / "480p" / "val.txt").read_text() == ""
    assert len((tmp_path / "ImageSets" / "480p" / "train.txt").read_text().splitlines()) == 7


def test_segtrack_layout_quirks(tmp_path):
    write_segtrack(tmp_path)
    assert (tmp_path / "ImageSets" / "all.txt").read_text() == "*birdfall\n*bmx\n*worm\n"
    assert (tmp_path / "ImageSets" / "bmx.txt").read_text() == "bmx/\nbmx_00000\nbmx_00001\n"
    with Image.open(tmp_path / "JPEGImages" / "bmx" / "bmx_00000.bmp") as bmp:
        assert bmp.format == "BMP"
    with Image.open(tmp_path / "GroundTruth" / "bmx" / "2" / "bmx_00001.png") as gt:
        assert gt.mode == "RGB"
        assert np.asarray(gt)[8:10, 8:10].tolist() == [[[255] * 3] * 2] * 2
    assert not list((tmp_path / "GroundTruth" / "bmx").glob("*.png"))  # only in 1/ and 2/
    assert (tmp_path / "GroundTruth" / "worm" / "worm_00000.bmp").is_file()
    assert (tmp_path / "JPEGImages" / "CSI_NY.jpg").is_file()


def test_youtube_objects_labels_only_for_annotated_frames(tmp_path):
    write_youtube_objects(tmp_path)
    shot = tmp_path / "youtube_masks" / "cat" / "data" / "0001" / "shots" / "001"
    assert sorted(p.name for p in (shot / "images").iterdir()) == [f"{i:05d}.jpg" for i in range(4)]
    assert sorted(p.name for p in (shot / "labels").iterdir()) == ["00000.jpg", "00002.jpg"]
    with Image.open(shot / "labels" / "00000.jpg") as label:
        assert (label.format, label.mode) == ("JPEG", "L")


def test_voc_png_keeps_class_indices_and_sbd_mat_holds_gtcls(tmp_path):
    write_voc_sbd(tmp_path)
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    with Image.open(voc / "SegmentationClass" / "2008_00000a.png") as png:
        assert png.mode == "P"
        np.testing.assert_array_equal(np.asarray(png), voc_label())
        assert png.getpalette()[15 * 3 : 15 * 3 + 3] == [192, 128, 128]  # VOC's colour for person
    sets = voc / "ImageSets" / "Segmentation"
    assert (sets / "train.txt").read_text().split() == ["2008_00000a", "2008_00000b"]
    assert (sets / "trainval.txt").read_text().split() == ["2008_00000a", "2008_00000b", "2008_00000c"]
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    assert (sbd / "val.txt").read_text().split() == ["2008_00000e", "2008_00000a"]
    mat = scipy.io.loadmat(sbd / "cls" / "2008_00000d.mat", squeeze_me=True, struct_as_record=False)
    assert mat["GTcls"].Segmentation[4, 5] == 15 and mat["GTcls"].Segmentation.max() == 15


def test_vid_xml_and_image_sets(tmp_path):
    write_vid(tmp_path)
    relative = f"{VID_CHUNK}/{VID_SNIPPET}"
    assert (tmp_path / "Data" / "VID" / "train" / relative / "000002.JPEG").is_file()
    xml = ET.parse(tmp_path / "Annotations" / "VID" / "train" / relative / "000001.xml").getroot()
    assert xml.findtext("folder") == relative and xml.findtext("filename") == "000001"
    assert (xml.findtext("size/width"), xml.findtext("size/height")) == ("16", "12")
    dog, plane = xml.findall("object")
    assert [dog.findtext(t) for t in ("trackid", "name", "occluded", "generated")] == [
        "0",
        "n02084071",
        "0",
        "1",
    ]
    assert [dog.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == ["2", "2", "5", "5"]
    assert [plane.findtext(t) for t in ("trackid", "occluded", "generated")] == ["1", "1", "0"]
    sets = tmp_path / "ImageSets" / "VID"
    assert (sets / "train_1.txt").read_text() == f"{relative} 1\n"  # airplane is class 1
    assert (sets / "train_9.txt").read_text() == f"{relative} 1\n"  # dog is class 9
    assert sorted(p.name for p in sets.iterdir()) == ["train_1.txt", "train_9.txt"]


def test_vid_val_list_counts_frames(tmp_path):
    boxes = [[Box(0, 0, 2, 2, label="n02084071")]] * 2
    layouts.write_vid_snippet(tmp_path, "", "ILSVRC2015_val_00000000", frames(2), boxes, split="val")
    layouts.write_vid_snippet(tmp_path, "", "ILSVRC2015_val_00000001", frames(1), boxes[:1], split="val")
    assert (tmp_path / "ImageSets" / "VID" / "val.txt").read_text().splitlines() == [
        "ILSVRC2015_val_00000000/000000 1",
        "ILSVRC2015_val_00000000/000001 2",
        "ILSVRC2015_val_00000001/000000 3",
    ]
    assert (tmp_path / "Data" / "VID" / "val" / "ILSVRC2015_val_00000001" / "000000.JPEG").is_file()


def test_duts_layout(tmp_path):
    write_duts(tmp_path)
    assert (tmp_path / "DUTS-TR" / "DUTS-TR-Image" / "img_2.jpg").is_file()
    with Image.open(tmp_path / "DUTS-TE" / "DUTS-TE-Mask" / "img_1.png") as png:
        assert set(np.unique(np.asarray(png))) == {0, 255}


@pytest.mark.parametrize(
    "write",
    [
        lambda root: layouts.write_davis_sequence(root, "a", frames(2), [rect(0, 1, 0, 1)], "train"),
        lambda root: layouts.write_davis_sequence(root, "a", frames(1), [rect(0, 1, 0, 1)], "test"),
        lambda root: layouts.write_segtrack_sequence(
            root, "a", frames(1), [[rect(0, 1, 0, 1)]], gt_channels=2
        ),
        lambda root: layouts.write_vid_snippet(root, "c", "s", frames(1), [[Box(0, 0, 1, 1, label="cat")]]),
        lambda root: layouts.write_vid_snippet(root, "", "s", frames(1), [[]], split="train"),
        lambda root: layouts.write_sbd_image(root, "x", frames(1)[0], voc_label(), split="trainval"),
    ],
    ids=["davis-lengths", "davis-split", "segtrack-channels", "vid-synset", "vid-chunk", "sbd-split"],
)
def test_writers_reject_bad_arguments(tmp_path, write):
    with pytest.raises(ValueError):
        write(tmp_path)
