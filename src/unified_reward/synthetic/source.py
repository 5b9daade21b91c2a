"""The synthetic world as a shard source for `PreferenceDataModule` (`data=synthetic`)."""

from __future__ import annotations

import os
from pathlib import Path

from unified_reward.data.sources import ShardFolder
from unified_reward.synthetic.world import WorldConfig, ensure_world


class SyntheticWorld:
    """The synthetic world of `WorldConfig(**world)`, generated into `cache_dir` on first use."""

    def __init__(self, cache_dir: str | os.PathLike, workers: int | None = None, **world):
        # mappings may arrive as OmegaConf containers from Hydra; the fingerprint needs plain dicts
        self.config = WorldConfig(**{k: dict(v) if hasattr(v, "items") else v for k, v in world.items()})
        self.cache_dir = Path(cache_dir)
        self.workers = workers

    @property
    def folder(self) -> Path:
        return self.cache_dir / f"world-{self.config.fingerprint()}"

    def prepare(self) -> None:
        ensure_world(self.config, self.cache_dir, self.workers)

    def streams(self, split: str) -> dict[str, list[str]]:
        return ShardFolder(self.folder).streams(split)
