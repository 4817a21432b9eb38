"""Segmentation measures: the DAVIS 2016 benchmark's J and F, its per-sequence statistics, and IoU.

The definitions follow the DAVIS 2016 toolkit (Perazzi et al., CVPR 2016), re-implemented here
and tested against the benchmark's published numbers:

- J (region similarity) is the Jaccard index of the foreground; two empty masks score 1.
- F (contour accuracy) is the F-measure of boundary precision and recall. Boundaries are 1-pixel
  maps from `seg2bmap`; a boundary pixel counts as matched when the other mask's boundary lies
  within a disk of radius `ceil(bound_th * image diagonal)` pixels (8 px at 854x480).
- Per sequence: Mean, Recall (fraction of frames scoring > 0.5) and Decay (mean of the first
  quarter of the frames minus the mean of the last quarter, in four overlapping bins). The DAVIS
  toolkit scores frames 1..N-2: the first frame (given to semi-supervised methods) and the last
  are dropped.

IoU for image sets (`iou`) takes label maps with an ignore value (VOC's 255 void border).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

N_DECAY_BINS = 4
RECALL_THRESHOLD = 0.5


def _binary(mask: np.ndarray) -> np.ndarray:
    """A mask as a 2-D boolean array (nonzero = foreground)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    return mask != 0


def _check_same_shape(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction of shape {pred.shape} vs annotation of shape {gt.shape}: "
            "resize the prediction first (fusionseg.metrics.match_size)"
        )


def match_size(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a binary mask to `shape` (H, W) with nearest-neighbour sampling at pixel centres.

    Predictions made at another resolution (e.g. on DAVIS frames downsampled to 427x240) are
    scored at the annotation's resolution, as the benchmark does.
    """
    mask = _binary(mask)
    if mask.shape == tuple(shape):
        return mask
    height, width = shape
    resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized != 0


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """DAVIS J: |pred AND gt| / |pred OR gt| (nonzero = foreground); 1.0 when both are empty."""
    return iou(pred, _binary(gt))


def iou(pred: np.ndarray, gt: np.ndarray, ignore: int | None = None) -> float:
    """Foreground IoU of a binary prediction against a label map, skipping `ignore` pixels.

    `gt` is a label map (0 background, 1 or any other nonzero value foreground); pixels where
    `gt == ignore` (VOC's 255 void) count neither as foreground nor as background. Both empty -> 1.
    """
    pred, gt = _binary(pred), np.asarray(gt)
    _check_same_shape(pred, gt)
    gt_fg, pred_fg = gt != 0, pred
    if ignore is not None:
        valid = gt != ignore
        gt_fg, pred_fg = gt_fg & valid, pred & valid
    union = np.count_nonzero(pred_fg | gt_fg)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred_fg & gt_fg) / union


def seg2bmap(seg: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """1-pixel-wide boundary map of a binary segmentation (D. Martin's seg2bmap, as in DAVIS).

    A pixel is a boundary pixel when it differs from its right, bottom or bottom-right
    neighbour; neighbours outside the image are not compared (the last row looks only right,
    the last column only down, the bottom-right pixel is never a boundary). The boundary is
    thereby offset half a pixel towards the origin from the true region edge.

    With `width`/`height` smaller than the mask (same aspect ratio within 0.01), each boundary
    pixel (y, x) is mapped to (floor(y * height / h), floor(x * width / w)): the rule of the
    original MATLAB code. (The DAVIS Python transcription garbles this branch, but the benchmark
    never uses it: it always asks for the mask's own size.)
    """
    seg = _binary(seg)
    h, w = seg.shape
    width = w if width is None else width
    height = h if height is None else height
    if width > w or height > h or abs(width / height - w / h) > 0.01:
        raise ValueError(
            f"seg2bmap: cannot convert a {w}x{h} segmentation to a {width}x{height} boundary map"
        )

    b = np.zeros_like(seg)
    b[:, :-1] |= seg[:, :-1] != seg[:, 1:]  # right neighbour
    b[:-1, :] |= seg[:-1, :] != seg[1:, :]  # bottom neighbour
    b[:-1, :-1] |= seg[:-1, :-1] != seg[1:, 1:]  # bottom-right neighbour
    if (width, height) == (w, h):
        return b
    bmap = np.zeros((height, width), dtype=bool)
    ys, xs = np.nonzero(b)
    bmap[ys * height // h, xs * width // w] = True
    return bmap


def disk(radius: int) -> np.ndarray:
    """Disk structuring element (uint8): the pixels with x^2 + y^2 <= radius^2 (skimage's `disk`)."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_tolerance(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """Matching radius in pixels: `bound_th` itself when >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(*shape))


def _bounding_window(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The bounding box of a non-empty mask's pixels, grown by `margin` and clipped to the image."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (
        slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
        slice(max(cols[0] - margin, 0), cols[-1] + margin + 1),
    )


def _dilate(boundary: np.ndarray, radius: int) -> np.ndarray:
    return cv2.dilate(boundary.astype(np.uint8), disk(radius)) != 0


def boundary_precision_recall(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008
) -> tuple[float, float]:
    """Boundary precision and recall with the DAVIS toolkit's empty-boundary rules.

    Precision: fraction of predicted boundary pixels within the tolerance disk of a ground-truth
    boundary pixel; recall: the converse. No boundary on either side: P = R = 1; no predicted
    boundary: P = 1, R = 0; no ground-truth boundary: P = 0, R = 1.
    """
    pred, gt = _binary(pred), _binary(gt)
    _check_same_shape(pred, gt)
    pred_b, gt_b = seg2bmap(pred), seg2bmap(gt)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 and n_gt == 0:
        return 1.0, 1.0
    if n_pred == 0:
        return 1.0, 0.0
    if n_gt == 0:
        return 0.0, 1.0
    radius = boundary_tolerance(gt.shape, bound_th)
    window = _bounding_window(pred_b | gt_b, radius)  # dilating only here gives the same counts
    pred_b, gt_b = pred_b[window], gt_b[window]
    precision = np.count_nonzero(pred_b & _dilate(gt_b, radius)) / n_pred
    recall = np.count_nonzero(gt_b & _dilate(pred_b, radius)) / n_gt
    return float(precision), float(recall)


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """DAVIS F: 2PR / (P + R) of the boundary precision and recall (0 when both are 0)."""
    precision, recall = boundary_precision_recall(pred, gt, bound_th)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def decay_bins(n: int) -> list[slice]:
    """The toolkit's four overlapping bins over n frames, from round(linspace(1, n, 5)).

    The edges are 1-based positions rounded half up (the 1e-10 overrides numpy's
    round-half-to-even, as in the toolkit); bin i spans edges i..i+1 inclusive, so neighbouring
    bins share a frame.
    """
    if n < 1:
        raise ValueError("decay needs at least one frame")
    edges = np.round(np.linspace(1, n, N_DECAY_BINS + 1) + 1e-10).astype(int) - 1
    return [slice(int(edges[i]), int(edges[i + 1]) + 1) for i in range(N_DECAY_BINS)]


def decay(values: Sequence[float]) -> float:
    """Performance loss over time: mean of the first bin minus mean of the last (`decay_bins`)."""
    values = np.asarray(values, dtype=float)
    bins = decay_bins(len(values))
    return float(values[bins[0]].mean() - values[bins[-1]].mean())


def sequence_statistics(per_frame: Sequence[float], drop_first_last: bool) -> dict[str, float]:
    """Mean, recall (fraction > 0.5) and decay of one sequence's per-frame scores.

    `drop_first_last=True` is the DAVIS convention: frames 1..N-2 are scored.
    """
    values = np.asarray(per_frame, dtype=float)
    if drop_first_last:
        values = values[1:-1]
    if values.size == 0:
        raise ValueError(
            f"sequence_statistics: no frames to score ({len(per_frame)} given, drop_first_last={drop_first_last})"
        )
    return {
        "mean": float(values.mean()),
        "recall": float(np.mean(values > RECALL_THRESHOLD)),
        "decay": decay(values),
    }


def category_means(values: Sequence[float], categories: Sequence[str]) -> dict[str, float]:
    """Mean of `values` per category (YouTube-Objects: per-shot IoU averaged per class), sorted by name."""
    if len(values) != len(categories):
        raise ValueError(f"{len(values)} values but {len(categories)} categories")
    values = np.asarray(values, dtype=float)
    labels = np.asarray(categories)
    return {str(name): float(values[labels == name].mean()) for name in sorted(set(categories))}
