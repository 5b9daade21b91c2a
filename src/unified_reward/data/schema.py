"""The unified preference record: one schema for every task of the task table, both modes, and DPO pairs.

A record is validated on construction; every error names the offending field. Media fields hold
either `EncodedMedia` (bytes as stored in a shard) or decoded media (`PIL.Image.Image` for
images, `VideoClip` for videos); `decode_record` / `encode_record` in `shards.py` convert
between the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image

from unified_reward.data.tasks import TASKS, MediaKind, has_context, judges_media, media_kind_of

Mode = Literal["pair", "point"]
PairLabel = Literal["first", "second", "tie"]

MODES: tuple[str, ...] = get_args(Mode)
PAIR_LABELS: tuple[str, ...] = get_args(PairLabel)
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
VIDEO_EXTENSIONS = ("mp4", "avi", "mkv", "webm", "mov")


class RecordError(ValueError):
    """A record violates the schema. The message names the field."""


def stream_name(task: str, mode: str) -> str:
    """The name of a (task, mode) stream, e.g. `image_generation_pair`; shard files start with it."""
    return f"{task}_{mode}"


@dataclass(frozen=True)
class EncodedMedia:
    """Media as stored: the encoded bytes and the file extension that says how to decode them."""

    kind: MediaKind
    ext: str
    data: bytes

    def __post_init__(self):
        allowed = IMAGE_EXTENSIONS if self.kind == "image" else VIDEO_EXTENSIONS
        if self.ext not in allowed:
            raise RecordError(f"media ext {self.ext!r} is not a known {self.kind} extension {allowed}")
        if not self.data:
            raise RecordError("media data is empty")


@dataclass(frozen=True, eq=False)
class VideoClip:
    """Decoded video frames (T, H, W, 3) uint8 and the timestamps (s) of the sampled frames."""

    frames: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self):
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise RecordError(f"video frames must be uint8 (T, H, W, 3), got {self.frames.dtype} {self.frames.shape}")
        if len(self.timestamps) != len(self.frames):
            raise RecordError("video timestamps and frames differ in length")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


Media = EncodedMedia | Image.Image | VideoClip
Candidate = str | Media


@dataclass(frozen=True)
class PointLabel:
    """A pointwise score on a closed scale [low, high], e.g. 3.5 on 1-5."""

    score: float
    low: float = 1.0
    high: float = 5.0

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise RecordError(f"label scale [{self.low}, {self.high}] is not a valid range")
        if not math.isfinite(self.score) or not self.low <= self.score <= self.high:
            raise RecordError(f"label score {self.score} is outside its scale [{self.low}, {self.high}]")

    def normalized(self) -> float:
        """The score mapped to [0, 1]."""
        return (self.score - self.low) / (self.high - self.low)


Label = PairLabel | PointLabel


def _media_of_kind(value: Any, kind: MediaKind) -> bool:
    if isinstance(value, EncodedMedia):
        return value.kind == kind
    if kind == "image":
        return isinstance(value, Image.Image)
    return isinstance(value, VideoClip)


def check_common_fields(item: Any) -> None:
    """id, task, prompt and source of a record or a candidate set."""
    if not isinstance(item.id, str) or not item.id:
        raise RecordError("field 'id' must be a non-empty string")
    if item.task not in TASKS:
        raise RecordError(f"field 'task' is {item.task!r}; expected one of {TASKS}")
    if not isinstance(item.prompt, str) or not item.prompt.strip():
        raise RecordError("field 'prompt' must be a non-empty string")
    if not isinstance(item.source, str) or not item.source:
        raise RecordError("field 'source' must be a non-empty string")


def check_candidates(task: str, candidates: tuple) -> None:
    """Media of the task's kind (generation, editing) or non-empty answer texts (understanding)."""
    kind = media_kind_of(task)
    for i, candidate in enumerate(candidates):
        if judges_media(task):
            if not _media_of_kind(candidate, kind):
                raise RecordError(f"field 'candidates[{i}]' must be {kind} media for {task}")
        elif not isinstance(candidate, str) or not candidate.strip():
            raise RecordError(f"field 'candidates[{i}]' must be a non-empty answer text for {task}")


def check_context(task: str, context: Any) -> None:
    if not has_context(task):
        if context is not None:
            raise RecordError(f"field 'context' must be None for {task}")
    elif not _media_of_kind(context, media_kind_of(task)):
        raise RecordError(f"field 'context' must be {media_kind_of(task)} media for {task}")


@dataclass(frozen=True)
class PreferenceRecord:
    """One judged example (or one DPO pair) of any task and mode.

    - generation tasks: `prompt` is the caption, `context` is None, `candidates` are images/videos;
    - understanding tasks: `prompt` is the question, `context` is the image/video, candidates are
      answer texts;
    - editing: `prompt` is the instruction, `context` the source image, `candidates` the edited images
      (the task table, `data/tasks.py`, says which task is which);
    - pair mode: 2 candidates and a label first/second/tie; point mode: 1 candidate and a
      `PointLabel`;
    - a DPO pair is a pair record whose label is not a tie: `chosen`/`rejected` read it.
    `meta` carries JSON-serialisable extras (the judge's probabilities, the world's attributes, the
    original instruction of a converted record).
    """

    id: str
    task: str
    mode: Mode
    prompt: str
    candidates: tuple[Candidate, ...]
    label: Label
    source: str
    context: Media | None = None
    rationale: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "candidates", tuple(self.candidates))
        check_common_fields(self)
        if self.mode not in MODES:
            raise RecordError(f"field 'mode' is {self.mode!r}; expected one of {MODES}")
        if self.rationale is not None and not isinstance(self.rationale, str):
            raise RecordError("field 'rationale' must be a string or None")
        if not isinstance(self.meta, dict):
            raise RecordError("field 'meta' must be a dict")
        self._check_candidates()
        self._check_context()
        self._check_label()

    def _check_candidates(self):
        expected = 2 if self.mode == "pair" else 1
        if len(self.candidates) != expected:
            raise RecordError(f"field 'candidates' has {len(self.candidates)} items; {self.mode} mode needs {expected}")
        check_candidates(self.task, self.candidates)

    def _check_context(self):
        check_context(self.task, self.context)

    def _check_label(self):
        if self.mode == "pair":
            if self.label not in PAIR_LABELS:
                raise RecordError(f"field 'label' is {self.label!r}; pair mode expects one of {PAIR_LABELS}")
        elif not isinstance(self.label, PointLabel):
            raise RecordError(f"field 'label' must be a PointLabel in point mode, got {self.label!r}")

    @property
    def stream(self) -> str:
        return stream_name(self.task, self.mode)

    @property
    def scale(self) -> tuple[float, float] | None:
        """(low, high) of a point label; None for pair records."""
        return (self.label.low, self.label.high) if isinstance(self.label, PointLabel) else None

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self._preferred_index()]

    @property
    def rejected(self) -> Candidate:
        return self.candidates[1 - self._preferred_index()]

    def _preferred_index(self) -> int:
        if self.mode != "pair" or self.label == "tie":
            raise RecordError(
                f"record {self.id!r} is not a strict preference pair (mode={self.mode}, label={self.label})"
            )
        return 0 if self.label == "first" else 1

    @classmethod
    def preference_pair(
        cls,
        *,
        id: str,
        task: str,
        prompt: str,
        chosen: Candidate,
        rejected: Candidate,
        source: str,
        context: Media | None = None,
        meta: dict[str, Any] | None = None,
    ) -> PreferenceRecord:
        """A DPO pair: the chosen candidate first."""
        return cls(
            id=id,
            task=task,
            mode="pair",
            prompt=prompt,
            candidates=(chosen, rejected),
            label="first",
            source=source,
            context=context,
            meta=dict(meta or {}),
        )


CANDIDATES = "candidates"  # the mode name of candidate sets in shards and stream names


@dataclass(frozen=True)
class CandidateSet:
    """N >= 2 unjudged candidates for one prompt: a policy's sampled answers to a question (with its image or
    video as `context`), or a generator's samples for a caption. What the filter judges; stored in shards like
    records (stream `<task>_candidates`, label None)."""

    id: str
    task: str
    prompt: str
    candidates: tuple[Candidate, ...]
    source: str
    context: Media | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    mode: str = field(default=CANDIDATES, init=False)
    label: None = field(default=None, init=False)
    rationale: None = field(default=None, init=False)

    def __post_init__(self):
        object.__setattr__(self, "candidates", tuple(self.candidates))
        check_common_fields(self)
        if len(self.candidates) < 2:
            raise RecordError(f"a candidate set needs at least 2 candidates, got {len(self.candidates)}")
        check_candidates(self.task, self.candidates)
        check_context(self.task, self.context)

    @property
    def stream(self) -> str:
        return stream_name(self.task, CANDIDATES)
