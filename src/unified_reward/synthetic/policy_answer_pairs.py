"""Preference pairs from a VLM policy's own answers, ranked by the synthetic world's oracle.

The stand-in for the judge until the filter runs, the understanding counterpart of `oracle_pairs.py`:
for each question of the world's understanding records (`records_per_stream[split]` questions, with
their image or video), `candidates` answers sampled at `temperature`; chosen = the answer the oracle
scores best, rejected = the worst. A question whose answers all score the same is written as a tie
(counted in `summary.json` -> `tied`): DPO skips and counts it, but it stays among the held-out questions
the policy is evaluated on, so before/after scores cover every question. Written as pair shards (the
form `VLMDPOModule` reads) and cached by a fingerprint of the policy's weights and the settings.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unified_reward.data.media import VideoSampling
from unified_reward.data.schema import PreferenceRecord
from unified_reward.data.shards import ShardSetWriter, build_splits_once, decode_sample, encode_record
from unified_reward.data.sources import ShardFolder
from unified_reward.encoding.policy_pairs import encode_policy_prompt
from unified_reward.fingerprint import weights_fingerprint
from unified_reward.models.processor import VLMProcessor
from unified_reward.synthetic.oracle import score_answer
from unified_reward.synthetic.world import SPLITS, WorldConfig, make_record
from unified_reward.text_generation import generate_texts

log = logging.getLogger(__name__)


class OracleRankedAnswers:
    """A shard source (`prepare` / `streams`) of on-policy answer pairs for one understanding task."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        processor: VLMProcessor,
        policy: nn.Module | Callable[..., nn.Module],
        *,
        task: str = "image_understanding",
        records_per_stream: dict[str, int] | None = None,
        candidates: int = 8,
        temperature: float = 1.0,
        max_new_tokens: int = 24,
        batch_size: int = 32,
        video_frames: int = 8,
        world_seed: int = 0,
        seed: int = 0,
        shard_size: int = 500,
    ):
        if candidates < 2:
            raise ValueError(f"a pair needs at least 2 candidates per question, got {candidates}")
        if temperature <= 0:
            raise ValueError("candidates must be sampled (temperature > 0); greedy answers would all be the same")
        self.cache_dir = Path(cache_dir)
        self.processor, self._policy = processor, policy
        self.task = task
        self.records_per_stream = dict(records_per_stream or {"train": 1000, "val": 50, "test": 200})
        self.candidates, self.temperature, self.max_new_tokens = candidates, temperature, max_new_tokens
        self.batch_size, self.sampling = batch_size, VideoSampling(num_frames=video_frames)
        self.world, self.seed, self.shard_size = WorldConfig(seed=world_seed), seed, shard_size
        self._folder: Path | None = None

    def _model(self) -> nn.Module:
        if isinstance(self._policy, nn.Module):
            return self._policy
        return self._policy(processor=self.processor, finetune="full")  # sampling needs no adapter

    @property
    def folder(self) -> Path:
        if self._folder is None:
            raise RuntimeError("call prepare() first")
        return self._folder

    def prepare(self) -> None:
        if self._folder is not None:  # fit and test both prepare: the pairs of this process stay the same
            return
        policy = self._model().eval()
        settings = {
            k: getattr(self, k)
            for k in ("task", "records_per_stream", "candidates", "temperature", "max_new_tokens", "seed")
        }
        settings |= {"world_seed": self.world.seed, "frames": self.sampling.num_frames}
        folder = self.cache_dir / f"answers-{self.task}-{weights_fingerprint(policy, settings)}"
        self._folder = folder
        build_splits_once(folder, SPLITS, functools.partial(self._write_split, policy), "oracle-ranked answers")

    def _write_split(self, policy: nn.Module, split: str, folder: Path) -> dict:
        count = self.records_per_stream.get(split, 0)
        log.info("sampling %d answers for each of %d %s questions", self.candidates, count, split)
        stored = [make_record(self.world, split, self.task, "pair", i) for i in range(count)]
        questions = [decode_sample(encode_record(r), self.sampling) for r in stored]
        torch.manual_seed(self.seed + SPLITS.index(split))
        answers = generate_texts(
            policy,
            self.processor,
            [encode_policy_prompt(self.processor, q) for q in questions],
            self.max_new_tokens,
            batch_size=self.batch_size,
            num_samples=self.candidates,
            temperature=self.temperature,
        )
        written = tied = dropped = empty = 0
        scores_seen = []
        with ShardSetWriter(folder, max_count=self.shard_size) as writer:
            for i, question in enumerate(questions):
                texts = [a.strip() for a in answers[i * self.candidates : (i + 1) * self.candidates]]
                scores = np.array([score_answer(question.prompt, question.context, t).fraction for t in texts])
                scores_seen.extend(scores.tolist())
                valid = [j for j, t in enumerate(texts) if t]  # an empty answer cannot be a record's candidate
                empty += len(texts) - len(valid)
                if not valid:  # no answer text at all: nothing to write (counted)
                    dropped += 1
                    continue
                best = max(valid, key=lambda j: scores[j])
                worst = min(valid, key=lambda j: scores[j])
                tie = bool(scores[best] == scores[worst])
                tied += tie
                writer.write(
                    PreferenceRecord(
                        id=f"answers-{split}-{self.task}-{i:06d}",
                        task=self.task,
                        mode="pair",
                        prompt=question.prompt,
                        candidates=(texts[best], texts[worst]),
                        label="tie" if tie else "first",
                        context=stored[i].context,
                        source="oracle_ranked_answers",
                        meta={"scores": scores.tolist(), "answers": texts, "scene": question.meta.get("scene")},
                    )
                )
                written += int(not tie)
        return {
            "questions": count,
            "pairs": written,
            "tied": tied,
            "dropped_no_answer": dropped,
            "empty_answers": empty,
            "mean_candidate_score": float(np.mean(scores_seen)) if scores_seen else float("nan"),
        }

    def streams(self, split: str) -> dict[str, list[str]]:
        return ShardFolder(self.folder).streams(split)
