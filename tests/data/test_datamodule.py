import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from unified_reward.data.datamodule import PreferenceDataModule
from unified_reward.data.schema import PreferenceRecord
from unified_reward.data.shards import ShardSetWriter
from unified_reward.data.sources import ShardFolder, ShardURLs
from unified_reward.data.tasks import PAPER_TASKS
from unified_reward.synthetic.source import SyntheticWorld
from unified_reward.synthetic.world import WorldConfig, make_record

WORKER = Path(__file__).with_name("ddp_read_worker.py")


def _ids(loader):
    return [r.id for batch in loader for r in batch]


def test_eval_loaders_read_each_split_once(small_world):
    datamodule = PreferenceDataModule(ShardFolder(small_world), batch_size=5, num_workers=2)
    val, test = _ids(datamodule.val_dataloader()), _ids(datamodule.test_dataloader())
    assert len(val) == len(set(val)) == 96 and all(i.startswith("synthetic-val-") for i in val)
    assert len(test) == len(set(test)) == 96 and not set(val) & set(test)


def test_train_loader_is_infinite_mixture_of_chosen_tasks(small_world):
    datamodule = PreferenceDataModule(ShardFolder(small_world), tasks=["video_generation"], batch_size=4)
    loader = iter(datamodule.train_dataloader())
    records = [r for _ in range(20) for r in next(loader)]  # 80 draws from 48 training records: passes repeat
    assert {r.stream for r in records} == {"video_generation_pair", "video_generation_point"}
    assert all(isinstance(r, PreferenceRecord) and r.id.startswith("synthetic-train-") for r in records)


def test_train_tasks_train_on_some_tasks_and_evaluate_on_all(small_world):
    datamodule = PreferenceDataModule(ShardFolder(small_world), train_tasks=["image_understanding"], batch_size=4)
    loader = iter(datamodule.train_dataloader())
    trained = {r.stream for _ in range(20) for r in next(loader)}
    assert trained == {"image_understanding_pair", "image_understanding_point"}
    tested = {r.stream for b in datamodule.test_dataloader() for r in b}
    assert {s.rsplit("_", 1)[0] for s in tested} == set(PAPER_TASKS)
    with pytest.raises(ValueError, match="subset of tasks"):
        PreferenceDataModule(ShardFolder(small_world), tasks=["image_generation"], train_tasks=["video_generation"])


def test_single_stream_by_weights_and_unknown_names_rejected(small_world):
    weights = {"image_understanding_point": 0.0}
    datamodule = PreferenceDataModule(ShardFolder(small_world), tasks=["image_understanding"], weights=weights)
    assert {r.stream for r in [r for b in datamodule.val_dataloader() for r in b]} == {"image_understanding_pair"}
    with pytest.raises(ValueError, match="unknown tasks"):
        PreferenceDataModule(ShardFolder(small_world), tasks=["image_painting"])
    with pytest.raises(ValueError, match="unknown streams"):
        PreferenceDataModule(ShardFolder(small_world), weights={"image_pair": 1.0})


def test_missing_stream_is_a_clear_error(tmp_path):
    with ShardSetWriter(tmp_path / "val") as writer:
        writer.write(make_record(WorldConfig(), "val", "image_generation", "pair", 0))
    datamodule = PreferenceDataModule(ShardFolder(tmp_path), tasks=["image_generation"])
    with pytest.raises(FileNotFoundError, match=r"no shards for streams \['image_generation_point'\]"):
        datamodule.val_dataloader()


def test_urls_source_expands_brace_patterns(small_world):
    pattern = str(small_world / "val" / "image_generation_pair-{000000..000001}.tar")
    source = ShardURLs({"val": {"image_generation_pair": pattern}})
    datamodule = PreferenceDataModule(source, tasks=["image_generation"], modes=["pair"])
    assert len(_ids(datamodule.val_dataloader())) == 12


def test_synthetic_source_generates_once_and_reuses(tmp_path):
    source = SyntheticWorld(tmp_path, seed=5, records_per_stream={"train": 4, "val": 2, "test": 2}, workers=1)
    source.prepare()
    stamp = (source.folder / "config.json").stat().st_mtime_ns
    source.prepare()
    assert (source.folder / "config.json").stat().st_mtime_ns == stamp
    assert len(source.streams("train")) == 8


def _torchrun(
    root: Path, out: Path, workers: int, tasks: str = ",".join(PAPER_TASKS), modes: str = "pair,point"
) -> Counter:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        str(WORKER),
        str(root),
        "val",
        str(out),
        str(workers),
        tasks,
        modes,
    ]
    subprocess.run(command, check=True, env=env, timeout=120, capture_output=True)
    seen = Counter()
    for rank in (0, 1):
        seen.update(json.loads((out / f"rank{rank}.json").read_text()))
    return seen


def test_ddp_two_ranks_see_each_record_exactly_once_with_enough_shards(small_world, tmp_path):
    # small world: 12 val records per stream in 2 shards each -> ranks read disjoint shards
    seen = _torchrun(small_world, tmp_path / "out", workers=2)
    assert len(seen) == 96 and set(seen.values()) == {1}


def test_ddp_with_fewer_shards_than_ranks_splits_by_sample(tmp_path):
    # one shard per stream and 2 ranks: both ranks read the shard, each keeps every 2nd record
    records = [
        make_record(WorldConfig(), "val", t, "point", i)
        for t in ("image_generation", "video_understanding")
        for i in range(9)
    ]
    with ShardSetWriter(tmp_path / "set" / "val", max_count=100) as writer:
        writer.write_all(records)
    seen = _torchrun(
        tmp_path / "set",
        tmp_path / "out",
        workers=1,
        tasks="image_generation,video_understanding",
        modes="point",
    )
    assert sorted(seen) == sorted(r.id for r in records) and set(seen.values()) == {1}
