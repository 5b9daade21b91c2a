from pathlib import Path

import pytest

from unified_reward.data.synthetic.world import WorldConfig, ensure_world

SMALL_WORLD = WorldConfig(seed=7, records_per_stream={"train": 24, "val": 12, "test": 12}, shard_size=6)


@pytest.fixture(scope="session")
def small_world() -> Path:
    """A small synthetic world (all 8 streams), generated once per test session."""
    import tempfile

    cache = Path(tempfile.mkdtemp(prefix="ur-world-"))
    return ensure_world(SMALL_WORLD, cache, workers=2)
