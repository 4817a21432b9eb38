"""The synthetic world's content: object silhouettes, object textures and backgrounds.

Objects are a *shape* (the silhouette, an alpha map) filled with a *texture*; the pair names the
object's category, e.g. ``star-stripes``. Some pairs never appear in the training sets
(`UNSEEN_CATEGORIES`): they stand in for the paper's generic objects of categories the
appearance stream never saw. Backgrounds are deliberately "natural": fractal noise with earthy
palettes, sky-and-ground gradients, faint textured clutter, and two real pictures that installed
packages ship (matplotlib's sample photograph ``grace_hopper.jpg`` and a hill-shaded rendering of
its sample elevation model ``jacksboro_fault_dem.npz``). Everything is float32 RGB in [0, 1] and
drawn from the `numpy.random.Generator` passed in, so a seed fixes every pixel.
"""

from __future__ import annotations

import functools
import itertools

import cv2
import numpy as np

SHAPES: tuple[str, ...] = ("blob", "star", "ring", "squircle", "crescent", "quadruped")
TEXTURES: tuple[str, ...] = ("stripes", "checks", "noise", "dots", "gradient")

UNSEEN_SHAPES: tuple[str, ...] = ("quadruped",)
UNSEEN_TEXTURES: tuple[str, ...] = ("dots",)
UNSEEN_PAIRS: tuple[tuple[str, str], ...] = (("star", "stripes"), ("ring", "checks"))


def category_name(shape: str, texture: str) -> str:
    """The category label of an object: ``shape-texture``."""
    return f"{shape}-{texture}"


def is_unseen(shape: str, texture: str) -> bool:
    """True where a shape x texture pair is held out of every training set."""
    return shape in UNSEEN_SHAPES or texture in UNSEEN_TEXTURES or (shape, texture) in UNSEEN_PAIRS


ALL_CATEGORIES: tuple[tuple[str, str], ...] = tuple(itertools.product(SHAPES, TEXTURES))
SEEN_CATEGORIES: tuple[tuple[str, str], ...] = tuple(c for c in ALL_CATEGORIES if not is_unseen(*c))
UNSEEN_CATEGORIES: tuple[tuple[str, str], ...] = tuple(c for c in ALL_CATEGORIES if is_unseen(*c))

BACKGROUNDS: tuple[str, ...] = ("fractal", "sky", "clutter", "photo", "terrain")

_SUPERSAMPLE = 4  # silhouettes are drawn 4x larger, then area-averaged: anti-aliased edges


# ----------------------------------------------------------------------------------------------
# Noise and colour helpers


def fractal_noise(rng: np.random.Generator, height: int, width: int, beta: float = 2.0) -> np.ndarray:
    """1/f^beta noise (HxW float32, normalised to [0, 1]); larger beta gives smoother clouds."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    amplitude = radius ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, size=amplitude.shape)
    field = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(height, width))
    field -= field.min()
    return (field / max(float(field.max()), 1e-8)).astype(np.float32)


def random_colour(
    rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]
) -> np.ndarray:
    """An RGB colour (3 float32 in [0, 1]) from a random hue and the given S and V ranges."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]])
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return (rgb / 255.0).astype(np.float32)


def _blend(weight: np.ndarray, colour_a: np.ndarray, colour_b: np.ndarray) -> np.ndarray:
    """Per-pixel mix of two colours: weight 0 gives colour_a, 1 gives colour_b (HxWx3)."""
    w = weight[..., None]
    return (colour_a * (1.0 - w) + colour_b * w).astype(np.float32)


def _coordinates(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates scaled so that the longer side spans [-1, 1]."""
    scale = 2.0 / max(height, width)
    ys = (np.arange(height, dtype=np.float32) - (height - 1) / 2.0) * scale
    xs = (np.arange(width, dtype=np.float32) - (width - 1) / 2.0) * scale
    return np.meshgrid(xs, ys)


def _rotated(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The coordinate along a random direction (HxW)."""
    x, y = _coordinates(height, width)
    angle = rng.uniform(0, np.pi)
    return (x * np.cos(angle) + y * np.sin(angle)).astype(np.float32)


def shading(rng: np.random.Generator, height: int, width: int, strength: float = 0.3) -> np.ndarray:
    """A smooth lighting field (HxW, around 1) that gives flat fills some volume."""
    x, y = _coordinates(height, width)
    lx, ly = rng.uniform(-0.6, 0.6, size=2)
    light = 1.0 - strength * np.clip((x - lx) ** 2 + (y - ly) ** 2, 0, 2) / 2.0
    return (light + strength / 3).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Silhouettes


def _polar_polygon(radius: np.ndarray, angles: np.ndarray, canvas: int, aspect: float) -> np.ndarray:
    """Polygon points (Nx2 int32, canvas coordinates) of a closed curve r(theta) centred in the canvas."""
    half = canvas / 2.0
    r = radius / max(float(radius.max()), 1e-6) * half * 0.92
    points = np.stack([half + r * np.cos(angles) * aspect, half + r * np.sin(angles)], axis=1)
    return np.round(points).astype(np.int32)


def _draw_shape(rng: np.random.Generator, shape: str, canvas: int) -> np.ndarray:
    """The silhouette of one `shape` drawn on a square uint8 canvas (255 inside)."""
    image = np.zeros((canvas, canvas), np.uint8)
    angles = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    aspect = rng.uniform(0.7, 1.0)
    if shape == "blob":
        radius = np.ones_like(angles)
        for k in range(2, 6):
            radius += rng.uniform(0.02, 0.3 / k) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
        cv2.fillPoly(image, [_polar_polygon(radius, angles, canvas, aspect)], 255)
    elif shape == "star":
        spikes = int(rng.integers(4, 8))
        depth = rng.uniform(0.35, 0.6)
        radius = 1.0 - depth * np.abs(np.sin(spikes * angles / 2.0)) ** rng.uniform(0.6, 1.5)
        cv2.fillPoly(image, [_polar_polygon(radius, angles, canvas, 1.0)], 255)
    elif shape == "ring":
        outer = _polar_polygon(np.ones_like(angles), angles, canvas, aspect)
        inner_scale = rng.uniform(0.35, 0.6)
        inner = np.round((outer - canvas / 2.0) * inner_scale + canvas / 2.0).astype(np.int32)
        cv2.fillPoly(image, [outer], 255)
        cv2.fillPoly(image, [inner], 0)
    elif shape == "squircle":
        n = rng.choice([rng.uniform(0.8, 1.2), rng.uniform(2.5, 5.0)])
        c, s = np.cos(angles), np.sin(angles)
        radius = (np.abs(c) ** n + np.abs(s) ** n) ** (-1.0 / n)
        cv2.fillPoly(image, [_polar_polygon(radius, angles, canvas, aspect)], 255)
    elif shape == "crescent":
        half = canvas // 2
        r = int(canvas * 0.45)
        cv2.circle(image, (half, half), r, 255, -1)
        offset = rng.uniform(0.3, 0.55) * r
        direction = rng.uniform(0, 2 * np.pi)
        centre = (int(half + offset * np.cos(direction)), int(half + offset * np.sin(direction)))
        cv2.circle(image, centre, int(r * rng.uniform(0.8, 0.95)), 0, -1)
    elif shape == "quadruped":
        _draw_quadruped(rng, image)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return image


def _draw_quadruped(rng: np.random.Generator, image: np.ndarray) -> None:
    """An animal-like side view: body ellipse, head, neck, four legs and a tail."""
    size = image.shape[0]
    u = size / 100.0
    body_w, body_h = rng.uniform(26, 34) * u, rng.uniform(11, 16) * u
    cx, cy = 48 * u, 45 * u
    cv2.ellipse(image, (int(cx), int(cy)), (int(body_w), int(body_h)), 0, 0, 360, 255, -1)
    leg_len, leg_w = rng.uniform(22, 34) * u, rng.uniform(3.5, 6) * u
    for fraction in (-0.75, -0.5, 0.55, 0.8):
        x = cx + fraction * body_w
        spread = rng.uniform(-5, 5) * u
        pts = np.array(
            [
                [x - leg_w, cy],
                [x + leg_w, cy],
                [x + spread + leg_w * 0.7, cy + leg_len],
                [x + spread - leg_w * 0.7, cy + leg_len],
            ]
        )
        cv2.fillPoly(image, [np.round(pts).astype(np.int32)], 255)
    head = (cx + body_w * 1.05, cy - body_h * rng.uniform(1.0, 1.8))
    neck = np.array(
        [
            [cx + body_w * 0.6, cy - body_h * 0.6],
            [cx + body_w * 0.85, cy + body_h * 0.2],
            [head[0] + 4 * u, head[1]],
            [head[0] - 5 * u, head[1] - 2 * u],
        ]
    )
    cv2.fillPoly(image, [np.round(neck).astype(np.int32)], 255)
    cv2.ellipse(
        image,
        (int(head[0]), int(head[1])),
        (int(rng.uniform(8, 12) * u), int(rng.uniform(5, 8) * u)),
        rng.uniform(-30, 30),
        0,
        360,
        255,
        -1,
    )
    tail_end = (int(cx - body_w - rng.uniform(8, 16) * u), int(cy + rng.uniform(-12, 10) * u))
    cv2.line(image, (int(cx - body_w * 0.9), int(cy - body_h * 0.3)), tail_end, 255, max(1, int(3 * u)))


def silhouette(rng: np.random.Generator, shape: str, size: int) -> np.ndarray:
    """An anti-aliased alpha map (float32 in [0, 1]) of a random `shape`, cropped tight with a 1 px margin.

    The longer side is about `size` pixels; the result is what an object looks like before it is
    posed in a scene (scaled, rotated, moved) by the renderer.
    """
    big = _draw_shape(rng, shape, size * _SUPERSAMPLE)
    if rng.random() < 0.5:
        big = big[:, ::-1]
    alpha = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    rows, cols = np.nonzero(alpha > 0.01)
    y0, y1 = max(rows.min() - 1, 0), min(rows.max() + 2, size)
    x0, x1 = max(cols.min() - 1, 0), min(cols.max() + 2, size)
    return np.ascontiguousarray(alpha[y0:y1, x0:x1])


# ----------------------------------------------------------------------------------------------
# Object textures


def texture(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """An HxWx3 float32 fill of texture `kind` in two or three saturated colours, with shading."""
    colour_a = random_colour(rng, (0.45, 1.0), (0.35, 1.0))
    colour_b = random_colour(rng, (0.3, 1.0), (0.2, 0.95))
    if kind == "stripes":
        period = rng.uniform(0.15, 0.45)
        wave = np.sin(_rotated(rng, height, width) * 2 * np.pi / period)
        fill = _blend(np.clip(wave * rng.uniform(1.5, 6) * 0.5 + 0.5, 0, 1), colour_a, colour_b)
    elif kind == "checks":
        x, y = _coordinates(height, width)
        angle = rng.uniform(0, np.pi / 2)
        period = rng.uniform(0.2, 0.5)
        u = (x * np.cos(angle) + y * np.sin(angle)) / period
        v = (-x * np.sin(angle) + y * np.cos(angle)) / period
        fill = _blend(((np.floor(u) + np.floor(v)) % 2).astype(np.float32), colour_a, colour_b)
    elif kind == "noise":
        weight = fractal_noise(rng, height, width, beta=rng.uniform(1.8, 3.0))
        fill = _blend(np.clip((weight - 0.5) * 2.5 + 0.5, 0, 1), colour_a, colour_b)
    elif kind == "dots":
        x, y = _coordinates(height, width)
        period = rng.uniform(0.2, 0.4)
        phase = rng.uniform(0, period, size=2)
        dx = (x + phase[0]) % period - period / 2
        dy = (y + phase[1]) % period - period / 2
        inside = np.sqrt(dx**2 + dy**2) < period * rng.uniform(0.22, 0.38)
        fill = _blend(inside.astype(np.float32), colour_a, colour_b)
    elif kind == "gradient":
        ramp = _rotated(rng, height, width)
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        fill = _blend(ramp, colour_a, colour_b)
    else:
        raise ValueError(f"unknown texture {kind!r}; expected one of {TEXTURES}")
    return np.clip(fill * shading(rng, height, width)[..., None], 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Backgrounds

_EARTH_PALETTES = (
    ((0.20, 0.30, 0.12), (0.55, 0.60, 0.35)),  # grass
    ((0.30, 0.22, 0.14), (0.70, 0.60, 0.45)),  # soil and sand
    ((0.25, 0.28, 0.32), (0.65, 0.66, 0.68)),  # rock and concrete
    ((0.10, 0.22, 0.30), (0.45, 0.60, 0.65)),  # water and shade
)


def _earth(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Fractal noise mapped to a natural, low-saturation palette, with fine grain."""
    dark, light = (np.array(c, np.float32) for c in _EARTH_PALETTES[int(rng.integers(len(_EARTH_PALETTES)))])
    jitter = rng.uniform(-0.06, 0.06, size=3).astype(np.float32)
    coarse = fractal_noise(rng, height, width, beta=rng.uniform(2.0, 3.2))
    fine = fractal_noise(rng, height, width, beta=1.2)
    return np.clip(_blend(0.75 * coarse + 0.25 * fine, dark + jitter, light + jitter), 0, 1)


def _sky(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A sky gradient above a wavy horizon and textured ground below."""
    top = np.array([0.35, 0.55, 0.85], np.float32) + rng.uniform(-0.1, 0.1, 3).astype(np.float32)
    bottom = np.array([0.80, 0.85, 0.92], np.float32)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None].repeat(width, axis=1)
    sky = _blend(ramp, np.clip(top, 0, 1), bottom)
    clouds = fractal_noise(rng, height, width, beta=2.5)
    sky = np.clip(sky + 0.25 * np.clip(clouds - 0.55, 0, 1)[..., None], 0, 1)
    ground = _earth(rng, height, width)
    horizon = rng.uniform(0.35, 0.7) * height + 0.08 * height * (fractal_noise(rng, 1, width, 2.0)[0] - 0.5)
    below = (np.arange(height)[:, None] > horizon[None, :]).astype(np.float32)[..., None]
    return (sky * (1 - below) + ground * below).astype(np.float32)


def _clutter(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An earthy background strewn with faint, desaturated textured shapes (distractors, not objects)."""
    image = _earth(rng, height, width)
    for _ in range(int(rng.integers(2, 6))):
        size = int(rng.uniform(0.2, 0.45) * min(height, width))
        alpha = silhouette(rng, str(rng.choice(SHAPES[:5])), size) * rng.uniform(0.25, 0.55)
        fill = texture(rng, str(rng.choice(TEXTURES)), *alpha.shape)
        grey = fill.mean(axis=2, keepdims=True)
        fill = 0.75 * grey + 0.25 * fill  # desaturated: texture alone must not mean "object"
        y = int(rng.integers(0, max(height - alpha.shape[0], 1)))
        x = int(rng.integers(0, max(width - alpha.shape[1], 1)))
        region = image[y : y + alpha.shape[0], x : x + alpha.shape[1]]
        a = alpha[: region.shape[0], : region.shape[1], None]
        region[:] = region * (1 - a) + fill[: region.shape[0], : region.shape[1]] * a
    return image


@functools.cache
def _sample_pictures() -> tuple[np.ndarray, ...]:
    """The real pictures that matplotlib ships, as float32 RGB: a photograph and a shaded relief."""
    import matplotlib.cbook as cbook
    from matplotlib import colormaps
    from matplotlib.colors import LightSource
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        hopper = np.asarray(photo.convert("RGB"), dtype=np.float32) / 255.0
    with np.load(cbook.get_sample_data("jacksboro_fault_dem.npz", asfileobj=False)) as dem:
        elevation = dem["elevation"].astype(np.float64)
    relief = LightSource(azdeg=315, altdeg=45).shade(
        elevation, cmap=colormaps["gist_earth"], blend_mode="overlay", vert_exag=0.05
    )
    return hopper, relief[..., :3].astype(np.float32)


def _picture_crop(rng: np.random.Generator, picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """A random crop of a real picture, resized to HxW, randomly mirrored and colour-jittered."""
    ph, pw = picture.shape[:2]
    scale = rng.uniform(0.5, 1.0) * min(ph / height, pw / width)
    ch, cw = max(int(height * scale), 8), max(int(width * scale), 8)
    y = int(rng.integers(0, ph - ch + 1))
    x = int(rng.integers(0, pw - cw + 1))
    crop = cv2.resize(picture[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.8, 1.15, size=3).astype(np.float32)
    return np.clip(crop * gain, 0, 1).astype(np.float32)


def background(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """An HxWx3 float32 background of `kind` (one of `BACKGROUNDS`)."""
    if kind == "fractal":
        return _earth(rng, height, width)
    if kind == "sky":
        return _sky(rng, height, width)
    if kind == "clutter":
        return _clutter(rng, height, width)
    if kind == "photo":
        return _picture_crop(rng, _sample_pictures()[0], height, width)
    if kind == "terrain":
        return _picture_crop(rng, _sample_pictures()[1], height, width)
    raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
