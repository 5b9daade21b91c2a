from pathlib import Path

import pytest

from unified_reward.synthetic.vocabulary import world_vocabulary
from unified_reward.synthetic.world import WorldConfig, ensure_world

SMALL_WORLD = WorldConfig(seed=7, records_per_stream={"train": 24, "val": 12, "test": 12}, shard_size=6)


@pytest.fixture(scope="session")
def small_world() -> Path:
    """A small synthetic world (all 8 streams), generated once per test session."""
    import tempfile

    cache = Path(tempfile.mkdtemp(prefix="ur-world-"))
    return ensure_world(SMALL_WORLD, cache, workers=2)


@pytest.fixture(scope="session")
def decoded_records():
    """One decoded record of every (task, mode), in TASKS x MODES order."""
    from unified_reward.data.media import VideoSampling
    from unified_reward.data.schema import MODES
    from unified_reward.data.shards import decode_sample, encode_record
    from unified_reward.data.tasks import TASKS
    from unified_reward.synthetic.world import make_record

    sampling = VideoSampling(num_frames=8)
    return [
        decode_sample(encode_record(make_record(WorldConfig(seed=2), "train", t, m, 1)), sampling)
        for t in TASKS
        for m in MODES
    ]


@pytest.fixture(scope="session")
def tiny_qwen():
    """A tiny random Qwen2-VL and its processor (offline tokenizer)."""
    import torch

    from unified_reward.models.builders import build_vlm
    from unified_reward.models.processor import build_processor

    torch.manual_seed(0)
    processor = build_processor("qwen2_vl", min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    return build_vlm("qwen2_vl", processor, tiny={"hidden_size": 64, "num_hidden_layers": 2}).eval(), processor


@pytest.fixture(scope="session")
def understanding_pairs():
    """Three decoded image-question pairs and three video-question pairs (4 frames) of the synthetic world."""
    from unified_reward.data.media import VideoSampling
    from unified_reward.data.shards import decode_sample, encode_record
    from unified_reward.synthetic.world import make_record

    sampling = VideoSampling(num_frames=4)
    return [
        decode_sample(encode_record(make_record(WorldConfig(seed=3), "train", task, "pair", i)), sampling)
        for task in ("image_understanding", "video_understanding")
        for i in range(3)
    ]
