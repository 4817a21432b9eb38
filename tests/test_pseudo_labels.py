"""Pseudo-label bootstrapping (Sec. 3.2): each step on hand-built cases, then the pipeline on a tiny
DAVIS-layout world with a stand-in appearance model."""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from fusionseg import pseudo_labels as pl
from fusionseg.data import load_videos
from fusionseg.data.layouts import write_davis_sequence
from fusionseg.data.types import Box, Frame, Video
from fusionseg.io import read_gray, read_rgb, write_png

CONFIG = pl.PseudoLabelConfig()


def rect_mask(shape, x0, y0, x1, y1):
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def ellipse_mask(shape, box: Box):
    """The ellipse inscribed in a box: touches all four sides, fills pi/4 of it."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    cx, cy = (box.x0 + box.x1 - 1) / 2, (box.y0 + box.y1 - 1) / 2
    rx, ry = box.width / 2, box.height / 2
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1


def flow_with_patch(shape, box: Box, inside, outside=(255, 255, 255)):
    image = np.empty((*shape, 3), dtype=np.uint8)
    image[:] = outside
    image[int(box.y0) : int(box.y1), int(box.x0) : int(box.x1)] = inside
    return image


# ---- step 1: pruning ---------------------------------------------------------------------------


def test_pruning_sets_everything_outside_the_boxes_to_background():
    mask = np.ones((10, 10), dtype=bool)
    pruned = pl.prune_outside_boxes(mask, [Box(1, 1, 3, 4), Box(6, 5, 10, 10)])
    assert pruned.sum() == 2 * 3 + 4 * 5
    assert pruned[1:4, 1:3].all() and pruned[5:, 6:].all()
    assert not pruned[0].any() and not pruned[4].any()


# ---- step 2: box test --------------------------------------------------------------------------


def test_mask_spilling_out_of_its_box_is_pruned_and_then_fails_the_box_test():
    shape, box = (50, 50), Box(10, 10, 30, 30)
    mask = rect_mask(shape, 5, 5, 25, 25)  # only its 15x15 lower-right corner lies in the box
    pruned = pl.prune_outside_boxes(mask, [box])
    assert pruned.sum() == 15 * 15
    assert pl.enclosing_rectangle(pruned, box) == Box(10, 10, 25, 25)
    assert pl.box_overlap(pruned, box) == pytest.approx(
        225 / 400
    )  # IoU = |R| / |box| since R lies in the box
    assert pl.check_box(pruned, flow_with_patch(shape, box, (255, 0, 0)), box, CONFIG).reason == "box_test"


def test_box_overlap_is_the_iou_of_enclosing_rectangle_and_box():
    shape, box = (40, 40), Box(0, 0, 20, 20)
    mask = rect_mask(shape, 2, 0, 20, 18) & ~rect_mask(shape, 5, 5, 10, 10)  # holes do not matter
    rect = pl.enclosing_rectangle(mask, box)
    inter = 18 * 18
    iou = inter / (20 * 20 + 18 * 18 - inter)
    assert rect == Box(2, 0, 20, 18)
    assert pl.box_overlap(mask, box) == pytest.approx(iou) == pytest.approx(0.81)
    assert pl.step_passes("box_test", 0.75, CONFIG) and not pl.step_passes("box_test", 0.7499, CONFIG)


def test_box_without_foreground_fails_the_box_test():
    mask = rect_mask((30, 30), 0, 0, 5, 5)
    box = Box(10, 10, 20, 20)
    assert pl.enclosing_rectangle(mask, box) is None
    assert pl.box_overlap(mask, box) == 0.0


# ---- step 3: fill test -------------------------------------------------------------------------


def test_near_rectangular_mask_is_discarded_by_the_fill_test():
    shape, box = (40, 40), Box(10, 10, 30, 30)
    mask = rect_mask(shape, 10, 10, 30, 30)
    mask[10:12, 10:16] = False  # 12 of 400 pixels missing: 97% filled
    flow = flow_with_patch(shape, box, (255, 0, 0))
    check = pl.check_box(mask, flow, box, CONFIG)
    assert check.overlap == 1.0 and check.fill == pytest.approx(388 / 400)
    assert check.reason == "fill_test"
    ellipse = ellipse_mask(shape, box)  # touches the box's four sides, fills about pi/4 of it
    check = pl.check_box(ellipse, flow, box, CONFIG)
    assert check.overlap == 1.0 and check.fill == pytest.approx(math.pi / 4, abs=0.03)
    assert check.reason == "kept"


def test_mask_spilling_over_the_whole_box_fails_the_fill_test():
    shape, box = (50, 50), Box(10, 10, 30, 30)
    pruned = pl.prune_outside_boxes(rect_mask(shape, 0, 0, 50, 50), [box])
    check = pl.check_box(pruned, flow_with_patch(shape, box, (255, 0, 0)), box, CONFIG)
    assert (check.overlap, check.fill, check.reason) == (1.0, 1.0, "fill_test")


# ---- step 4: flow test -------------------------------------------------------------------------


def test_box_whose_flow_does_not_differ_from_its_surroundings_is_discarded():
    shape, box = (60, 60), Box(20, 20, 30, 30)
    mask = ellipse_mask(shape, box)
    same = flow_with_patch(shape, box, (255, 255, 255))
    check = pl.check_box(mask, same, box, CONFIG)
    assert check.flow_distance == 0.0 and check.reason == "flow_test"
    # Red box on white: the doubled box (15..35)^2 holds 100 red of 400 pixels, so its mean is
    # (255, 191.25, 191.25) and the distance to (255, 0, 0) is sqrt(2) * 191.25.
    moving = flow_with_patch(shape, box, (255, 0, 0))
    check = pl.check_box(mask, moving, box, CONFIG)
    assert check.flow_distance == pytest.approx(math.sqrt(2) * 191.25)
    assert check.reason == "kept"


def test_flow_threshold_is_strict_and_ring_reading_differs_from_the_whole_doubled_box():
    shape, box = (60, 60), Box(20, 20, 30, 30)
    flow = flow_with_patch(shape, box, (215, 255, 255))  # inner box 40 darker in red
    whole = pl.flow_contrast(flow, box, 2.0, "box")  # outer mean red = 255 - 40 * 100/400
    ring = pl.flow_contrast(flow, box, 2.0, "ring")  # the ring is all white
    assert whole == pytest.approx(30.0) and ring == pytest.approx(40.0)
    assert not pl.step_passes("flow_test", whole, CONFIG)  # "exceeds 30": 30 itself fails
    ring_config = dataclasses.replace(CONFIG, flow_context="ring")
    assert pl.step_passes("flow_test", ring, ring_config)


def test_doubled_box_is_clipped_at_the_image_border():
    shape = (40, 40)
    corner = Box(0, 0, 10, 10)
    assert pl.scaled_box(corner, 2.0, shape) == Box(0, 0, 15, 15)
    assert pl.scaled_box(Box(30, 35, 40, 40), 2.0, shape) == Box(25, 32.5, 40, 40)
    # Red 10x10 corner inside a clipped 15x15 doubled box: mean (255, 255*125/225, same).
    flow = flow_with_patch(shape, corner, (255, 0, 0))
    assert pl.flow_contrast(flow, corner) == pytest.approx(math.sqrt(2) * 255 * 125 / 225)
    # A box filling the image has no surroundings: the distance is 0 and the flow test fails.
    whole = Box(0, 0, 40, 40)
    assert pl.flow_contrast(flow, whole) == 0.0 and pl.flow_contrast(flow, whole, context="ring") == 0.0


# ---- several boxes in one frame ------------------------------------------------------------------


def two_box_frame():
    shape = (40, 80)
    good, bad = Box(5, 5, 25, 35), Box(45, 5, 75, 35)
    mask = ellipse_mask(shape, good) | ellipse_mask(shape, bad) | rect_mask(shape, 0, 38, 80, 40)
    flow = flow_with_patch(shape, good, (255, 0, 0))  # only the good box moves
    return shape, [good, bad], mask, flow


def test_several_boxes_frame_mode_discards_the_frame_when_one_box_fails():
    _, boxes, mask, flow = two_box_frame()
    reasons = [pl.check_box(mask, flow, box, CONFIG).reason for box in boxes]
    assert reasons == ["kept", "flow_test"]
    assert not pl.frame_kept(reasons, CONFIG)
    assert pl.frame_kept(["kept", "kept"], CONFIG)
    assert not pl.frame_kept([], CONFIG)


def test_several_boxes_mask_mode_keeps_the_frame_and_ignores_the_failed_box():
    shape, boxes, mask, flow = two_box_frame()
    config = dataclasses.replace(CONFIG, multi_box="mask")
    reasons = [pl.check_box(mask, flow, box, config).reason for box in boxes]
    assert pl.frame_kept(reasons, config)
    label = pl.pseudo_label(mask, boxes, reasons, config)
    assert set(np.unique(label)) == {0, 1, 255}
    assert (label[5:35, 45:75] == 255).all()  # the failed box
    assert ((label == 1) == ellipse_mask(shape, boxes[0])).all()  # the kept box's segment, pruned
    assert (label[38:] == 0).all()  # the stripe outside every box


def test_unpruned_label_keeps_foreground_outside_the_boxes():
    _, boxes, mask, _ = two_box_frame()
    label = pl.pseudo_label(mask, boxes, ["kept", "kept"], dataclasses.replace(CONFIG, prune=False))
    assert (label == 1).sum() == mask.sum()


def test_switching_a_test_off_lets_its_failures_through():
    assert pl.box_reason(0.5, 1.0, 0.0, CONFIG) == "box_test"
    assert (
        pl.box_reason(0.5, 1.0, 0.0, dataclasses.replace(CONFIG, steps=("fill_test", "flow_test")))
        == "fill_test"
    )
    assert pl.box_reason(0.5, 1.0, 0.0, dataclasses.replace(CONFIG, steps=())) == "kept"
    with pytest.raises(ValueError, match="unknown steps"):
        pl.PseudoLabelConfig(steps=("box",))


# ---- boxes from masks --------------------------------------------------------------------------


def test_boxes_from_masks_on_two_components():
    mask = rect_mask((100, 100), 10, 20, 30, 50) | rect_mask((100, 100), 60, 60, 90, 70)
    mask[95, 95] = True  # a speck below min_area (0.002 * 10,000 = 20 pixels)
    assert pl.boxes_from_masks(mask, merge="none") == [Box(10, 20, 30, 50), Box(60, 60, 90, 70)]
    assert pl.boxes_from_masks(mask, merge="overlapping") == [Box(10, 20, 30, 50), Box(60, 60, 90, 70)]
    assert pl.boxes_from_masks(mask) == [Box(10, 20, 90, 70)]  # default: one box around the object's pieces
    assert len(pl.boxes_from_masks(mask, min_area=0.0, merge="none")) == 3
    # Components whose boxes intersect (an L and a bar inside its corner) become one box.
    nested = (
        rect_mask((100, 100), 0, 0, 50, 10)
        | rect_mask((100, 100), 0, 0, 10, 50)
        | rect_mask((100, 100), 30, 30, 40, 40)
    )
    assert pl.boxes_from_masks(nested, merge="none") == [Box(0, 0, 50, 50), Box(30, 30, 40, 40)]
    assert pl.boxes_from_masks(nested, merge="overlapping") == [Box(0, 0, 50, 50)]


# ---- the pipeline on a tiny DAVIS-layout world ------------------------------------------------------

FRAME_SHAPE, ANNOTATION_SHAPE = (48, 64), (96, 128)


def tiny_davis(root):
    """Two sequences: frames 64x48 (as the real copy, half the annotations' size), red objects on grey.

    'mover': an ellipse object; 'block': a rectangular object (fails the fill test). Returns the
    stand-in appearance model's output per (video, frame): the object plus the stripe, exactly."""
    segmentations = {}
    for name, shaped in (("mover", True), ("block", False)):
        frames, masks = [], []
        for t in range(4):
            box = Box(8 + 4 * t, 8, 32 + 4 * t, 40)
            small = (
                ellipse_mask(FRAME_SHAPE, box)
                if shaped
                else rect_mask(FRAME_SHAPE, int(box.x0), 8, int(box.x1), 40)
            )
            frame = np.full((*FRAME_SHAPE, 3), 128, dtype=np.uint8)
            frame[small] = (230, 20, 20)
            frame[44:, :] = (230, 20, 20)  # a red stripe outside the object: the stand-in's false positive
            frames.append(frame)
            masks.append(np.kron(small, np.ones((2, 2), dtype=bool)))
            segmentations[name, t] = small | rect_mask(FRAME_SHAPE, 0, 44, 64, 48)
        write_davis_sequence(root, name, frames, masks, split="train")
    return segmentations


def stand_in_segmenter(segmentations, calls=None):
    """Finds the object exactly, and the stripe too (a false positive outside the box)."""

    def segment(video):
        if calls is not None:
            calls.append(video.name)
        return [segmentations[video.name, t].astype(np.float32) * 0.9 for t in range(len(video))]

    return segment


def frames_as_flow(video):
    """Stand-in flow images: the frame itself (the object differs in colour from its surroundings)."""
    return [video.image(i) for i in range(len(video))]


def test_boxed_from_masks_scales_boxes_to_the_frame_and_drops_the_masks(tmp_path):
    tiny_davis(tmp_path / "DAVIS")
    videos = load_videos("davis", tmp_path / "DAVIS", "train")
    boxed = pl.boxed_from_masks(videos[0])
    assert all(not frame.mask_paths for frame in boxed.frames)
    mask_box = pl.boxes_from_masks(videos[0].mask(0))[0]
    assert [(b.x0, b.x1) for b in boxed.frames[0].boxes] == [(mask_box.x0 / 2, mask_box.x1 / 2)]


def test_pipeline_writes_the_training_set_funnel_and_resumes(tmp_path):
    root = tmp_path / "DAVIS"
    segmentations = tiny_davis(root)
    videos = pl.weak_videos("davis", root, "train")
    out = tmp_path / "pseudo"
    calls: list[str] = []
    records = pl.run_pipeline(videos, stand_in_segmenter(segmentations, calls), frames_as_flow, CONFIG, out)
    assert sorted(calls) == ["block", "mover"]
    table = pd.read_csv(out / "funnel.csv")
    assert table["frames"].tolist() == [8, 8, 8, 4, 4]  # the rectangles fail the fill test
    manifest = pd.read_csv(out / "manifest.csv", dtype={"frame": str})
    assert manifest["video"].tolist() == ["mover"] * 4
    key = "mover_00001"
    assert (out / "images" / f"{key}.png").is_file() and (out / "frames" / f"{key}.jpg").is_file()
    label = read_gray(out / "masks" / f"{key}.png")
    assert set(np.unique(label)) == {0, 1} and not label[44:].any()  # the stripe was pruned
    assert read_rgb(out / "images" / f"{key}.png").shape == (*FRAME_SHAPE, 3)
    pairs = pl.load_pseudo_labels(out)
    assert len(pairs) == 4 and set(np.unique(pairs.label(0))) <= {0, 1}
    # A second run skips the finished videos and gives the same records.
    again = pl.run_pipeline(videos, stand_in_segmenter(segmentations, calls), frames_as_flow, CONFIG, out)
    assert sorted(calls) == ["block", "mover"]
    pd.testing.assert_frame_equal(
        records.reset_index(drop=True), again.reset_index(drop=True), check_dtype=False
    )
    with pytest.raises(pl.DataError, match="config.json"):
        pl.run_pipeline(
            videos,
            stand_in_segmenter(segmentations, calls),
            frames_as_flow,
            dataclasses.replace(CONFIG, max_fill=0.9),
            out,
        )


def test_frames_without_boxes_count_in_but_are_never_kept(tmp_path):
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    for image in images:
        write_png(image, np.zeros((8, 8, 3), dtype=np.uint8))
    video = Video("v", [Frame(images[0]), Frame(images[1], boxes=(Box(0, 0, 4, 4),))])
    segment = lambda v: [np.ones((8, 8), dtype=bool)] * 2  # noqa: E731
    records = pl.run_pipeline(
        [video], segment, lambda v: [np.zeros((8, 8, 3), np.uint8)] * 2, CONFIG, tmp_path / "o"
    )
    assert pl.funnel(records, CONFIG)["frames"].tolist() == [2, 1, 1, 0, 0]


def test_quality_study_scores_against_the_human_masks_at_annotation_size(tmp_path):
    root = tmp_path / "DAVIS"
    segmentations = tiny_davis(root)
    videos = pl.weak_videos("davis", root, "train")
    out = tmp_path / "pseudo"
    records = pl.run_pipeline(videos, stand_in_segmenter(segmentations), frames_as_flow, CONFIG, out)
    humans = load_videos("davis", root, "train")
    quality = pl.quality_study(records, out, humans, CONFIG, n_frames=3, seed=1).set_index("variant")
    # The stand-in finds the object exactly; pruning removes the stripe, so after pruning J = 100.
    assert quality.loc["all steps", "jaccard_sample"] == pytest.approx(100.0)
    assert quality.loc["all steps", "frames_kept"] == 4 and quality.loc["all steps", "frames_sampled"] == 3
    assert quality.loc["all steps", "paper_jaccard"] == 77.8
    # Before pruning the stripe (8 rows x 128 at annotation size) is a false positive on every frame.
    mover = next(video for video in humans if video.name == "mover")
    areas = [mover.mask(t).sum() for t in range(4)]
    expected = np.mean([100 * a / (a + 8 * 128) for a in areas])
    assert quality.loc["all steps, before pruning", "jaccard_all"] == pytest.approx(expected)
    assert quality.loc["all steps, before pruning", "frames_kept"] == 4
    assert quality.loc["without fill test", "frames_kept"] == 8  # the rectangles come back
    assert quality.loc["without fill test", "jaccard_all"] == pytest.approx(100.0)
    labels = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    labels[22:24, :] = 1
    assert pl.label_jaccard(labels, np.kron(labels == 1, np.ones((2, 2), dtype=bool))) == pytest.approx(100.0)


def test_examples_figure_has_the_papers_rows(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    root = tmp_path / "DAVIS"
    segmentations = tiny_davis(root)
    videos = pl.weak_videos("davis", root, "train")
    out = tmp_path / "pseudo"
    records = pl.run_pipeline(videos, stand_in_segmenter(segmentations), frames_as_flow, CONFIG, out)
    examples = pl.pick_examples(records, CONFIG)
    assert examples["outcome"].tolist() == ["kept", "kept", "fill_test"]
    figure = pl.plot_examples(examples, records, out, videos, frames_as_flow, CONFIG)
    assert len(figure.axes) == 5 * 3


def test_command_line_options_map_onto_the_config():
    parser = argparse.ArgumentParser()
    pl.configure_parser(parser)
    args = parser.parse_args(["--appearance-weights", "w.pt", "--flow-context", "ring", "--max-fill", "0.9"])
    config = pl.config_from_args(args)
    assert config == dataclasses.replace(CONFIG, flow_context="ring", max_fill=0.9)


def test_imagenet_vid_snippets_are_read_with_their_boxes(tmp_path):
    from fusionseg.data.imagenet_vid import VID_CLASSES
    from fusionseg.data.layouts import write_vid_snippet

    box = Box(8, 8, 32, 40, label=VID_CLASSES[0])
    frames = [np.full((*FRAME_SHAPE, 3), 128, dtype=np.uint8) for _ in range(3)]
    write_vid_snippet(tmp_path / "VID", "ILSVRC2015_VID_train_0000", "snippet_a", frames, [[box], [], [box]])
    videos = pl.weak_videos("imagenet_vid", tmp_path / "VID", "train")
    assert [len(frame.boxes) for frame in videos[0].frames] == [1, 0, 1]
    assert (videos[0].frames[0].boxes[0].x0, videos[0].frames[0].boxes[0].x1) == (8, 32)
    segment = lambda v: [ellipse_mask(FRAME_SHAPE, box)] * 3  # noqa: E731
    flows = lambda v: [flow_with_patch(FRAME_SHAPE, box, (255, 0, 0))] * 3  # noqa: E731
    records = pl.run_pipeline(videos, segment, flows, CONFIG, tmp_path / "out")
    assert pl.funnel(records, CONFIG)["frames"].tolist() == [3, 2, 2, 2, 2]
    assert len(pl.load_pseudo_labels(tmp_path / "out")) == 2
