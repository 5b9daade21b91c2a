"""Preference pairs from a generator's own samples, ranked by the synthetic world's oracle.

The stand-in for the judge until the filter runs: for each caption of the synthetic world's
generation records (`records_per_stream[split]` captions), `candidates` samples with distinct
seeds; chosen = the best oracle score, rejected = the worst; a caption whose candidates all score
the same gives no pair and is counted (`summary.json` -> `dropped_equal`). Written as pair
shards, the form the DPO modules read, and cached by a fingerprint of the generator's weights and
the settings.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from unified_reward.data.media import encode_media
from unified_reward.data.schema import PreferenceRecord
from unified_reward.data.shards import ShardSetWriter, build_splits_once
from unified_reward.data.sources import ShardFolder
from unified_reward.fingerprint import weights_fingerprint
from unified_reward.generation.noise import NoiseObjective
from unified_reward.generation.sampling import PixelSampler, to_uint8
from unified_reward.models.conditioning import CaptionEncoder, LatentCodec
from unified_reward.synthetic.oracle import score_generated_sample
from unified_reward.synthetic.world import SPLITS, WorldConfig, plan_record

log = logging.getLogger(__name__)


class OracleRankedPairs:
    """A shard source (`prepare` / `streams`) of on-policy pairs for one generation task."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        denoiser: nn.Module | Callable[..., nn.Module],
        caption_encoder: CaptionEncoder,
        objective: NoiseObjective,
        *,
        task: str = "image_generation",
        sample_size: int = 32,
        num_frames: int | None = None,
        records_per_stream: dict[str, int] | None = None,
        candidates: int = 4,
        sample_steps: int = 20,
        guidance_scale: float = 1.0,
        latent_codec: LatentCodec | None = None,
        world_seed: int = 0,
        shard_size: int = 500,
    ):
        if candidates < 2:
            raise ValueError(f"a pair needs at least 2 candidates per caption, got {candidates}")
        self.cache_dir = Path(cache_dir)
        self._denoiser = denoiser
        self.sampler = PixelSampler(
            caption_encoder, objective, sample_size, num_frames, sample_steps, guidance_scale, latent_codec
        )
        self.task, self.candidates = task, candidates
        self.records_per_stream = dict(records_per_stream or {"train": 1000, "val": 50, "test": 200})
        self.world = WorldConfig(seed=world_seed)
        self.shard_size = shard_size
        self._folder: Path | None = None

    def _generator(self) -> nn.Module:
        if isinstance(self._denoiser, nn.Module):
            return self._denoiser
        return self._denoiser(finetune="full")  # sampling needs no adapter

    def _fingerprint(self, denoiser: nn.Module) -> str:
        sampler = self.sampler
        settings = {
            "task": self.task,
            "sample_size": sampler.size,
            "num_frames": sampler.num_frames,
            "records_per_stream": self.records_per_stream,
            "candidates": self.candidates,
            "sample_steps": sampler.steps,
            "guidance": sampler.guidance_scale,
            "world_seed": self.world.seed,
            "prediction": sampler.objective.prediction,
        }
        return weights_fingerprint(denoiser, settings)

    @property
    def folder(self) -> Path:
        if self._folder is None:
            raise RuntimeError("call prepare() first")
        return self._folder

    def prepare(self) -> None:
        if self._folder is not None:  # fit and test both prepare: the pairs of this process stay the same
            return
        denoiser = self._generator()
        folder = self.cache_dir / f"pairs-{self.task}-{self._fingerprint(denoiser)}"
        self._folder = folder
        build_splits_once(folder, SPLITS, functools.partial(self._write_split, denoiser), "oracle-ranked pairs")

    def _write_split(self, denoiser: nn.Module, split: str, folder: Path) -> dict:
        count = self.records_per_stream.get(split, 0)
        log.info("sampling %d candidates for each of %d %s captions", self.candidates, count, split)
        captions = [plan_record(self.world, split, self.task, "pair", i).prompt for i in range(count)]
        repeated = [c for c in captions for _ in range(self.candidates)]
        seeds = [int(hashlib.sha1(f"{split}-{i}".encode()).hexdigest()[:8], 16) for i in range(len(repeated))]
        pixels = to_uint8(self.sampler(denoiser, repeated, seeds))
        scores = np.array([score_generated_sample(c, p) for c, p in zip(repeated, pixels, strict=True)])
        written = dropped = 0
        with ShardSetWriter(folder, max_count=self.shard_size) as writer:
            for i, caption in enumerate(captions):
                block = scores[i * self.candidates : (i + 1) * self.candidates]
                best, worst = int(block.argmax()), int(block.argmin())
                if block[best] == block[worst]:
                    dropped += 1
                    continue
                first, last = i * self.candidates + best, i * self.candidates + worst
                writer.write(
                    PreferenceRecord.preference_pair(
                        id=f"oracle-{split}-{self.task}-{i:06d}",
                        task=self.task,
                        prompt=caption,
                        chosen=encode_media(pixels[first]),
                        rejected=encode_media(pixels[last]),
                        source="oracle_ranked_samples",
                        meta={"scores": block.tolist(), "chosen_seed": seeds[first], "rejected_seed": seeds[last]},
                    )
                )
                written += 1
        return {
            "captions": count,
            "pairs": written,
            "dropped_equal": dropped,
            "mean_candidate_score": float(scores.mean()) if len(scores) else float("nan"),
        }

    def streams(self, split: str) -> dict[str, list[str]]:
        return ShardFolder(self.folder).streams(split)
