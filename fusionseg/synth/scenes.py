"""Scenes of the synthetic world and their renderer: camera, moving objects, occluders, dynamic background.

A `Scene` lives in *world* coordinates: a background picture larger than the frame, objects with a
pose per frame (position, rotation, scale, a squash-and-stretch wobble), an optional occluder that
passes in front of them, and an optional patch of background that moves without being an object
(rippling water, swaying foliage). A per-frame camera affine maps the world to the frame, so pan and
zoom move the background and everything on it together. `render` composites each frame and returns,
besides the image, every object's *visible* mask (what the occluder and nearer objects leave) and the
box derived from it: masks and boxes are exact by construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from fusionseg.data.types import Box
from fusionseg.synth import content

CAMERA_MOTIONS: tuple[str, ...] = ("static", "pan", "zoom", "pan_zoom")
DISTRACTORS: tuple[str, ...] = ("water", "sway")
WORLD_MARGIN = 1.6  # the world is this much larger than the frame, so the camera can pan and zoom out
OCCLUDED_BELOW = 0.85  # a box is flagged `occluded` when less than this fraction of the object shows


def _translation(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def _similarity(scale_x: float, scale_y: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c * scale_x, -s * scale_y, 0], [s * scale_x, c * scale_y, 0], [0, 0, 1]], np.float64)


@dataclass
class SceneObject:
    """A textured sprite and its motion in world coordinates (`velocity` = 0 and no spin: it stands still)."""

    track_id: int
    shape: str
    texture: str
    rgb: np.ndarray  # sprite colours, hxwx3 float32
    alpha: np.ndarray  # sprite coverage, hxw float32
    start: tuple[float, float]  # world position of the sprite centre at frame 0
    velocity: tuple[float, float] = (0.0, 0.0)  # world pixels per frame
    scale: float = 1.0
    angle: float = 0.0
    spin: float = 0.0  # radians per frame
    growth: float = 0.0  # relative scale change per frame
    wobble: float = 0.0  # amplitude of the squash-and-stretch deformation
    wobble_rate: float = 0.5  # radians per frame

    @property
    def category(self) -> str:
        return content.category_name(self.shape, self.texture)

    @property
    def unseen(self) -> bool:
        return content.is_unseen(self.shape, self.texture)

    @property
    def moving(self) -> bool:
        return bool(np.hypot(*self.velocity) > 0 or self.spin or self.growth or self.wobble)

    def pose(self, t: int) -> np.ndarray:
        """The 3x3 sprite -> world transform at frame t."""
        h, w = self.alpha.shape
        squash = self.wobble * np.sin(self.wobble_rate * t)
        scale = self.scale * (1.0 + self.growth) ** t
        x = self.start[0] + self.velocity[0] * t
        y = self.start[1] + self.velocity[1] * t
        rotate = _similarity(scale * (1 + squash), scale * (1 - squash), self.angle + self.spin * t)
        return _translation(x, y) @ rotate @ _translation(-(w - 1) / 2.0, -(h - 1) / 2.0)


@dataclass
class Occluder:
    """A background thing (a pole, a trunk) that passes in front of the objects; labelled background."""

    rgb: np.ndarray
    alpha: np.ndarray
    start: tuple[float, float]
    velocity: tuple[float, float]

    def pose(self, t: int) -> np.ndarray:
        h, w = self.alpha.shape
        x = self.start[0] + self.velocity[0] * t
        y = self.start[1] + self.velocity[1] * t
        return _translation(x - (w - 1) / 2.0, y - (h - 1) / 2.0)


@dataclass
class Distractor:
    """A region of the world background that moves by itself (labelled background, not an object)."""

    kind: str  # "water": a scrolling, flickering texture; "sway": the background there oscillates
    region: np.ndarray  # world-sized float32 weight in [0, 1]
    pattern: np.ndarray  # water: a wider-than-world texture to scroll; sway: unused (empty)
    speed: float = 1.5  # pixels per frame (water) or displacement amplitude (sway)

    def apply(self, world: np.ndarray, t: int) -> np.ndarray:
        """The world background at frame t with this region in motion."""
        h, w = world.shape[:2]
        if self.kind == "water":
            shift = int(round(self.speed * t)) % (self.pattern.shape[1] - w)
            layer = self.pattern[:, shift : shift + w] * (1.0 + 0.08 * np.sin(0.9 * t))
        else:
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            dx = self.speed * np.sin(0.7 * t + ys / 9.0)
            dy = 0.5 * self.speed * np.cos(0.6 * t + xs / 11.0)
            layer = cv2.remap(world, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        weight = self.region[..., None]
        return (world * (1 - weight) + np.clip(layer, 0, 1) * weight).astype(np.float32)


@dataclass
class Scene:
    """Everything needed to render one clip (or, with n_frames = 1, one still image)."""

    height: int
    width: int
    n_frames: int
    world: np.ndarray  # world background, float32 RGB
    cameras: list[np.ndarray]  # per frame, 3x3 world -> frame
    objects: list[SceneObject]  # back to front
    camera_motion: str = "static"
    background: str = ""
    occluder: Occluder | None = None
    distractor: Distractor | None = None
    blur: bool = False
    noise: float = 0.0  # standard deviation of the sensor noise, in grey levels
    noise_seed: int = 0
    meta: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """The scene's properties as plain JSON-able data (for the manifest)."""
        return {
            "n_frames": self.n_frames,
            "size": [self.height, self.width],
            "background": self.background,
            "camera_motion": self.camera_motion,
            "static_objects": all(not o.moving for o in self.objects),
            "occluder": self.occluder is not None,
            "distractor": self.distractor.kind if self.distractor else None,
            "motion_blur": self.blur,
            "noise": round(self.noise, 3),
            "objects": [
                {
                    "track_id": o.track_id,
                    "category": o.category,
                    "shape": o.shape,
                    "texture": o.texture,
                    "unseen": o.unseen,
                    "moving": o.moving,
                }
                for o in self.objects
            ],
        } | self.meta


@dataclass
class RenderedFrame:
    image: np.ndarray  # HxWx3 uint8
    masks: list[np.ndarray]  # per object (scene order), the visible part, HxW bool
    boxes: list[Box | None]  # per object, the visible mask's bounding box (None: not visible)


# ----------------------------------------------------------------------------------------------
# Building scenes


def camera_path(
    rng: np.random.Generator, motion: str, n_frames: int, height: int, width: int
) -> list[np.ndarray]:
    """Per-frame world -> frame affines for a camera that stays still, pans, zooms or both.

    The world is `WORLD_MARGIN` times the frame; the camera looks at its centre, moves its centre
    along a straight line (pan, with a little shake) and changes its zoom geometrically (zoom).
    """
    if motion not in CAMERA_MOTIONS:
        raise ValueError(f"unknown camera motion {motion!r}; expected one of {CAMERA_MOTIONS}")
    world_w, world_h = width * WORLD_MARGIN, height * WORLD_MARGIN
    span = max(n_frames - 1, 1)
    times = np.arange(n_frames) / span
    centre = np.tile([(world_w - 1) / 2.0, (world_h - 1) / 2.0], (n_frames, 1))
    zoom = np.ones(n_frames)
    angle = np.zeros(n_frames)
    if motion in ("pan", "pan_zoom"):
        direction = rng.uniform(0, 2 * np.pi)
        distance = rng.uniform(0.15, 0.3) * width
        offset = (times - 0.5)[:, None] * distance * np.array([np.cos(direction), np.sin(direction)])
        shake = rng.normal(0, 0.004 * width, size=(n_frames, 2))
        centre = centre + offset + shake
    if motion in ("zoom", "pan_zoom"):
        start, end = rng.uniform(0.9, 1.05), rng.uniform(1.2, 1.4)
        if rng.random() < 0.5:
            start, end = end, start
        zoom = start * (end / start) ** times
        angle = rng.uniform(-0.05, 0.05) * times
    return [
        _translation((width - 1) / 2.0, (height - 1) / 2.0) @ _similarity(z, z, a) @ _translation(-cx, -cy)
        for (cx, cy), z, a in zip(centre, zoom, angle, strict=True)
    ]


def _to_world(camera: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The world position that `camera` shows at frame position `point`."""
    return (np.linalg.inv(camera) @ np.array([point[0], point[1], 1.0]))[:2]


def _object_path(
    rng: np.random.Generator, cameras: list[np.ndarray], height: int, width: int, moving: bool
) -> tuple[np.ndarray, np.ndarray]:
    """World start position and velocity that keep an object in view whatever the camera does.

    Start and end are drawn in the frame and mapped to the world through the first and last
    camera; a moving object is redrawn until it really moves in the world (not just with the camera).
    """
    last = len(cameras) - 1
    margin = np.array([0.25 * width, 0.25 * height])
    for _ in range(20):
        start = _to_world(cameras[0], rng.uniform(margin, [width, height] - margin))
        if not moving or last == 0:
            return start, np.zeros(2)
        end = _to_world(cameras[last], rng.uniform(margin * 0.6, [width, height] - margin * 0.6))
        if np.hypot(*(end - start)) >= 0.2 * width:
            break
    return start, (end - start) / last


def make_object(
    rng: np.random.Generator,
    track_id: int,
    shape: str,
    texture_kind: str,
    cameras: list[np.ndarray],
    height: int,
    width: int,
    size: float,
    moving: bool,
) -> SceneObject:
    """An object of about `size` frame pixels, in view; a moving one crosses part of the frame while
    it turns, grows or shrinks and deforms (squash and stretch); a static one does none of that."""
    sprite_size = max(int(size * 1.3), 12)
    alpha = content.silhouette(rng, shape, sprite_size)
    rgb = content.texture(rng, texture_kind, *alpha.shape)
    start, velocity = _object_path(rng, cameras, height, width, moving)
    deform = moving and len(cameras) > 1
    return SceneObject(
        track_id,
        shape,
        texture_kind,
        rgb,
        alpha,
        start=(float(start[0]), float(start[1])),
        velocity=(float(velocity[0]), float(velocity[1])),
        scale=size / sprite_size / float(np.linalg.norm(cameras[0][:2, 0])),  # divided by the zoom
        angle=float(rng.uniform(-0.4, 0.4)),
        spin=float(rng.uniform(-0.03, 0.03)) if deform else 0.0,
        growth=float(rng.uniform(-0.01, 0.01)) if deform else 0.0,
        wobble=float(rng.uniform(0.0, 0.08)) if deform else 0.0,
        wobble_rate=float(rng.uniform(0.3, 0.9)) if deform else 0.5,
    )


def make_occluder(
    rng: np.random.Generator, target: SceneObject, n_frames: int, height: int, width: int
) -> Occluder:
    """A vertical pole with bark-like texture, crossing the target's path halfway through the clip."""
    pole_w, pole_h = max(int(rng.uniform(0.06, 0.12) * width), 3), int(height * WORLD_MARGIN)
    grain = content.fractal_noise(rng, pole_h, pole_w, beta=1.5)[..., None]
    colour = np.array([0.32, 0.24, 0.16], np.float32) * rng.uniform(0.6, 1.3)
    rgb = np.clip(colour * (0.7 + 0.6 * grain), 0, 1).astype(np.float32)
    middle = np.array(target.start) + np.array(target.velocity) * (n_frames - 1) / 2.0
    velocity = (float(rng.uniform(-0.6, 0.6)), 0.0)
    start = (float(middle[0] - velocity[0] * (n_frames - 1) / 2.0), (height * WORLD_MARGIN - 1) / 2.0)
    return Occluder(rgb, np.ones((pole_h, pole_w), np.float32), start, velocity)


def make_distractor(rng: np.random.Generator, kind: str, world: np.ndarray) -> Distractor:
    """A dynamic-background region: water along the bottom, or a swaying patch of the background."""
    h, w = world.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "water":
        line = h * rng.uniform(0.6, 0.75) + 3 * np.sin(xs / rng.uniform(8, 20))
        region = np.clip(ys - line + 0.5, 0, 1).astype(np.float32)
        ripples = content.fractal_noise(rng, h, 2 * w, beta=1.6)
        tint = np.array([0.15, 0.35, 0.5], np.float32) + rng.uniform(-0.08, 0.08, 3).astype(np.float32)
        pattern = np.clip(tint * (0.55 + 0.9 * ripples[..., None]), 0, 1).astype(np.float32)
        return Distractor(kind, region, pattern, speed=float(rng.uniform(1.5, 3.0)))
    if kind == "sway":
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.15, 0.3) * h, rng.uniform(0.12, 0.25) * w
        region = np.clip(1.5 - ((ys - cy) / ry) ** 2 - ((xs - cx) / rx) ** 2, 0, 1).astype(np.float32)
        return Distractor(kind, region, np.zeros((0, 0, 3), np.float32), speed=float(rng.uniform(1.5, 3.0)))
    raise ValueError(f"unknown distractor {kind!r}; expected one of {DISTRACTORS}")


def world_background(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """A background of `kind` covering the world (`WORLD_MARGIN` x the frame)."""
    return content.background(rng, kind, int(round(height * WORLD_MARGIN)), int(round(width * WORLD_MARGIN)))


# ----------------------------------------------------------------------------------------------
# Rendering


def _motion_blur(layer: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Blur `layer` along a displacement (pixels per frame), as a shutter open for that move."""
    length = float(np.hypot(*displacement))
    if length < 1.5:
        return layer
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    centre = (size - 1) / 2.0
    unit = displacement / length
    for step in np.linspace(-0.5, 0.5, 2 * size):
        x, y = centre + step * length * unit
        kernel[int(round(y)), int(round(x))] = 1.0
    return cv2.filter2D(layer, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT101)


def _image_motion(transform_a: np.ndarray, transform_b: np.ndarray, point: np.ndarray) -> np.ndarray:
    """How far a point of the source space moves on screen between two transforms."""
    p = np.array([point[0], point[1], 1.0])
    return (transform_b @ p)[:2] - (transform_a @ p)[:2]


def box_from_mask(mask: np.ndarray, track_id: int = 0, label: str = "", occluded: bool = False) -> Box | None:
    """The tight, half-open bounding box of a boolean mask (None when the mask is empty)."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    return Box(
        float(x0), float(y0), float(x1 + 1), float(y1 + 1), track_id=track_id, label=label, occluded=occluded
    )


def render(scene: Scene, labels: dict[int, str] | None = None) -> Iterator[RenderedFrame]:
    """Composite the scene frame by frame: background, objects back to front, occluder, blur, noise.

    `labels` maps track ids to box labels (e.g. ImageNet VID synsets); default: the category name.
    """
    size = (scene.width, scene.height)
    noise_rng = np.random.default_rng(scene.noise_seed)
    for t in range(scene.n_frames):
        camera = scene.cameras[t]
        other = t - 1 if t > 0 else min(1, scene.n_frames - 1)  # the neighbour frame that sets the blur
        previous = scene.cameras[other]
        world = scene.distractor.apply(scene.world, t) if scene.distractor else scene.world
        image = cv2.warpAffine(
            world, camera[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        if scene.blur:
            centre = np.array([(scene.world.shape[1] - 1) / 2.0, (scene.world.shape[0] - 1) / 2.0])
            image = _motion_blur(image, _image_motion(previous, camera, centre))
        visible: list[np.ndarray] = []
        full_area: list[int] = []
        for obj in scene.objects:
            transform = camera @ obj.pose(t)
            alpha = cv2.warpAffine(obj.alpha, transform[:2], size, flags=cv2.INTER_LINEAR)
            rgb = cv2.warpAffine(obj.rgb, transform[:2], size, flags=cv2.INTER_LINEAR)
            mask = alpha >= 0.5
            cover = alpha
            if scene.blur and scene.n_frames > 1:
                before = previous @ obj.pose(other)
                centre = np.array([(obj.alpha.shape[1] - 1) / 2.0, (obj.alpha.shape[0] - 1) / 2.0])
                move = _image_motion(before, transform, centre)
                cover = _motion_blur(alpha, move)
                rgb = _motion_blur(rgb * alpha[..., None], move) / np.maximum(cover, 1e-4)[..., None]
            image = image * (1 - cover[..., None]) + rgb * cover[..., None]
            visible = [m & ~mask for m in visible] + [mask]
            full_area.append(int(mask.sum()))
        if scene.occluder is not None:
            transform = camera @ scene.occluder.pose(t)
            alpha = cv2.warpAffine(scene.occluder.alpha, transform[:2], size, flags=cv2.INTER_LINEAR)
            rgb = cv2.warpAffine(scene.occluder.rgb, transform[:2], size, flags=cv2.INTER_LINEAR)
            image = image * (1 - alpha[..., None]) + rgb * alpha[..., None]
            visible = [m & ~(alpha >= 0.5) for m in visible]
        pixels = image * 255.0
        if scene.noise > 0:
            pixels = pixels + noise_rng.normal(0, scene.noise, size=pixels.shape)
        frame = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        boxes = []
        for obj, mask, area in zip(scene.objects, visible, full_area, strict=True):
            label = (labels or {}).get(obj.track_id, obj.category)
            boxes.append(
                box_from_mask(mask, obj.track_id, label, occluded=bool(mask.sum() < OCCLUDED_BELOW * area))
            )
        yield RenderedFrame(frame, visible, boxes)
