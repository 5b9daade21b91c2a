import hashlib

import pytest

from unified_reward.data.media import VideoSampling
from unified_reward.data.schema import EncodedMedia, PreferenceRecord, RecordError, VideoClip
from unified_reward.data.shards import (
    SampleError,
    ShardSetWriter,
    decode_sample,
    encode_record,
    read_manifest,
    sample_key,
)
from unified_reward.synthetic.world import WorldConfig, make_record

CONFIG = WorldConfig(seed=3)


def test_round_trip_of_every_task_and_mode():
    for task in ("image_generation", "image_understanding", "video_generation", "video_understanding"):
        for mode in ("pair", "point"):
            original = make_record(CONFIG, "train", task, mode, 0)
            encoded_again = decode_sample(encode_record(original), sampling=None)
            assert encoded_again == original
            decoded = decode_sample(encode_record(original), VideoSampling(num_frames=4))
            assert (decoded.id, decoded.label, decoded.prompt, decoded.meta) == (
                original.id,
                original.label,
                original.prompt,
                original.meta,
            )
            media = decoded.candidates if task.endswith("generation") else (decoded.context,)
            for item in media:
                if task.startswith("video"):
                    assert isinstance(item, VideoClip) and item.frames.shape == (4, 64, 64, 3)
                else:
                    assert item.size == (64, 64)


def test_keys_are_tar_safe_and_duplicates_are_refused(tmp_path):
    assert sample_key("hpd/12.v2:a") == "hpd_12_v2_a"
    record = make_record(CONFIG, "train", "image_generation", "pair", 0)
    with ShardSetWriter(tmp_path) as writer:
        writer.write(record)
        with pytest.raises(RecordError, match="duplicate record key"):
            writer.write(record)


def test_writer_limits_shards_and_is_byte_deterministic(tmp_path):
    records = [make_record(CONFIG, "train", "image_understanding", "point", i) for i in range(7)]
    digests = []
    for run in ("a", "b"):
        with ShardSetWriter(tmp_path / run, max_count=3) as writer:
            writer.write_all(records)
        shards = sorted((tmp_path / run).glob("*.tar"))
        assert [p.name for p in shards] == [f"image_understanding_point-00000{i}.tar" for i in range(3)]
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in shards])
    assert digests[0] == digests[1]
    manifest = read_manifest(tmp_path / "a")
    assert manifest["streams"]["image_understanding_point"]["records"] == 7


def test_decoded_media_cannot_be_written():
    record = make_record(CONFIG, "train", "image_generation", "pair", 0)
    decoded = decode_sample(encode_record(record), VideoSampling(num_frames=2))
    with pytest.raises(RecordError, match="only EncodedMedia"):
        encode_record(decoded)


def test_sample_errors_have_stable_reasons():
    sample = encode_record(make_record(CONFIG, "train", "image_generation", "point", 0))
    del sample["candidate0.png"]
    with pytest.raises(SampleError) as error:
        decode_sample(sample, None)
    assert error.value.reason == "missing_key"
    assert isinstance(PreferenceRecord, type) and isinstance(EncodedMedia("image", "png", b"x"), EncodedMedia)
