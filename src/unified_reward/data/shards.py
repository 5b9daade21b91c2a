"""Records <-> WebDataset samples, and the shard-set writer.

A sample holds `json` (the record's fields) plus one entry per media item:
`context.<ext>`, `candidate0.<ext>`, `candidate1.<ext>`. The JSON points at them by name.
A shard set is a folder of tar files named `<task>_<mode>-<index>.tar`, one stream per
(task, mode), plus `manifest.json` with the record count and shard names of every stream.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import webdataset as wds

from unified_reward.data.media import MediaDecodeError, VideoSampling, decode_media
from unified_reward.data.schema import (
    CANDIDATES,
    MODES,
    CandidateSet,
    EncodedMedia,
    PointLabel,
    PreferenceRecord,
    RecordError,
)
from unified_reward.data.tasks import TASKS

MANIFEST = "manifest.json"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class SampleError(ValueError):
    """A stored sample cannot become a record; `reason` is a stable tag for skip counts."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def sample_key(record_id: str) -> str:
    """The tar key of a record: its id with characters webdataset splits on replaced."""
    return _KEY_UNSAFE.sub("_", record_id)


def _media_ref(media: EncodedMedia, name: str, sample: dict[str, Any]) -> dict[str, str]:
    if not isinstance(media, EncodedMedia):
        raise RecordError(f"{name}: only EncodedMedia can be written to a shard, got {type(media).__name__}")
    entry = f"{name}.{media.ext}"
    sample[entry] = media.data
    return {"media": entry}


def encode_record(record: PreferenceRecord | CandidateSet) -> dict[str, Any]:
    """The WebDataset sample (a dict of bytes) that stores `record` (or a candidate set: mode `candidates`,
    label null)."""
    sample: dict[str, Any] = {"__key__": sample_key(record.id)}
    candidates = [
        c if isinstance(c, str) else _media_ref(c, f"candidate{i}", sample) for i, c in enumerate(record.candidates)
    ]
    context = None if record.context is None else _media_ref(record.context, "context", sample)
    label = (
        record.label
        if record.label is None or isinstance(record.label, str)
        else {"score": record.label.score, "low": record.label.low, "high": record.label.high}
    )
    fields = {
        "id": record.id,
        "task": record.task,
        "mode": record.mode,
        "prompt": record.prompt,
        "context": context,
        "candidates": candidates,
        "label": label,
        "source": record.source,
        "rationale": record.rationale,
        "meta": record.meta,
    }
    sample["json"] = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return sample


def _load_media(sample: dict[str, Any], ref: Any, field: str, sampling: VideoSampling | None):
    if not isinstance(ref, dict) or not isinstance(ref.get("media"), str):
        raise SampleError("invalid_record", f"field '{field}' must be an answer text or {{'media': name}}")
    entry = ref["media"]
    if entry not in sample:
        raise SampleError("missing_key", f"field '{field}' refers to '{entry}', which the sample lacks")
    kind = "video" if entry.rsplit(".", 1)[-1] in ("mp4", "avi", "mkv", "webm", "mov") else "image"
    try:
        encoded = EncodedMedia(kind, entry.rsplit(".", 1)[-1], bytes(sample[entry]))
    except RecordError as error:
        raise SampleError("invalid_record", f"{field}: {error}") from error
    if sampling is None:
        return encoded
    try:
        return decode_media(encoded, sampling)
    except MediaDecodeError as error:
        raise SampleError(error.reason, f"'{entry}': {error}") from error


def _label_of(raw: Any, mode: str):
    if mode == "pair":
        return raw
    if not isinstance(raw, dict) or "score" not in raw:
        raise SampleError("invalid_record", f"point label must be {{'score', 'low', 'high'}}, got {raw!r}")
    try:
        score, low, high = float(raw["score"]), float(raw.get("low", 1.0)), float(raw.get("high", 5.0))
    except (TypeError, ValueError) as error:
        raise SampleError("invalid_record", f"point label is not numeric: {raw!r}") from error
    if not low <= score <= high:
        raise SampleError("label_out_of_scale", f"score {score} outside its scale [{low}, {high}]")
    return PointLabel(score, low, high)


def _record_fields(sample: dict[str, Any]) -> dict[str, Any]:
    if "json" not in sample:
        raise SampleError("missing_key", "the sample has no 'json' entry")
    try:
        fields = json.loads(bytes(sample["json"]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SampleError("malformed_json", str(error)) from error
    if not isinstance(fields, dict):
        raise SampleError("malformed_json", f"expected a JSON object, got {type(fields).__name__}")
    missing = [k for k in ("id", "task", "mode", "prompt", "candidates", "label", "source") if k not in fields]
    if missing:
        raise SampleError("missing_key", f"the record JSON lacks {missing}")
    if fields["task"] not in TASKS:
        raise SampleError("unknown_task", f"task {fields['task']!r} is not one of {TASKS}")
    if not isinstance(fields["candidates"], list):
        raise SampleError("invalid_record", "field 'candidates' must be a list")
    return fields


def _media_fields(sample: dict[str, Any], fields: dict[str, Any], sampling: VideoSampling | None):
    candidates = tuple(
        c if isinstance(c, str) else _load_media(sample, c, f"candidates[{i}]", sampling)
        for i, c in enumerate(fields["candidates"])
    )
    context = fields.get("context")
    if context is not None:
        context = _load_media(sample, context, "context", sampling)
    return candidates, context


def decode_sample(sample: dict[str, Any], sampling: VideoSampling | None) -> PreferenceRecord:
    """The record stored in `sample`; media decoded with `sampling` (None keeps them encoded).

    Raises `SampleError` with a stable reason for every kind of damage.
    """
    fields = _record_fields(sample)
    if fields["mode"] not in MODES:
        raise SampleError("unknown_mode", f"mode {fields['mode']!r} is not one of {MODES}")
    label = _label_of(fields["label"], fields["mode"])
    candidates, context = _media_fields(sample, fields, sampling)
    try:
        return PreferenceRecord(
            id=fields["id"],
            task=fields["task"],
            mode=fields["mode"],
            prompt=fields["prompt"],
            candidates=candidates,
            label=label,
            source=fields["source"],
            context=context,
            rationale=fields.get("rationale"),
            meta=fields.get("meta") or {},
        )
    except RecordError as error:
        raise SampleError("invalid_record", str(error)) from error


def decode_candidate_set(sample: dict[str, Any], sampling: VideoSampling | None) -> CandidateSet:
    """The candidate set stored in `sample` (mode `candidates`), with the same error reasons as records."""
    fields = _record_fields(sample)
    if fields["mode"] != CANDIDATES:
        raise SampleError("unknown_mode", f"mode {fields['mode']!r}: a candidate set has mode {CANDIDATES!r}")
    candidates, context = _media_fields(sample, fields, sampling)
    try:
        return CandidateSet(
            id=fields["id"],
            task=fields["task"],
            prompt=fields["prompt"],
            candidates=candidates,
            source=fields["source"],
            context=context,
            meta=fields.get("meta") or {},
        )
    except RecordError as error:
        raise SampleError("invalid_record", str(error)) from error


class ShardSetWriter:
    """Writes records into one shard stream per (task, mode) under `folder`.

    Shards close at `max_count` records or `max_bytes`, whichever comes first. Keys are the
    record ids (made tar-safe); a repeated id is an error, not a silent duplicate. Tar entries
    carry mtime 0, so the same records give byte-identical shards.
    Use as a context manager; `close()` writes `manifest.json`.
    """

    def __init__(self, folder: str | os.PathLike, max_count: int = 1000, max_bytes: float = 256e6):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._writers: dict[str, wds.ShardWriter] = {}
        self._counts: dict[str, int] = {}
        self._keys: set[str] = set()

    def write(self, record: PreferenceRecord | CandidateSet) -> None:
        sample = encode_record(record)
        if sample["__key__"] in self._keys:
            raise RecordError(f"duplicate record key {sample['__key__']!r} (id {record.id!r}) in {self.folder}")
        self._keys.add(sample["__key__"])
        stream = record.stream
        if stream not in self._writers:
            pattern = str(self.folder / f"{stream}-%06d.tar")
            self._writers[stream] = wds.ShardWriter(
                pattern, maxcount=self.max_count, maxsize=self.max_bytes, verbose=0, mtime=0
            )
            self._counts[stream] = 0
        self._writers[stream].write(sample)
        self._counts[stream] += 1

    def write_all(self, records: Iterable[PreferenceRecord]) -> None:
        for record in records:
            self.write(record)

    def close(self) -> dict[str, Any]:
        for writer in self._writers.values():
            writer.close()
        manifest = {
            "streams": {
                stream: {
                    "records": self._counts[stream],
                    "shards": sorted(p.name for p in self.folder.glob(f"{stream}-*.tar")),
                }
                for stream in sorted(self._writers)
            }
        }
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return manifest

    def __enter__(self) -> ShardSetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {folder} a shard set written by ShardSetWriter?")
    return json.loads(path.read_text())


def build_folder_once(folder: str | os.PathLike, marker: str, build) -> bool:
    """Make `folder` with `build(staging)` unless it already holds `marker`; False when it was there.

    `build` writes into a private staging folder next to `folder` (and must write `marker` last), which
    is then renamed into place, so a crash never leaves a half-built folder that looks finished and
    concurrent builders (one per node or process) cannot interleave; the first rename wins.
    """
    folder = Path(folder)
    if (folder / marker).exists():
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".staging-{folder.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    build(staging)
    try:
        staging.rename(folder)
    except OSError:  # another process finished first; its copy is identical
        shutil.rmtree(staging, ignore_errors=True)
    return True


def build_splits_once(
    folder: str | os.PathLike, splits: Iterable[str], write_split: Callable[[str, Path], dict], what: str
) -> None:
    """`build_folder_once` for a shard set with one sub-folder per split: `write_split(split, sub_folder)`
    writes a split and returns its counts, which go to `summary.json` (the marker) and the log."""
    started = time.perf_counter()

    def build(staging: Path) -> None:
        summary = {split: write_split(split, staging / split) for split in splits}
        (staging / "summary.json").write_text(json.dumps(summary, indent=2))
        logging.getLogger(__name__).info(
            "%s ready in %s (%.1f s): %s", what, folder, time.perf_counter() - started, summary
        )

    build_folder_once(folder, "summary.json", build)
