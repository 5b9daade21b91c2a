"""Procedural rendering of scenes into images (H, W, 3) and videos (T, H, W, 3), uint8."""

from __future__ import annotations

import numpy as np

from unified_reward.synthetic.scene import COLORS, Scene

BACKGROUND = 28
RADIUS_FRACTION = 0.09  # object radius relative to the canvas side
STEP_FRACTION = 0.045  # video motion per frame relative to the canvas side
_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def shape_mask(shape: str, cx: float, cy: float, radius: float, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    if shape == "square":
        half = radius * 0.86
        return (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
    # an upright isosceles triangle inscribed in the square of side 2*radius
    top, bottom = cy - radius, cy + radius
    half_width = radius * (y - top) / (bottom - top)
    return (y >= top) & (y <= bottom) & (np.abs(x - cx) <= half_width)


def _centres(scene: Scene, size: int, radius: float, travel: tuple[float, float], rng: np.random.Generator):
    """Non-overlapping centres for the scene's objects, inside their region for the whole motion."""
    margin = radius + 1
    x_low, x_high = margin, size - margin
    if scene.kind == "image":
        third = size / 3
        column = {"left": 0, "middle": 1, "right": 2}[scene.position]
        x_low, x_high = column * third + margin * 0.8, (column + 1) * third - margin * 0.8
    dx, dy = travel
    x_low, x_high = x_low - min(dx, 0), x_high - max(dx, 0)
    y_low, y_high = margin - min(dy, 0), size - margin - max(dy, 0)
    for _ in range(200):
        centres = []
        for _ in range(scene.count):
            for _ in range(100):
                c = (rng.uniform(x_low, x_high), rng.uniform(y_low, y_high))
                if all((c[0] - o[0]) ** 2 + (c[1] - o[1]) ** 2 >= (2.6 * radius) ** 2 for o in centres):
                    centres.append(c)
                    break
        if len(centres) == scene.count:
            return centres
    raise RuntimeError(f"could not place {scene.count} objects for {scene} on a {size}px canvas")


def _canvas(size: int, rng: np.random.Generator) -> np.ndarray:
    level = BACKGROUND + int(rng.integers(-6, 7))
    return np.full((size, size, 3), level, np.float32)


def _paint(canvas: np.ndarray, scene: Scene, centres, radius: float, tint: np.ndarray) -> np.ndarray:
    out = canvas.copy()
    size = canvas.shape[0]
    for cx, cy in centres:
        out[shape_mask(scene.shape, cx, cy, radius, size)] = tint
    return np.clip(out, 0, 255).astype(np.uint8)


def _look(scene: Scene, size: int, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    radius = size * RADIUS_FRACTION * rng.uniform(0.9, 1.15)
    tint = np.asarray(COLORS[scene.color], np.float32) + rng.uniform(-15, 15, size=3)
    return radius, tint


def render_image(scene: Scene, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    if scene.kind != "image":
        raise ValueError("render_image needs an image scene")
    radius, tint = _look(scene, size, rng)
    centres = _centres(scene, size, radius, (0.0, 0.0), rng)
    return _paint(_canvas(size, rng), scene, centres, radius, tint)


def render_video(scene: Scene, rng: np.random.Generator, size: int = 64, num_frames: int = 8) -> np.ndarray:
    if scene.kind != "video":
        raise ValueError("render_video needs a video scene")
    radius, tint = _look(scene, size, rng)
    step = size * STEP_FRACTION
    ux, uy = _DIRECTIONS[scene.motion]
    travel = (ux * step * (num_frames - 1), uy * step * (num_frames - 1))
    centres = _centres(scene, size, radius, travel, rng)
    canvas = _canvas(size, rng)
    frames = [
        _paint(canvas, scene, [(x + ux * step * t, y + uy * step * t) for x, y in centres], radius, tint)
        for t in range(num_frames)
    ]
    return np.stack(frames)
