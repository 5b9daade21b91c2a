import json
import logging
from collections import Counter

import numpy as np
import pytest
import webdataset as wds
from torch.utils.data import DataLoader

from unified_reward.data.reading import (
    DataError,
    MixtureStream,
    ReaderPlace,
    ShardStream,
    SkipCounter,
    plan_reading,
)
from unified_reward.data.shards import encode_record
from unified_reward.synthetic.world import WorldConfig, make_record

CONFIG = WorldConfig(seed=11)


def _good(task, mode, i):
    return encode_record(make_record(CONFIG, "train", task, mode, i))


def _damaged_samples():
    """One sample for every kind of damage, each with the reason it must be counted under."""
    base = _good("image_generation", "pair", 100)
    video = _good("video_generation", "point", 101)

    def variant(sample, key, **changes):
        out = {k: v for k, v in sample.items() if k not in changes.get("drop", ())}
        out["__key__"] = key
        for name, value in changes.items():
            if name != "drop":
                out[name.replace("_", ".")] = value
        return out

    fields = json.loads(base["json"])
    return [
        (variant(base, "bad-image", candidate0_png=base["candidate0.png"][:30]), "corrupt_image"),
        (variant(video, "bad-video", candidate0_mp4=b"\x00garbage" * 64), "corrupt_video"),
        (variant(video, "cut-video", candidate0_mp4=video["candidate0.mp4"][:300]), "corrupt_video"),
        (variant(base, "no-media", drop=("candidate1.png",)), "missing_key"),
        (variant(base, "no-json", drop=("json",)), "missing_key"),
        (variant(base, "bad-json", json=b'{"id": "x", "task": '), "malformed_json"),
        (
            variant(base, "bad-task", json=json.dumps({**fields, "task": "image_painting"}).encode()),
            "unknown_task",
        ),
        (variant(base, "bad-mode", json=json.dumps({**fields, "mode": "listwise"}).encode()), "unknown_mode"),
        (
            variant(
                base,
                "bad-scale",
                json=json.dumps(
                    {
                        **fields,
                        "mode": "point",
                        "candidates": fields["candidates"][:1],
                        "label": {"score": 7, "low": 1, "high": 5},
                    }
                ).encode(),
            ),
            "label_out_of_scale",
        ),
        (variant(base, "bad-label", json=json.dumps({**fields, "label": "1"}).encode()), "invalid_record"),
    ]


@pytest.fixture()
def damaged_set(tmp_path):
    """3 shards mixing good and damaged samples, plus one shard that is not a tar at all."""
    good = [_good(t, m, i) for i in range(6) for t, m in (("image_generation", "pair"), ("video_generation", "point"))]
    damaged = _damaged_samples()
    urls = []
    for shard in range(3):
        path = tmp_path / f"mixed-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as writer:
            for sample in good[shard::3]:
                writer.write(sample)
            for sample, _ in damaged[shard::3]:
                writer.write(sample)
        urls.append(str(path))
    broken = tmp_path / "mixed-000003.tar"
    broken.write_bytes(b"this is not a tar archive" * 40)
    urls.append(str(broken))
    expected = Counter(reason for _, reason in damaged) + Counter({"corrupt_shard": 1})
    return urls, {json.loads(s["json"])["id"] for s in good}, expected


def test_every_good_sample_once_and_every_bad_one_counted(damaged_set, caplog):
    urls, good_ids, expected_counts = damaged_set
    counter = SkipCounter()
    with caplog.at_level(logging.WARNING):
        ids = [r.id for r in ShardStream(urls, name="mixed", counter=counter)]
    assert sorted(ids) == sorted(good_ids)
    assert counter.as_dict() == dict(expected_counts)
    warned_shards = [m for m in caplog.messages if "mixed-00000" in m]
    assert len(warned_shards) == 4  # once per shard that had damage, naming it
    assert any("key bad-image" in m or "key no-media" in m for m in caplog.messages)


def test_strict_mode_raises_naming_shard_key_and_reason(damaged_set):
    urls, _, _ = damaged_set
    with pytest.raises(DataError, match=r"shard .*mixed-000000\.tar, key bad-image: corrupt_image"):
        list(ShardStream(urls, name="mixed", strict=True))


def test_counts_are_shared_by_dataloader_workers(damaged_set):
    urls, good_ids, expected_counts = damaged_set
    counter = SkipCounter()
    stream = ShardStream(urls, name="mixed", counter=counter)
    ids = [r.id for batch in DataLoader(stream, batch_size=3, num_workers=2, collate_fn=list) for r in batch]
    assert sorted(ids) == sorted(good_ids)
    assert counter.as_dict() == dict(expected_counts)


@pytest.mark.parametrize("shards", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("world, workers", [(1, 1), (2, 1), (2, 3), (3, 2)])
def test_read_plans_cover_every_sample_exactly_once(shards, world, workers):
    samples_per_shard = 7
    seen = Counter()
    for rank in range(world):
        for worker in range(workers):
            plan = plan_reading([f"s{i}" for i in range(shards)], ReaderPlace(rank, world, worker, workers))
            stream = [(url, j) for url in plan.urls for j in range(samples_per_shard)]
            seen.update(s for i, s in enumerate(stream) if i % plan.modulus == plan.remainder)
    assert len(seen) == shards * samples_per_shard and set(seen.values()) == {1}


def test_shard_level_split_when_enough_shards():
    plan = plan_reading(["a", "b", "c", "d"], ReaderPlace(rank=1, world_size=2, worker=0, num_workers=1))
    assert plan.urls == ("b", "d") and plan.modulus == 1


def test_repeat_reshuffles_shards_and_buffer_shuffles_deterministically(damaged_set):
    urls, good_ids, _ = damaged_set
    stream = ShardStream(urls[:3], name="x", repeat=True, shuffle_shards=True, shuffle_buffer=4, seed=1)
    first = [r.id for _, r in zip(range(30), stream, strict=False)]
    again = [r.id for _, r in zip(range(30), stream, strict=False)]
    assert first == again
    assert set(first) == good_ids  # 12 good samples, 30 draws: passes repeat


def test_mixture_follows_weights_and_leaves_out_weight_zero(small_world):
    from unified_reward.data.sources import ShardFolder

    streams = ShardFolder(small_world).streams("train")
    built = {n: ShardStream(u, name=n, repeat=True) for n, u in streams.items()}
    weights = {n: 0.0 for n in built} | {"image_generation_pair": 3.0, "video_understanding_point": 1.0}
    drawn = Counter(r.stream for _, r in zip(range(400), MixtureStream(built, weights, seed=0), strict=False))
    assert set(drawn) == {"image_generation_pair", "video_understanding_point"}
    assert 2.3 < drawn["image_generation_pair"] / drawn["video_understanding_point"] < 3.9


def test_finite_mixture_yields_each_record_once(small_world):
    from unified_reward.data.sources import ShardFolder

    streams = ShardFolder(small_world).streams("val")
    built = {n: ShardStream(u, name=n) for n, u in streams.items()}
    ids = [r.id for r in MixtureStream(built, {n: 1.0 for n in built})]
    assert len(ids) == len(set(ids)) == 8 * 12
    assert np.mean([i.startswith("synthetic-val-") for i in ids]) == 1.0


@pytest.mark.parametrize("repeat", [False, True])
def test_a_stream_with_nothing_valid_raises_naming_its_shards_and_reasons(tmp_path, repeat):
    urls = []
    for shard in range(2):
        path = tmp_path / f"bad-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as writer:
            for sample, _ in _damaged_samples()[shard::2]:
                writer.write(sample)
        urls.append(str(path))
    stream = ShardStream(urls, name="train/bad", repeat=repeat)  # repeating: no endless loop of empty passes
    with pytest.raises(DataError, match=r"stream 'train/bad': a whole pass .* no valid sample") as caught:
        list(zip(range(10), stream, strict=False))
    assert "bad-000000.tar" in str(caught.value) and "bad-000001.tar" in str(caught.value)
    assert "corrupt_image x1" in str(caught.value) and "data.tasks" in str(caught.value)


def test_a_reader_whose_share_is_all_bad_ends_it_with_a_warning_the_others_carry_on(tmp_path, caplog):
    bad = tmp_path / "s-000000.tar"
    bad.write_bytes(b"not a tar" * 100)
    good = tmp_path / "s-000001.tar"
    with wds.TarWriter(str(good)) as writer:
        writer.write(_good("image_generation", "pair", 1))
    urls = [str(bad), str(good)]
    with caplog.at_level(logging.WARNING):
        first = list(ShardStream(urls, name="s", repeat=True, place=ReaderPlace(worker=0, num_workers=2)))
    second = list(ShardStream(urls, name="s", place=ReaderPlace(worker=1, num_workers=2)))
    assert first == [] and "its share of stream s gave no valid sample" in caplog.text
    assert len(second) == 1
