"""Prediction output as shards, exactly once across ranks, crashes and restarts.

Every prediction loop of the pipeline (candidate generation, the filter) returns, per input item, an
`Outcome`: the item's id, the record it produced (or None when it produced none) and JSON facts about it.
`ResumableShardWriter` buffers outcomes and flushes them as *parts*: a tar of the produced records per
stream, then a JSON sidecar listing every input id the part covers (produced or not) and its facts. The
sidecar is the commit point: a part whose sidecar is missing (a run killed mid-flush) is deleted at the
next start and its items are done again; items listed in sidecars are skipped (`done_ids`). Each rank writes
its own parts, so ranks never contend. At the end rank 0 writes `manifest.json` (the form `ShardFolder` and
the DPO modules read) and `summary.json` (the facts, summed).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import webdataset as wds
from lightning.pytorch.callbacks import BasePredictionWriter

from unified_reward.data.shards import MANIFEST, encode_record

log = logging.getLogger(__name__)
SIDECAR = ".done.json"


@dataclass
class Outcome:
    item_id: str
    record: Any | None  # a PreferenceRecord or CandidateSet to write, or None
    facts: dict[str, Any] = field(default_factory=dict)  # JSON: counts ("counts"), reasons, values


def committed_ids(folder: Path) -> set[str]:
    """Input ids covered by committed parts (read only)."""
    ids: set[str] = set()
    for sidecar in folder.glob(f"*{SIDECAR}"):
        ids.update(json.loads(sidecar.read_text())["items"])
    return ids


def remove_uncommitted(folder: Path) -> int:
    """Delete shards no sidecar commits and staging leftovers: a run died before committing them, and
    their items are done again. Run by one process before any writes."""
    committed = {shard for sidecar in folder.glob(f"*{SIDECAR}") for shard in json.loads(sidecar.read_text())["shards"]}
    removed = 0
    for path in list(folder.glob("*.tar")) + list(folder.glob(".staging-*")):
        if path.name not in committed:
            path.unlink()
            removed += 1
    return removed


class ResumableShardWriter(BasePredictionWriter):
    def __init__(self, output_dir: str | os.PathLike, flush_every: int = 64):
        super().__init__(write_interval="batch")
        self.folder = Path(output_dir)
        self.flush_every = flush_every
        self._buffer: list[Outcome] = []
        self._parts = 0

    # ---- start: what is already done ---------------------------------------------------------------------

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
            removed = remove_uncommitted(self.folder)
            if removed:
                log.info("removed %d uncommitted files of an interrupted run from %s", removed, self.folder)
        trainer.strategy.barrier()
        done = committed_ids(self.folder)
        pl_module.skip_ids = done
        self._rank = trainer.global_rank
        self._parts = len(list(self.folder.glob(f"*-r{self._rank:03d}-*{SIDECAR}")))
        if done:
            log.info("resuming: %d items of %s are done and will be skipped", len(done), self.folder)

    # ---- per batch ---------------------------------------------------------------------------------------

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        self._buffer.extend(prediction or [])
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        outcomes, self._buffer = self._buffer, []
        name = f"part-r{self._rank:03d}-{self._parts:06d}"
        by_stream: dict[str, list[Any]] = defaultdict(list)
        for outcome in outcomes:
            if outcome.record is not None:
                by_stream[outcome.record.stream].append(outcome.record)
        shards = []
        for stream, records in sorted(by_stream.items()):
            shard = f"{stream}-{name}.tar"
            staging = self.folder / f".staging-{shard}"
            with wds.TarWriter(str(staging), mtime=0) as tar:
                for record in records:
                    tar.write(encode_record(record))
            staging.rename(self.folder / shard)
            shards.append(shard)
        sidecar = {
            "items": [o.item_id for o in outcomes],
            "shards": shards,
            "records": {stream: len(records) for stream, records in by_stream.items()},
            "facts": [o.facts for o in outcomes],
        }
        staging = self.folder / f".staging-{name}{SIDECAR}"
        staging.write_text(json.dumps(sidecar))
        staging.rename(self.folder / f"{name}{SIDECAR}")  # the commit point
        self._parts += 1

    # ---- end: manifest and summary -----------------------------------------------------------------------

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.flush()
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            summary = write_manifest(self.folder)
            log.info("%s: %s", self.folder, json.dumps(summary["totals"]))
            report = getattr(pl_module, "report", None)
            if callable(report):
                report(trainer, summary)


def write_manifest(folder: Path) -> dict[str, Any]:
    """`manifest.json` over every committed part and `summary.json` with the facts of every item."""
    streams: dict[str, dict[str, Any]] = {}
    facts: list[dict[str, Any]] = []
    for sidecar in sorted(folder.glob(f"*{SIDECAR}")):
        entry = json.loads(sidecar.read_text())
        facts.extend(entry["facts"])
        for shard in entry["shards"]:
            stream = shard.split("-part-")[0]
            streams.setdefault(stream, {"records": 0, "shards": []})["shards"].append(shard)
        for stream, count in entry["records"].items():
            streams[stream]["records"] += count
    for entry in streams.values():
        entry["shards"].sort()
    (folder / MANIFEST).write_text(json.dumps({"streams": streams}, indent=2))
    totals: Counter[str] = Counter()
    for item in facts:
        totals.update({k: v for k, v in item.get("counts", {}).items()})
    summary = {"items": len(facts), "totals": dict(sorted(totals.items())), "facts": facts}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
