"""What a benchmark reader yields: pairwise items whose media are loaded only when judged, and skipped items
with the reason (never dropped from the denominator without saying so)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unified_reward.data.media import MediaDecodeError, VideoSampling, decode_media
from unified_reward.data.schema import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, EncodedMedia

TRUTHS = ("first", "second", "tie", "both_bad")


class ItemError(ValueError):
    """An item that cannot be judged; `reason` is its skip-count tag (missing_media, corrupt_image, ...)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class MediaRef:
    """An image or video as stored by a benchmark: bytes already in hand, or a file to read when judged."""

    kind: str  # image | video
    path: str | None = None
    data: bytes | None = None
    ext: str | None = None

    def load(self, sampling: VideoSampling):
        if self.data is not None:
            data, ext = self.data, self.ext or ("png" if self.kind == "image" else "mp4")
        else:
            path = Path(self.path)
            if not path.is_file():
                raise ItemError("missing_media", str(path))
            data, ext = path.read_bytes(), path.suffix.lstrip(".").lower()
        allowed = IMAGE_EXTENSIONS if self.kind == "image" else VIDEO_EXTENSIONS
        try:
            return decode_media(EncodedMedia(self.kind, ext if ext in allowed else allowed[0], data), sampling)
        except MediaDecodeError as error:
            raise ItemError(error.reason, f"{self.path or 'embedded bytes'}: {error}") from error


@dataclass(frozen=True)
class BenchmarkItem:
    """Two candidates to compare: answer texts (understanding) or media (generation), in the benchmark's order."""

    id: str
    task: str
    prompt: str
    candidates: tuple[Any, Any]  # str or MediaRef
    truth: str  # first / second / tie / both_bad
    context: MediaRef | None = None
    group: str = ""  # the benchmark's group or category of the item
    labels: dict[str, str] = field(default_factory=dict)  # further labels (VideoGen-RewardBench: VQ, MQ, TA)

    def __post_init__(self):
        if self.truth not in TRUTHS:
            raise ItemError("malformed_field", f"item {self.id}: truth {self.truth!r} is not one of {TRUTHS}")
        if len(self.candidates) != 2:
            raise ItemError("malformed_field", f"item {self.id}: {len(self.candidates)} candidates, not 2")

    def loaded(self, sampling: VideoSampling) -> tuple[Any, tuple[Any, Any]]:
        """(context, candidates) with their media decoded; `ItemError` names what failed."""
        context = self.context.load(sampling) if self.context is not None else None
        candidates = tuple(c.load(sampling) if isinstance(c, MediaRef) else c for c in self.candidates)
        return context, candidates


@dataclass(frozen=True)
class Skipped:
    id: str
    reason: str
    detail: str = ""
