"""The oracle: the true score of an image or video for a caption, or of an answer to a question.

It perceives pixels, not the world's hidden state, so it scores media that a model generated as
well as the world's own renders: foreground = pixels far from the border's median colour;
colour = the palette entry nearest to most foreground pixels; count = connected components
(components under a fifth of the largest are noise); shape = from how much of its bounding box a
component fills and how low its centroid sits; position = third of the canvas that holds the
foreground centroid; motion = the direction of the centroid's travel over the clip. It reads
blurred, noisy, JPEG-compressed samples reliably from 48 px canvases up (objects >= ~4 px radius).
Scores are 1 + 4 * (fraction of the asked attributes that hold), on the 1-5 scale.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from unified_reward.data.schema import VideoClip
from unified_reward.synthetic.edits import apply_instruction
from unified_reward.synthetic.scene import COLORS, SceneKind, attributes_of, read_attributes

FOREGROUND_DISTANCE = 40.0
MIN_MOTION_FRACTION = 0.08  # centroid travel below this fraction of the side reads as still
_PALETTE_NAMES = tuple(COLORS)
_PALETTE = np.asarray([COLORS[name] for name in _PALETTE_NAMES], np.float32)
SCORE_LOW, SCORE_HIGH = 1.0, 5.0


@dataclass(frozen=True)
class OracleScore:
    score: float  # on [1, 5]
    satisfied: dict[str, bool]
    contradicted: tuple[str, ...] = ()  # attributes stated with a value the pixels do not show (answers)

    @property
    def fraction(self) -> float:
        return sum(self.satisfied.values()) / len(self.satisfied) if self.satisfied else 0.0

    @property
    def hallucinated(self) -> bool:
        """Whether an asked attribute is stated wrongly (leaving one out is not hallucinating)."""
        return bool(self.contradicted)


def _as_frames(media) -> tuple[SceneKind, np.ndarray]:
    if isinstance(media, VideoClip):
        return "video", media.frames
    if isinstance(media, Image.Image):
        return "image", np.asarray(media.convert("RGB"))[None]
    array = np.asarray(media)
    if array.ndim == 3:
        return "image", array[None]
    if array.ndim == 4:
        return "video", array
    raise ValueError(f"oracle needs an image (H, W, 3) or video (T, H, W, 3), got shape {array.shape}")


def _foreground(frame: np.ndarray) -> np.ndarray:
    """Pixels beyond half the strongest contrast to the background (the half-maximum contour keeps
    shapes their size under blur), and never closer than FOREGROUND_DISTANCE (noise)."""
    frame = frame.astype(np.float32)
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    distance = np.linalg.norm(frame - np.median(border, axis=0), axis=-1)
    return distance > max(FOREGROUND_DISTANCE, 0.5 * np.percentile(distance, 99.5))


def _components(mask: np.ndarray) -> list[np.ndarray]:
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return []
    areas = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    keep = [i + 1 for i, a in enumerate(areas) if a >= max(4.0, 0.2 * areas.max())]
    return [labels == i for i in keep]


def _shape_of(component: np.ndarray) -> str:
    """Upright triangles hold their mass low in the bounding box (centroid at 2/3 of the height)
    and fill half of it; squares fill all of it, circles pi/4."""
    ys, xs = np.nonzero(component)
    height = ys.max() - ys.min() + 1
    fill = component.sum() / (height * (xs.max() - xs.min() + 1))
    centroid_depth = (ys.mean() - ys.min() + 0.5) / height
    if centroid_depth > 0.575 or fill < 0.62:
        return "triangle"
    return "square" if fill > 0.9 else "circle"


def _majority(values: list):
    values = [v for v in values if v is not None]
    return Counter(values).most_common(1)[0][0] if values else None


def perceive(media) -> dict[str, object]:
    """What the oracle sees: count, color, shape and position (image) or motion (video)."""
    kind, frames = _as_frames(media)
    colors, shapes, counts, centroids = [], [], [], []
    for frame in frames:
        mask = _foreground(frame)
        components = _components(mask)
        counts.append(len(components))
        if not components:
            centroids.append(None)
            continue
        pixels = frame[mask].astype(np.float32)
        nearest = np.argmin(((pixels[:, None, :] - _PALETTE[None]) ** 2).sum(-1), axis=1)
        colors.append(_PALETTE_NAMES[np.bincount(nearest, minlength=len(_PALETTE)).argmax()])
        shapes.append(_majority([_shape_of(c) for c in components]))
        ys, xs = np.nonzero(mask)
        centroids.append((xs.mean() + 0.5, ys.mean() + 0.5))
    seen: dict[str, object] = {
        "count": _majority(counts) if any(counts) else 0,
        "color": _majority(colors),
        "shape": _majority(shapes),
    }
    side = frames.shape[2]
    if kind == "image":
        seen["position"] = (
            None if centroids[0] is None else ("left", "middle", "right")[min(int(centroids[0][0] * 3 / side), 2)]
        )
    else:
        seen["motion"] = _motion([c for c in centroids if c is not None], side)
    return seen


def _motion(centroids: list[tuple[float, float]], side: int) -> str | None:
    if len(centroids) < 2:
        return None
    dx, dy = np.subtract(centroids[-1], centroids[0])
    if max(abs(dx), abs(dy)) < MIN_MOTION_FRACTION * side:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _score(satisfied: dict[str, bool], contradicted: tuple[str, ...] = ()) -> OracleScore:
    fraction = sum(satisfied.values()) / len(satisfied)
    return OracleScore(SCORE_LOW + (SCORE_HIGH - SCORE_LOW) * fraction, satisfied, contradicted)


def score_generation(caption: str, media) -> OracleScore:
    """How well an image/video satisfies a caption: every attribute the world knows is judged; one
    the caption does not state counts as unsatisfied (the caption is malformed)."""
    kind, _ = _as_frames(media)
    return score_reading(caption, perceive(media), kind)


def score_reading(caption: str, seen: dict[str, object], kind: SceneKind) -> OracleScore:
    """`score_generation` from what `perceive` already read of the media (for a caller that keeps the reading)."""
    wanted = read_attributes(caption, kind)
    return _score({a: a in wanted and seen[a] == wanted[a] for a in attributes_of(kind)})


# Question wording -> attributes it asks about; one source of truth with the world's generator.
QUESTION_KEYWORDS = {
    "count": ("how many", "number"),
    "color": ("colour", "color"),
    "shape": ("shape",),
    "position": ("where",),
    "motion": ("direction", "which way"),
}


def asked_attributes(question: str, kind: SceneKind) -> tuple[str, ...]:
    text = question.lower()
    asked = tuple(a for a in attributes_of(kind) if any(k in text for k in QUESTION_KEYWORDS[a]))
    if not asked:
        raise ValueError(f"the oracle cannot tell what this question asks about: {question!r}")
    return asked


def score_answer(question: str, media, answer: str) -> OracleScore:
    """How correct an answer is: the fraction of the asked attributes it states correctly, and which asked
    attributes it states wrongly (`hallucinated`)."""
    kind, _ = _as_frames(media)
    asked = asked_attributes(question, kind)
    stated = read_attributes(answer, kind)
    seen = perceive(media)
    contradicted = tuple(a for a in asked if a in stated and stated[a] != seen[a])
    return _score({a: a in stated and stated[a] == seen[a] for a in asked}, contradicted)


def score_edit(instruction: str, source, edited) -> OracleScore:
    """How well an edited image follows an instruction: every attribute of what the edit asks for (the source image's
    values as read, the instructed one changed) checked on the edited image."""
    wanted = apply_instruction(instruction, perceive(source))
    seen = perceive(edited)
    return _score({a: wanted.get(a) is not None and seen[a] == wanted[a] for a in attributes_of("image")})


def generated_sample_media(sample: np.ndarray, read_at: int = 64):
    """A generator's uint8 sample (H, W, 3) or (F, H, W, 3) as the oracle reads it: at `read_at` px at least (small
    samples are upsampled first: 32 px renders read at 32 px lose small shapes; read at 64 px every attribute is
    recovered, see tests), a video as a clip of its frames."""
    frames = sample[None] if sample.ndim == 3 else sample
    if frames.shape[1] < read_at:
        frames = np.stack([np.asarray(Image.fromarray(f).resize((read_at, read_at), Image.BILINEAR)) for f in frames])
    return frames[0] if sample.ndim == 3 else VideoClip(frames=frames, timestamps=np.arange(len(frames)) / 8.0)


def score_generated_sample(caption: str, sample: np.ndarray, read_at: int = 64) -> float:
    """The oracle's score of a generator's uint8 sample, read as `generated_sample_media` says."""
    return score_generation(caption, generated_sample_media(sample, read_at)).score
