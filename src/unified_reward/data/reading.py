"""Reading shard streams: split across ranks and workers, shuffle, decode, skip and count bad input.

Splitting (exactly-once per pass): shards are dealt to ranks when there are at least as many
shards as ranks, and within a rank to dataloader workers when there are at least as many
shards as workers. Where there are fewer, every reader of that level reads the same shards
and keeps every k-th raw sample instead (correct, but each reader reads all of those shards).
The shard order of a pass is the same on every rank (seeded by seed and pass number).
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import tarfile_samples

from unified_reward.data.media import VideoSampling
from unified_reward.data.schema import PreferenceRecord
from unified_reward.data.shards import SampleError, decode_sample
from unified_reward.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_SAMPLING = VideoSampling(num_frames=8)

SKIP_REASONS = (
    "corrupt_shard",
    "missing_key",
    "malformed_json",
    "unknown_task",
    "unknown_mode",
    "invalid_record",
    "label_out_of_scale",
    "corrupt_image",
    "corrupt_video",
)


def stable_seed(*parts: Any) -> int:
    """A seed from `parts` that is the same in every process (unlike `hash`, which is salted)."""
    return zlib.crc32(repr(parts).encode("utf-8"))


class DataError(UserError):
    """Bad input met in strict mode, or a stream with nothing valid; the message names shards, keys and reasons."""


class SkipCounter:
    """Skipped-sample counts per reason, shared by the dataloader workers of one process."""

    def __init__(self):
        self._counts = multiprocessing.get_context("fork").Array("q", len(SKIP_REASONS))

    def add(self, reason: str) -> None:
        index = SKIP_REASONS.index(reason)
        with self._counts.get_lock():
            self._counts[index] += 1

    def as_dict(self) -> dict[str, int]:
        with self._counts.get_lock():
            return {reason: int(n) for reason, n in zip(SKIP_REASONS, self._counts, strict=True) if n}

    def total(self) -> int:
        return sum(self.as_dict().values())


@dataclass(frozen=True)
class ReaderPlace:
    """Which reader this is: rank among `world_size` processes, worker among `num_workers`."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    @classmethod
    def current(cls) -> ReaderPlace:
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return cls(rank, world, worker, workers)


@dataclass(frozen=True)
class ReadPlan:
    """The shards one reader opens and which of their raw samples it keeps (i % modulus == remainder)."""

    urls: tuple[str, ...]
    modulus: int
    remainder: int


def plan_reading(urls: Sequence[str], place: ReaderPlace) -> ReadPlan:
    urls = list(urls)
    if len(urls) >= place.world_size:
        mine = urls[place.rank :: place.world_size]
        if len(mine) >= place.num_workers:
            return ReadPlan(tuple(mine[place.worker :: place.num_workers]), 1, 0)
        return ReadPlan(tuple(mine), place.num_workers, place.worker)
    parts = place.world_size * place.num_workers
    return ReadPlan(tuple(urls), parts, place.rank * place.num_workers + place.worker)


@dataclass
class PassReport:
    """What one reader's pass over its shards skipped, by reason, and which shards warned."""

    shards: tuple[str, ...] = ()
    whole_stream: bool = True  # this reader reads every sample of the stream
    skipped: Counter = field(default_factory=Counter)
    warned: set[str] = field(default_factory=set)

    def nothing_valid(self, stream: str) -> str:
        reasons = ", ".join(f"{reason} x{count}" for reason, count in sorted(self.skipped.items()))
        return (
            f"stream {stream!r}: a whole pass over its shards gave no valid sample (skipped: {reasons}; shards: "
            f"{', '.join(self.shards)}). Fix or replace these shards, or leave the stream out of the run "
            f"(data.tasks / data.modes, or data.weights={{<stream>: 0}})."
        )


class ShardStream(IterableDataset):
    """Records of one shard stream (e.g. all `image_generation_pair` shards of a split).

    `repeat=True` cycles passes forever (training by max_steps), reshuffling shards each pass;
    `repeat=False` is one pass. Bad samples are skipped and counted in `counter`, with one warning
    per shard naming the shard and key; `strict=True` raises `DataError` on the first one. A pass in which
    every sample was bad raises `DataError` naming the shards and reasons (never an endless empty loop).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str = "",
        sampling: VideoSampling | None = DEFAULT_SAMPLING,
        shuffle_shards: bool = False,
        shuffle_buffer: int = 0,
        repeat: bool = False,
        strict: bool = False,
        seed: int = 0,
        counter: SkipCounter | None = None,
        place: ReaderPlace | None = None,
        decode: Callable[[dict[str, Any], VideoSampling | None], Any] = decode_sample,
    ):
        if not urls:
            raise ValueError(f"stream {name!r} has no shards")
        self.urls = list(urls)
        self.name = name
        self.sampling = sampling
        self.shuffle_shards = shuffle_shards
        self.shuffle_buffer = shuffle_buffer
        self.repeat = repeat
        self.strict = strict
        self.seed = seed
        self.counter = counter if counter is not None else SkipCounter()
        self.place = place
        self.decode = decode  # decode_sample for records, shards.decode_candidate_set for candidate sets

    def __iter__(self) -> Iterator[PreferenceRecord]:
        place = self.place or ReaderPlace.current()
        rng = random.Random(stable_seed(self.seed, self.name, place.rank, place.worker))
        passes = 0
        while True:
            report = PassReport()
            records = self._one_pass(place, passes, report)
            if self.shuffle_buffer > 1:
                records = _buffer_shuffle(records, self.shuffle_buffer, rng)
            produced = 0
            for record in records:
                produced += 1
                yield record
            passes += 1
            if produced == 0 and report.skipped and report.whole_stream:
                # nothing valid anywhere in the stream: stop (a repeating stream would loop over empty passes)
                raise DataError(report.nothing_valid(self.name))
            if produced == 0 and report.skipped:
                log.warning(
                    "rank %d worker %d: its share of stream %s gave no valid sample (%s); the other readers carry on",
                    place.rank,
                    place.worker,
                    self.name,
                    dict(report.skipped),
                )
            if not self.repeat or produced == 0:  # an empty share (fewer samples than readers) ends quietly
                return

    def _one_pass(self, place: ReaderPlace, pass_index: int, report: PassReport) -> Iterator[PreferenceRecord]:
        urls = list(self.urls)
        if self.shuffle_shards:
            random.Random(stable_seed(self.seed, self.name, pass_index)).shuffle(urls)
        plan = plan_reading(urls, place)
        report.shards = plan.urls
        report.whole_stream = plan.modulus == 1 and len(plan.urls) == len(urls)
        samples = tarfile_samples(
            ({"url": url} for url in plan.urls), handler=lambda error: self._on_shard_error(error, report)
        )
        for index, sample in enumerate(samples):
            if index % plan.modulus != plan.remainder:
                continue
            try:
                yield self.decode(sample, self.sampling)
            except SampleError as error:
                self._skip(sample, error, report)

    def _skip(self, sample: dict[str, Any], error: SampleError, report: PassReport) -> None:
        url, key = sample.get("__url__", "?"), sample.get("__key__", "?")
        if self.strict:
            raise DataError(f"shard {url}, key {key}: {error.reason}: {error.detail}") from error
        self.counter.add(error.reason)
        report.skipped[error.reason] += 1
        if url not in report.warned:
            report.warned.add(url)
            log.warning(
                "skipping bad sample in shard %s, key %s: %s (further ones in this shard are counted "
                "without a warning)",
                url,
                key,
                error,
            )

    def _on_shard_error(self, error: Exception, report: PassReport) -> bool:
        url = next((a for a in reversed(error.args) if isinstance(a, str) and a.endswith(".tar")), "?")
        if self.strict:
            raise DataError(f"shard {url}: corrupt_shard: {error}") from error
        self.counter.add("corrupt_shard")
        report.skipped["corrupt_shard"] += 1
        if url not in report.warned:
            report.warned.add(url)
            log.warning("shard %s is damaged, reading stopped there: %s", url, error)
        return True


def _buffer_shuffle(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        index = rng.randrange(size)
        buffer[index], item = item, buffer[index]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class MixtureStream(IterableDataset):
    """Interleaves named streams, drawing the next record from stream s with probability ~ weights[s].

    Streams with weight 0 are left out (that is how a single-task run is made). A stream that ends
    (one pass, `repeat=False`) drops out and the others continue, so a finite mixture yields every
    record of every included stream exactly once.
    """

    def __init__(self, streams: dict[str, ShardStream], weights: dict[str, float], seed: int = 0):
        unknown = {name for name, weight in weights.items() if weight > 0} - set(streams)
        if unknown:
            raise ValueError(f"mixture weights name streams that have no shards: {sorted(unknown)}")
        self.streams = {name: streams[name] for name in sorted(streams) if weights.get(name, 0) > 0}
        if not self.streams:
            raise ValueError(f"mixture has no stream with weight > 0 (weights {weights})")
        self.weights = {name: float(weights[name]) for name in self.streams}
        self.seed = seed

    def __iter__(self) -> Iterator[PreferenceRecord]:
        place = ReaderPlace.current()
        rng = random.Random(stable_seed(self.seed, "mixture", place.rank, place.worker))
        active = {name: iter(stream) for name, stream in self.streams.items()}
        while active:
            names = list(active)
            name = rng.choices(names, weights=[self.weights[n] for n in names])[0]
            try:
                yield next(active[name])
            except StopIteration:
                del active[name]


class SkipBatches(IterableDataset):
    """Drops the records of the first `batches` batches a DataLoader over `dataset` would yield, so a
    resumed run continues with the batches it had not seen. DataLoader workers each build whole
    batches and are read round-robin, so worker w drops its share of the first `batches` batches."""

    def __init__(self, dataset: IterableDataset, batches: int, batch_size: int):
        self.dataset = dataset
        self.batches = batches
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[Any]:
        place = ReaderPlace.current()
        mine = len(range(place.worker, self.batches, place.num_workers))
        iterator = iter(self.dataset)
        for _ in range(mine * self.batch_size):
            next(iterator, None)
        yield from iterator
