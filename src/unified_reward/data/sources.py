"""Where a datamodule's shards come from: a local shard-set folder or explicit URLs (the synthetic world and its
derived sets are sources of `unified_reward.synthetic`, with the same two methods).

A source answers `streams(split) -> {stream name: [shard urls]}`; `prepare()` does one-time work
(such as generating a synthetic set) and runs once per node before training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import braceexpand

from unified_reward.data.shards import MANIFEST, read_manifest
from unified_reward.errors import UserError


class ShardSource(Protocol):
    def prepare(self) -> None: ...

    def streams(self, split: str) -> dict[str, list[str]]: ...


SHARD_LAYOUT = (
    "a shard folder holds train/, val/ and test/, each with a manifest.json and its <task>_<mode>-NNNNNN.tar shards, "
    "as ShardSetWriter or `python -m unified_reward.official.convert` write them"
)


class ShardFolder:
    """A local folder `root/<split>/` written by `ShardSetWriter` (streams listed in its manifest)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()

    def prepare(self) -> None:
        if not self.root.is_dir():
            raise UserError(f"shard folder {self.root} does not exist ({SHARD_LAYOUT})")

    def streams(self, split: str) -> dict[str, list[str]]:
        folder = self.root / split
        if not (folder / MANIFEST).is_file():
            found = sorted(p.name for p in self.root.iterdir())[:10] if self.root.is_dir() else "no such folder"
            raise UserError(f"shard folder {self.root} has no {split}/{MANIFEST} (it holds: {found}); {SHARD_LAYOUT}")
        manifest = read_manifest(folder)
        return {name: [str(folder / shard) for shard in entry["shards"]] for name, entry in manifest["streams"].items()}


class ShardURLs:
    """Explicit shard URLs per split and stream, in any form webdataset opens (paths, http(s)://,
    `pipe:` commands), with brace patterns such as `shards/image_generation_pair-{000000..000099}.tar`."""

    def __init__(self, urls: dict[str, dict[str, str | list[str]]]):
        self.urls = urls

    def prepare(self) -> None:
        pass

    def streams(self, split: str) -> dict[str, list[str]]:
        if split not in self.urls:
            raise KeyError(f"no shard URLs configured for split {split!r} (have {sorted(self.urls)})")
        expanded = {}
        for name, patterns in self.urls[split].items():
            patterns = [patterns] if isinstance(patterns, str) else list(patterns)
            expanded[name] = [url for pattern in patterns for url in braceexpand.braceexpand(pattern)]
        return expanded
