"""Judging benchmark items under a named protocol, as a Lightning prediction loop with a resumable predictions
file.

Protocol (every choice named, none implicit): the answer order (`fixed`: as released; `random`: a seeded coin
per presentation; `both`: both orders, the verdict where the two agree and a tie where they disagree, the margin
averaged), `votes` random-order presentations with a
majority vote, pair judging or point judging (each candidate scored, a difference within `tie_threshold` is a
tie), reading the answer probabilities in one forward pass or generating text and parsing it, and how videos
are sampled. Each item's prediction keeps every presentation (shown order, verdict, probabilities, text).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from unified_reward.data.media import VideoSampling
from unified_reward.judging.queries import VERDICTS, JudgeQuery, JudgeReadings
from unified_reward.prompts.parsing import parse_pair
from unified_reward.reward_benchmarks.items import BenchmarkItem, ItemError
from unified_reward.reward_benchmarks.metrics import majority_vote

SWAP = {"first": "second", "second": "first", "tie": "tie", None: None}


@dataclass(frozen=True)
class Protocol:
    order: str = "random"  # fixed | random | both
    seed: int = 0
    votes: int = 1  # order=random: presentations per item, each in its own random order, majority vote
    judging: str = "pair"  # pair | point
    tie_threshold: float = 0.0  # point judging: |score(A) - score(B)| <= this is a tie
    read: str = "probabilities"  # probabilities (one forward pass) | text (generate, then parse)
    video_frames: int | None = 8
    video_fps: float | None = None
    video_max_frames: int = 32

    def __post_init__(self):
        choices = {
            "order": ("fixed", "random", "both"),
            "judging": ("pair", "point"),
            "read": ("probabilities", "text"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"protocol.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.votes < 1 or (self.votes > 1 and self.order != "random"):
            raise ValueError("protocol.votes > 1 needs order=random (each vote in its own random order)")

    @property
    def sampling(self) -> VideoSampling:
        return VideoSampling(num_frames=self.video_frames, fps=self.video_fps, max_frames=self.video_max_frames)

    def orders(self, item_id: str) -> list[bool]:
        """Per presentation: whether the candidates are shown swapped."""
        if self.order == "fixed":
            return [False]
        if self.order == "both":
            return [False, True]
        return [zlib.crc32(f"{self.seed}/{item_id}/{k}".encode()) % 2 == 1 for k in range(self.votes)]


class JudgeReader:
    """Any judge (`judging.queries.JudgeReadings`: learned, oracle, random) reading one presentation of each item: pair
    verdict probabilities, or two point scores; `read=text` parses what a generative judge wrote."""

    def __init__(self, judge: JudgeReadings, protocol: Protocol):
        self.judge, self.protocol = judge, protocol

    def read(self, shown: list[tuple[BenchmarkItem, Any, tuple[Any, Any]]]) -> list[dict[str, Any]]:
        text = self.protocol.read == "text"
        if self.protocol.judging == "pair":
            queries = [JudgeQuery(item.task, "pair", item.prompt, pair, context) for item, context, pair in shown]
            readings = []
            for judgment in self.judge.judge(queries, with_text=text):
                written = text and judgment.text is not None  # the oracle and the random judge write nothing
                verdict = parse_pair(judgment.text).verdict if written else _argmax(judgment.probabilities)
                probabilities = {v: judgment.probabilities.get(v, 0.0) for v in VERDICTS}
                readings.append({"verdict": verdict, "probabilities": probabilities, "text": judgment.text})
            return readings
        queries = [
            JudgeQuery(item.task, "point", item.prompt, (candidate,), context)
            for item, context, pair in shown
            for candidate in pair
        ]
        judgments = self.judge.judge(queries, with_text=text)
        scores = [j.parsed("point") if text and j.text is not None else j.expected_score for j in judgments]
        readings = []
        for k in range(len(shown)):
            a, b = scores[2 * k], scores[2 * k + 1]
            texts = [judgments[2 * k].text, judgments[2 * k + 1].text]
            readings.append(
                {"verdict": _point_verdict(a, b, self.protocol.tie_threshold), "scores": [a, b], "text": texts}
            )
        return readings


def _argmax(probabilities: dict[str, float]) -> str | None:
    """The most probable verdict; `tie` when first and second are exactly as probable (no lean to either side:
    an argmax would give the first in dict order)."""
    if not probabilities:
        return None
    best = max(probabilities, key=probabilities.get)
    if best in ("first", "second") and probabilities.get("first") == probabilities.get("second"):
        return "tie"
    return best


def _point_verdict(a: float | None, b: float | None, threshold: float) -> str | None:
    if a is None or b is None:
        return None
    return "tie" if abs(a - b) <= threshold else ("first" if a > b else "second")


def combine(presentations: list[dict[str, Any]], protocol: Protocol) -> tuple[str | None, float]:
    """The item's verdict in the benchmark's order and its margin for the first candidate (P(first) - P(second),
    or score(first) - score(second)), from its presentations (each already mapped back to that order)."""
    margins = []
    for p in presentations:
        if "probabilities" in p:
            margins.append(p["probabilities"]["first"] - p["probabilities"]["second"])
        elif p.get("scores") and None not in p["scores"]:
            margins.append(p["scores"][0] - p["scores"][1])
    margin = sum(margins) / len(margins) if margins else float("nan")
    verdicts = [p["verdict"] for p in presentations]
    if len(presentations) == 1:
        return verdicts[0], margin
    if protocol.order == "both":
        # the two orders agree, or it is a tie: a judge that follows position alone (the same shown verdict in
        # both orders) must not win the items whose preferred answer comes first; one invalid side gives the other
        valid = [v for v in verdicts if v is not None]
        return (valid[0] if len(set(valid)) == 1 else ("tie" if valid else None)), margin
    return majority_vote(verdicts), margin


class BenchmarkPrediction(L.LightningModule):
    """`predict_step`: one batch of items judged under the protocol; items whose media fail are returned as
    skipped with the reason (or raise with `strict`)."""

    def __init__(self, reader, protocol: Protocol, *, strict: bool = False):
        super().__init__()
        self.reader, self.protocol, self.strict = reader, protocol, strict
        model = getattr(getattr(reader, "judge", None), "model", None)
        self.model = model if isinstance(model, torch.nn.Module) else None  # moved to the device by Lightning

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # items (frozen dataclasses holding media) stay on the host; the judge moves its inputs

    def predict_step(self, batch: list[BenchmarkItem], batch_idx: int) -> list[dict[str, Any]]:
        loaded, results = [], []
        for item in batch:
            try:
                loaded.append((item, *item.loaded(self.protocol.sampling)))
            except ItemError as error:
                if self.strict:
                    raise ItemError(error.reason, f"item {item.id}: {error}") from error
                results.append({"id": item.id, "skipped": error.reason, "detail": str(error)})
        shown, owners = [], []
        for index, (item, context, pair) in enumerate(loaded):
            for swapped in self.protocol.orders(item.id):
                shown.append((item, context, pair[::-1] if swapped else pair))
                owners.append((index, swapped))
        readings = self.reader.read(shown) if shown else []
        per_item: dict[int, list[dict[str, Any]]] = {}
        for (index, swapped), reading in zip(owners, readings, strict=True):
            reading = {"swapped": swapped, "shown_verdict": reading["verdict"], **reading}
            reading["verdict"] = SWAP[reading["verdict"]] if swapped else reading["verdict"]
            if swapped and "probabilities" in reading:
                p = reading["probabilities"]
                reading["probabilities"] = {"first": p["second"], "second": p["first"], "tie": p["tie"]}
            if swapped and reading.get("scores"):
                reading["scores"] = reading["scores"][::-1]
            per_item.setdefault(index, []).append(reading)
        for index, (item, _, _) in enumerate(loaded):
            verdict, margin = combine(per_item[index], self.protocol)
            results.append(
                {
                    "id": item.id,
                    "group": item.group,
                    "truth": item.truth,
                    "labels": item.labels,
                    "verdict": verdict,
                    "margin": margin,
                    "presentations": per_item[index],
                }
            )
        return results


class PredictionFile(L.Callback):
    """Appends each batch's predictions to `<folder>/predictions-r<rank>.jsonl` as it is judged, so a killed
    evaluation resumes with the items not yet in any rank's file (`done_ids`)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"predictions-r{trainer.global_rank:03d}.jsonl").open("a") as file:
            for row in outputs:
                file.write(json.dumps(row, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def read_predictions(folder: str | Path) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("predictions-r*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["id"]] = row
    return list(rows.values())


def done_ids(folder: str | Path) -> set[str]:
    return {row["id"] for row in read_predictions(folder)}
