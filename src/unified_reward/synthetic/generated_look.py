"""Media that look like what the project's tiny generators make: a degradation model applied to a clean render.

The tiny text-to-image and text-to-video generators (32 px, a few hundred training steps) sample noisy, washed-out,
partly formed scenes. Measured on 800 samples of a 400-step image generator (`experiments/judge_on_generated`):
the background sits at a mid grey (median level 115, where the world renders 28) under strong coloured pixel
noise (std 36 per channel on the border), objects come out faint (the oracle's 99.5th-percentile distance from the
background is 95, against ~200 for a clean render), half drawn, merged, missing or stray, and the oracle reads
4 or more objects (noise blobs) in 64% of them. Real reward data is pairs of real generators' outputs, so the
world's generation streams hold such media beside the clean renders (`WorldConfig.generated_look`). Each
degradation's strength is drawn per candidate from a severity skewed towards those samples (median 0.84 of 1),
so a few candidates stay close to clean and most are as wrecked as the samples (the oracle reads 4 or more objects
in ~33% of them, a 99.5th-percentile distance of 110). What the oracle reads from the degraded pixels (at 64 px, as
it reads a generator's samples) is what the record's labels and rationale say.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

GENERATOR_SIZE = 32  # the tiny generators' sample size: degraded media are stored at it


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] of `shape`: a `cells` x `cells` grid of uniform values, bicubically upsampled."""
    grid = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize(shape[::-1], Image.BICUBIC))


def _objects(frame: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, int]:
    """The labelled objects of a clean render (pixels away from its flat background) and how many there are."""
    mask = np.abs(frame.astype(np.float32) - background).sum(-1) > 30
    return ndimage.label(mask, structure=np.ones((3, 3)))


class Degradation:
    """One candidate's degradations, drawn once and applied alike to every frame of a video (so an object dropped
    from the scene stays dropped; flicker and frame drop-outs differ per frame)."""

    def __init__(self, rng: np.random.Generator, size: int, video: bool):
        severity = float(rng.uniform(0.0, 1.0) ** 0.25)  # median 0.84: most candidates as noisy as the samples
        self.rng, self.size, self.video = rng, size, video
        self.drop_object = rng.random() < 0.25 * severity
        self.holes = rng.random() < 0.8 * severity  # objects partly formed
        self.hole_level = float(rng.uniform(0.1, 0.7))
        self.smear = rng.random() < 0.3 * severity  # objects grown into blobs that may merge
        self.smear_radius = int(rng.integers(2, 5))
        self.stray_blob = rng.random() < 0.2 * severity
        self.blur = float(rng.uniform(0.3, 0.6 + 1.2 * severity))
        self.tint = rng.normal(0.0, 10 + 30 * severity, size=3).astype(np.float32)
        self.saturation = float(rng.uniform(1.0 - 0.5 * severity, 1.05))
        self.fade = float(rng.uniform(0.45, 0.9) * severity)  # objects blended into the background by this much
        self.lift = float(rng.uniform(0.3, 1.0) * 120 * severity)  # the background washed out towards grey
        self.mottle = float(rng.uniform(0.0, 25 * severity))
        self.noise = float(rng.uniform(0.5, 1.0) * (3 + 45 * severity))  # per-pixel colour noise at the sample size
        self.holes_field = _smooth_field(rng, (size, size), 6)
        self.mottle_field = _smooth_field(rng, (size, size), 4)
        # video: stalled motion (the clip plays a slice of the clean motion), flicker, a frame the objects leave
        self.speed = float(rng.uniform(1.0 - 0.8 * severity, 1.0)) if video else 1.0
        self.flicker = float(rng.uniform(0.0, 4 + 14 * severity)) if video else 0.0
        self.vanish = video and rng.random() < 0.3 * severity

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Clean uint8 frames (T, H, W, 3) at the world's size -> degraded uint8 frames at GENERATOR_SIZE."""
        rng = self.rng
        count = len(frames)
        if self.video and self.speed < 1.0:  # the objects cover only part of the planned travel
            start = rng.uniform(0, (1 - self.speed) * (count - 1))
            frames = frames[np.round(start + np.arange(count) * self.speed).astype(int)]
        background = np.median(np.concatenate([frames[0, 0], frames[0, -1]]), axis=0).astype(np.float32)
        vanish_at = int(rng.integers(count)) if self.vanish else -1
        dropped = None  # the centroid of the object dropped from the scene, followed from frame to frame
        out = []
        for t, frame in enumerate(frames.astype(np.float32)):
            labels, objects = _objects(frame, background)
            mask = labels > 0
            if self.drop_object and objects:
                centres = ndimage.center_of_mass(mask, labels, range(1, objects + 1))
                if dropped is None:
                    dropped = centres[int(rng.integers(objects))]
                nearest = int(np.argmin([np.hypot(c[0] - dropped[0], c[1] - dropped[1]) for c in centres]))
                dropped = centres[nearest]
                frame[labels == nearest + 1] = background
                mask &= labels != nearest + 1
            colour = frame[mask].mean(0) if mask.any() else background
            if self.smear and mask.any():
                grown = ndimage.binary_dilation(mask, iterations=self.smear_radius) & ~mask
                frame[grown] = 0.5 * frame[grown] + 0.5 * colour
            if self.holes:
                frame[mask & (self.holes_field > 1 - 2 * self.hole_level)] = background
            if self.stray_blob and t == 0:  # drawn here, after the first frame's draws, and kept for the clip
                self.blob = (rng.uniform(6, self.size - 6, 2), rng.uniform(2, 4.5))
            if self.stray_blob:
                (cx, cy), r = self.blob
                y, x = np.mgrid[0 : self.size, 0 : self.size]
                frame[(x - cx) ** 2 + (y - cy) ** 2 <= r**2] = colour
            if t == vanish_at:
                frame[:] = background
            grey = frame.mean(-1, keepdims=True)
            frame = grey + self.saturation * (frame - grey)
            on_object = np.abs(frame - background).sum(-1, keepdims=True) > 30
            frame = frame + on_object * (self.tint + self.fade * (background - frame))
            frame = frame + self.lift + self.mottle * self.mottle_field[..., None]
            if self.flicker:
                frame = frame + rng.normal(0.0, self.flicker)
            frame = ndimage.gaussian_filter(frame, sigma=(self.blur, self.blur, 0))
            small = np.asarray(
                Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).resize(
                    (GENERATOR_SIZE, GENERATOR_SIZE), Image.BOX
                ),
                np.float32,
            )
            small = small + rng.normal(0.0, self.noise, size=small.shape)
            out.append(np.clip(small, 0, 255).astype(np.uint8))
        return np.stack(out)


def generated_look(media: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A clean render, an image (H, W, 3) or video (T, H, W, 3) in uint8, as a tiny generator might have sampled it:
    the same layout at GENERATOR_SIZE px."""
    video = media.ndim == 4
    frames = media if video else media[None]
    degraded = Degradation(rng, frames.shape[1], video).apply(frames)
    return degraded if video else degraded[0]
