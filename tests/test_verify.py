"""`fusionseg data verify`: counts, missing and stray files, decoding, mask sizes, exit status."""

from __future__ import annotations

import numpy as np
import yaml
from data_fixtures import frames, rect, write_davis, write_duts, write_segtrack, write_youtube_objects

from fusionseg.cli import main
from fusionseg.data import layouts
from fusionseg.data.verify import verify_dataset


def test_clean_fixture_passes_with_subset_warnings(tmp_path):
    report = verify_dataset("segtrack", write_segtrack(tmp_path))
    assert report.ok, report.render()
    assert report.counts == ["all: 3 sequences (official 14), 7 frames (official 1,066)"]
    assert len(report.warnings) == 2 and "a subset?" in report.warnings[0]
    quiet = verify_dataset("segtrack", tmp_path, expect_subset=True)
    assert quiet.ok and not quiet.warnings and len(quiet.notes) == 2


def test_missing_mask_is_a_problem_naming_the_file(tmp_path, capsys):
    write_duts(tmp_path)
    missing = tmp_path / "DUTS-TE" / "DUTS-TE-Mask" / "img_0.png"
    missing.unlink()
    assert main(["data", "verify", "duts", "--root", str(tmp_path), "--expect-subset"]) == 1
    out = capsys.readouterr().out
    image_without_mask = tmp_path / "DUTS-TE" / "DUTS-TE-Image" / "img_0.jpg"
    assert "PROBLEM: test: saliency set" in out and f"without a mask:\n  {image_without_mask}" in out
    assert "train: 3 images (official 10,553)" in out and out.rstrip().endswith(
        "FAILED: 1 problem(s) (0 warning(s))"
    )


def test_corrupt_image_is_reported(tmp_path):
    write_davis(tmp_path)
    corrupt = tmp_path / "JPEGImages" / "480p" / "boat" / "00001.jpg"
    corrupt.write_bytes(b"not a jpeg")
    report = verify_dataset("davis", tmp_path, expect_subset=True)
    assert len(report.problems) == 1
    assert "1 unreadable file" in report.problems[0] and str(corrupt) in report.problems[0]
    assert verify_dataset("davis", tmp_path, expect_subset=True, decode=False).ok  # --quick skips decoding


def test_stray_frame_and_db_info_disagreement(tmp_path):
    write_davis(tmp_path)
    stray = tmp_path / "JPEGImages" / "480p" / "car" / "00004.jpg"
    stray.write_bytes((tmp_path / "JPEGImages" / "480p" / "car" / "00000.jpg").read_bytes())
    info_path = tmp_path / "Annotations" / "db_info.yml"
    info = yaml.safe_load(info_path.read_text())
    info["sequences"][0]["num_frames"] = 9  # bear
    info_path.write_text(yaml.safe_dump(info))
    report = verify_dataset("davis", tmp_path, ["train", "val"], expect_subset=True, decode=False)
    problems = "\n".join(report.problems)
    assert "val: 1 image file(s) no frame refers to" in problems and str(stray) in problems
    assert "bear: db_info.yml says 9 frames, train.txt lists 3" in problems


def test_mask_sizes(tmp_path):
    big = [rect(0, 4, 0, 4, 24, 32)] * 2
    layouts.write_davis_sequence(tmp_path, "half", frames(2), big, "train")  # frames 2x smaller: a warning
    report = verify_dataset("davis", tmp_path, ["train"], expect_subset=True)
    assert report.ok and len(report.warnings) == 1
    assert (
        "2 mask(s) are 2.0x their image's size" in report.warnings[0]
        and "image 16x12, mask 32x24" in report.warnings[0]
    )
    layouts.write_davis_sequence(tmp_path, "odd", frames(2), [rect(0, 4, 0, 4, 12, 20), big[0]], "val")
    report = verify_dataset("davis", tmp_path, ["val"], expect_subset=True)
    problems = "\n".join(report.problems)
    assert "1 mask(s) not a uniform scale of their image" in problems and "odd/00000.jpg" in problems
    assert "masks of several sizes within one video:\n  odd" in problems


def test_more_than_official_is_a_problem_and_categories_are_checked(tmp_path):
    write_youtube_objects(tmp_path)
    layouts.write_youtube_objects_shot(tmp_path, "kangaroo", 1, frames(1), [np.ones((12, 16), bool)])
    report = verify_dataset("youtube_objects", tmp_path, expect_subset=True)
    assert report.problems == [
        "unknown categories ['kangaroo']: expected "
        "['aeroplane', 'bird', 'boat', 'car', 'cat', 'cow', 'dog', 'horse', 'motorbike', 'train']"
    ]
    assert report.counts == ["all: 3 shots (official 126), 3 categories (official 10), 7 frames"]


def test_bad_root_and_unknown_split(tmp_path, capsys):
    assert main(["data", "verify", "davis", "--root", str(tmp_path / "nowhere"), "--quick"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: train: " in out and "train.txt: file not found" in out
    report = verify_dataset("duts", write_duts(tmp_path), ["val"])
    assert report.problems == ["val: duts has no split 'val': expected one of ['train', 'test']"]


def test_real_davis_quick(davis_root):
    report = verify_dataset("davis", davis_root, decode=False)
    assert report.ok and not report.warnings, report.render()
    assert report.counts[-1] == "trainval: 50 sequences (official 50), 3,455 frames (official 3,455)"
