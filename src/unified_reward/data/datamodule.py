"""`PreferenceDataModule`: train/val/test record streams from separate shard sets.

Training reads a weighted mixture of (task, mode) streams forever (train by `max_steps`:
iterable data has no length); validation and test read each included stream once. Which
tasks and modes are included, and which of those training mixes (`train_tasks`), is how the single-task
ablation is run: a judge trained on one task and tested on every task shows what transfers.

Under DDP each pass is split so that every record is read by exactly one rank (see
`reading.plan_reading`): with at least as many shards per stream as ranks, ranks read
disjoint shards; with fewer, every rank reads all shards of that stream and keeps every
world_size-th record (still exactly once, at world_size times the reading). Validation sets
may then give ranks a different number of batches: log validation metrics with sync at epoch
end (torchmetrics), never per step with `sync_dist=True`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from unified_reward.data.media import VideoSampling
from unified_reward.data.reading import MixtureStream, ShardStream, SkipBatches, SkipCounter
from unified_reward.data.schema import MODES, stream_name
from unified_reward.data.sources import ShardSource
from unified_reward.data.tasks import PAPER_TASKS, TASKS

log = logging.getLogger(__name__)


def keep_records(records: list) -> list:
    """The default collate: a batch is the list of records; model-specific collators replace it."""
    return records


class PreferenceDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: ShardSource,
        *,
        tasks: Sequence[str] = PAPER_TASKS,
        modes: Sequence[str] = MODES,
        train_tasks: Sequence[str] | None = None,
        weights: dict[str, float] | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        video_frames: int | None = 8,
        video_fps: float | None = None,
        video_max_frames: int = 32,
        shuffle_buffer: int = 256,
        strict: bool = False,
        seed: int = 0,
        collate_fn: Callable[[list], Any] | None = None,
        predict_split: str = "train",
        keep_encoded: bool = False,
    ):
        super().__init__()
        unknown = [t for t in tasks if t not in TASKS] + [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown tasks/modes {unknown}; tasks are {TASKS}, modes {MODES}")
        self.source = source
        self.tasks, self.modes = tuple(tasks), tuple(modes)
        self.train_tasks = self.tasks if train_tasks is None else tuple(train_tasks)
        outside = [t for t in self.train_tasks if t not in self.tasks]
        if outside or not self.train_tasks:
            raise ValueError(
                f"train_tasks {list(self.train_tasks)} must be a non-empty subset of tasks {list(self.tasks)}"
            )
        included = [stream_name(t, m) for t in self.tasks for m in self.modes]
        extra = set(weights or {}) - set(stream_name(t, m) for t in TASKS for m in MODES)
        if extra:
            raise ValueError(f"weights name unknown streams {sorted(extra)}")
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in included}
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.sampling = VideoSampling(num_frames=video_frames, fps=video_fps, max_frames=video_max_frames)
        self.shuffle_buffer = shuffle_buffer
        self.strict = strict
        self.seed = seed
        self.collate_fn = collate_fn or keep_records
        self.predict_split = predict_split
        self.keep_encoded = keep_encoded  # media stay stored bytes (`EncodedMedia`), decoded by whoever reads them
        self.skip_counts = {split: SkipCounter() for split in ("train", "val", "test", "predict")}
        self._resume_batches = 0

    def prepare_data(self) -> None:
        self.source.prepare()

    def _mixture(self, split: str, *, repeat: bool) -> MixtureStream:
        available = self.source.streams(split)
        weights = self.weights
        if split == "train":  # validation and test read every included task, trained or not
            trained = {stream_name(t, m) for t in self.train_tasks for m in self.modes}
            weights = {name: w for name, w in weights.items() if name in trained}
        missing = [name for name, w in weights.items() if w > 0 and name not in available]
        if missing:
            raise FileNotFoundError(f"split {split!r} has no shards for streams {missing} (it has {sorted(available)})")
        streams = {
            name: ShardStream(
                available[name],
                name=f"{split}/{name}",
                sampling=None if self.keep_encoded else self.sampling,
                shuffle_shards=repeat,
                shuffle_buffer=self.shuffle_buffer if repeat else 0,
                repeat=repeat,
                strict=self.strict,
                seed=self.seed,
                counter=self.skip_counts[split],
            )
            for name, weight in weights.items()
            if weight > 0
        }
        return MixtureStream(streams, weights, seed=self.seed)

    def _loader(self, split: str, batch_size: int, *, repeat: bool) -> DataLoader:
        dataset = self._mixture(split, repeat=repeat)
        if split == "train" and self._resume_batches:
            dataset = SkipBatches(dataset, self._resume_batches, batch_size)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            persistent_workers=self.num_workers > 0 and repeat,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, repeat=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, repeat=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, repeat=False)

    def pass_dataloader(self, split: str) -> DataLoader:
        """One unshuffled pass over a split (e.g. precomputing reference log-probs of the train pairs);
        under DDP each rank reads its own part, as for validation."""
        return self._loader(split, self.eval_batch_size, repeat=False)

    def predict_dataloader(self) -> DataLoader:
        """One pass over `predict_split` (the prediction entry point's `split=`)."""
        return self.pass_dataloader(self.predict_split)

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: how many training batches were consumed, so a resumed run skips them
        and sees the same data as an uninterrupted one (the streams are deterministic from the seed)."""
        trainer = getattr(self, "trainer", None)
        consumed = trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else 0
        return {"train_batches": int(consumed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume_batches = int(state.get("train_batches", 0))

    def predict_skipped(self) -> dict[str, int]:
        """Bad samples skipped so far in the prediction pass (`predict_split`), by reason."""
        return self.skip_counts[self.predict_split].as_dict()

    def skipped(self) -> dict[str, dict[str, int]]:
        """Bad samples skipped so far, per split and reason (summed over this process's workers)."""
        return {split: counter.as_dict() for split, counter in self.skip_counts.items() if counter.total()}
