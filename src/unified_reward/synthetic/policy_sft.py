"""SFT data for policies with a deficit that preference can fix: hallucinating answers (understanding) and
captions the media do not match (generation), each at a controlled rate.

For each understanding question of the world, the SFT target is the true answer (every asked attribute stated as
the pixels show it) or, for a `hallucination` share of the questions, an answer that states one asked attribute
with a wrong value drawn uniformly. A policy SFT'd on it can see what is there but has learned to state something
else part of the time, as real VLMs do; its sampled answers then vary in quality, and a judge that tells right
from wrong has something to teach. A pair shard source (chosen = the target, rejected = an answer with every asked
attribute wrong), the form `VLMDPOModule` with `module/loss=sft` trains on; `meta["hallucinated"]` says which
targets lie.

`MismatchedMedia` is the generators' twin: each world caption with the render of what it says or, for a `mismatch`
share, of a scene with one caption attribute changed. A generator trained on it (the plain diffusion loss on the
chosen sample) has learned to ignore part of its captions; `meta["mismatched"]` says which pairs lie.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from unified_reward.data.media import encode_image, encode_video
from unified_reward.data.schema import PreferenceRecord
from unified_reward.data.shards import ShardSetWriter, build_splits_once
from unified_reward.data.sources import ShardFolder
from unified_reward.synthetic.render import render_image, render_video
from unified_reward.synthetic.scene import Scene
from unified_reward.synthetic.world import SPLITS, WorldConfig, answer_text, make_record, plan_record

SOURCE = "synthetic_policy_sft"


def sft_answers(scene: Scene, asked: tuple[str, ...], hallucinate: bool, rng: np.random.Generator):
    """(target, rejected): the true answer or one with one asked attribute wrong; and one with all of them wrong."""
    stated = scene.with_changes((asked[int(rng.integers(len(asked)))],), rng) if hallucinate else scene
    return answer_text(stated, asked), answer_text(scene.with_changes(asked, rng), asked)


class _DeficitSource:
    """A shard source (`prepare` / `streams`) of SFT pairs for one task of the world, a `share` of them wrong. A
    subclass says what one pair is (`_pair`); whether a pair is wrong is drawn here, before the pair's own draws."""

    kind = ""  # what the wrong share is, in the cache folder's settings and in the log
    flag = ""  # the meta key (and summary count) of a wrong pair
    unit = ""  # what the split's records are, in its summary
    salt = 0  # the split generator's last seed part, different per source

    def __init__(self, cache_dir, task, share, records_per_stream, world_seed, seed, shard_size):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{self.kind} is a share of the SFT targets, in [0, 1]; got {share}")
        self.cache_dir = Path(cache_dir)
        self.task, self.share, self.seed, self.shard_size = task, share, seed, shard_size
        self.records_per_stream = dict(records_per_stream or {"train": 1500, "val": 100, "test": 200})
        self.world = WorldConfig(seed=world_seed)

    @property
    def folder(self) -> Path:
        settings = {
            "task": self.task,
            self.kind: self.share,
            "records": self.records_per_stream,
            "world": self.world.fingerprint(),
            "seed": self.seed,
        }
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        return self.cache_dir / f"sft-{self.task}-{digest}"

    def prepare(self) -> None:
        build_splits_once(self.folder, SPLITS, functools.partial(self._write_split), f"SFT pairs ({self.kind})")

    def streams(self, split: str) -> dict[str, list[str]]:
        return ShardFolder(self.folder).streams(split)

    def _pair(self, split: str, index: int, wrong: bool, rng: np.random.Generator) -> dict:
        """The record fields of pair `index` (prompt, candidates, optional context, meta)."""
        raise NotImplementedError

    def _write_split(self, split: str, folder: Path) -> dict:
        rng = np.random.default_rng([self.seed, SPLITS.index(split), self.salt])
        count = self.records_per_stream.get(split, 0)
        wrong_count = 0
        with ShardSetWriter(folder, max_count=self.shard_size) as writer:
            for i in range(count):
                wrong = bool(rng.random() < self.share)
                wrong_count += wrong
                fields = self._pair(split, i, wrong, rng)
                fields["meta"][self.flag] = wrong
                writer.write(
                    PreferenceRecord(
                        id=f"{SOURCE}-{split}-{self.task}-{i:06d}",
                        task=self.task,
                        mode="pair",
                        label="first",
                        source=SOURCE,
                        **fields,
                    )
                )
        return {self.unit: count, self.flag: wrong_count}


class HallucinatingAnswers(_DeficitSource):
    """SFT pairs for one understanding task: the true answer, or for a `hallucination` share one wrong attribute."""

    kind, flag, unit, salt = "hallucination", "hallucinated", "questions", 7

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        *,
        task: str = "image_understanding",
        hallucination: float = 0.3,
        records_per_stream: dict[str, int] | None = None,
        world_seed: int = 0,
        seed: int = 0,
        shard_size: int = 500,
    ):
        super().__init__(cache_dir, task, hallucination, records_per_stream, world_seed, seed, shard_size)

    def _pair(self, split: str, index: int, wrong: bool, rng: np.random.Generator) -> dict:
        question = make_record(self.world, split, self.task, "pair", index)
        scene, asked = Scene(**question.meta["scene"]), tuple(question.meta["asked"])
        return {
            "prompt": question.prompt,
            "candidates": sft_answers(scene, asked, wrong, rng),
            "context": question.context,
            "meta": {"scene": question.meta["scene"], "asked": list(asked)},
        }


class MismatchedMedia(_DeficitSource):
    """Pairs for one generation task: chosen = the render of the caption or, for a `mismatch` share, of the scene
    with one caption attribute changed; rejected = a render with every caption attribute changed."""

    kind, flag, unit, salt = "mismatch", "mismatched", "captions", 11

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        *,
        task: str = "image_generation",
        mismatch: float = 0.3,
        records_per_stream: dict[str, int] | None = None,
        world_seed: int = 0,
        seed: int = 0,
        shard_size: int = 500,
    ):
        super().__init__(cache_dir, task, mismatch, records_per_stream, world_seed, seed, shard_size)

    def _render(self, scene: Scene, rng: np.random.Generator):
        size = self.world.image_size
        if scene.kind == "image":
            return encode_image(render_image(scene, rng, size))
        return encode_video(render_video(scene, rng, size, self.world.num_frames), fps=self.world.video_fps)

    def _pair(self, split: str, index: int, wrong: bool, rng: np.random.Generator) -> dict:
        plan = plan_record(self.world, split, self.task, "pair", index)
        scene, attributes = plan.scene, plan.scene.attributes
        shown = scene.with_changes((attributes[int(rng.integers(len(attributes)))],), rng) if wrong else scene
        unlike = scene.with_changes(attributes, rng)
        return {
            "prompt": plan.prompt,
            "candidates": (self._render(shown, rng), self._render(unlike, rng)),
            "meta": {"scene": {k: v for k, v in asdict(scene).items() if v is not None}},
        }
