"""Candidate generation as a Lightning prediction loop: a policy's N candidates per prompt, written as
candidate-set shards (`ResumableShardWriter`), so judging can be re-run without re-sampling.

`AnswerCandidates`: a VLM policy samples N answers (temperature) to each understanding question of the input
records (their question and image or video); each question gives one `CandidateSet` with id
`<record id>-candidates`. An empty sampled answer is stored as the text "(no answer)" (the schema refuses
empty texts; the judge sees that the answer is missing) and counted (`empty_answers`). With an `evaluator`
(the synthetic world's oracle, `(question, media, answer)` -> `.fraction`) every candidate's score goes to
`meta["oracle_scores"]`, so the filter's choices can be checked.

`GeneratedCandidates`: a text-to-image or text-to-video generator samples N candidates per caption of the
input generation records, one seed each (seeded by the record id and the candidate index, so candidate j is
reproducible alone); an `evaluator` (`(caption, uint8 sample)` -> score, such as the world's
`score_generated_sample`) scores each into `meta["oracle_scores"]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import lightning as L
import torch
from torch import nn

from unified_reward.data.media import MediaDecodeError, VideoSampling, decode_media, encode_media
from unified_reward.data.reading import stable_seed
from unified_reward.data.schema import CandidateSet, EncodedMedia, PreferenceRecord
from unified_reward.data.tasks import task_spec
from unified_reward.encoding.policy_pairs import encode_policy_prompt
from unified_reward.filtering.writer import Outcome
from unified_reward.generation.noise import NoiseObjective
from unified_reward.generation.sampling import PixelSampler, to_uint8
from unified_reward.judging.text_generation import generate_texts
from unified_reward.models.conditioning import CaptionEncoder, LatentCodec
from unified_reward.models.processor import VLMProcessor


def check_tasks(tasks: Sequence[str], generator: bool) -> None:
    """A VLM policy answers understanding questions; a generator samples generation captions."""
    wrong = [t for t in tasks if task_spec(t).prompt != ("caption" if generator else "question")]
    if wrong:
        kind = "a generator samples captions" if generator else "a VLM policy answers questions"
        stage = "generator_candidates" if generator else "candidates"
        raise ValueError(f"stage={stage}: {kind}, but data.tasks has {list(wrong)}")


def _not_done(records: list[PreferenceRecord], skip: set[str]) -> list[PreferenceRecord]:
    """The records whose candidate set a previous run has not committed yet."""
    return [r for r in records if f"{r.id}-candidates" not in skip]


class AnswerCandidates(L.LightningModule):
    def __init__(
        self,
        processor: VLMProcessor,
        policy: nn.Module | Callable[..., nn.Module],
        *,
        candidates: int = 10,
        temperature: float = 1.0,
        max_new_tokens: int = 32,
        evaluator: Callable[[str, Any, str], Any] | None = None,
        seed: int = 0,
        tasks: Sequence[str] = (),
        sampling: VideoSampling | None = None,
    ):
        super().__init__()
        check_tasks(tasks, generator=False)
        self.sampling = sampling or VideoSampling(num_frames=8)  # for questions whose media come as stored bytes
        if candidates < 2 or temperature <= 0:
            raise ValueError("sample at least 2 candidates with temperature > 0")
        self.processor = processor
        self.policy = policy if isinstance(policy, nn.Module) else policy(processor=processor, finetune="full")
        self.candidates, self.temperature, self.max_new_tokens = candidates, temperature, max_new_tokens
        self.evaluator, self.seed = evaluator, seed
        self.skip_ids: set[str] = set()

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch

    def _decoded(self, records: list[PreferenceRecord]) -> tuple[list[PreferenceRecord], list[Outcome]]:
        """Records with their media decoded for the policy; a record whose stored media do not decode is skipped
        and counted in its outcome (`skipped/<reason>`)."""
        decoded, skipped = [], []
        for record in records:
            if not isinstance(record.context, EncodedMedia):
                decoded.append(record)
                continue
            try:
                decoded.append(replace(record, context=decode_media(record.context, self.sampling)))
            except MediaDecodeError as error:
                skipped.append(Outcome(f"{record.id}-candidates", None, {"counts": {f"skipped/{error.reason}": 1}}))
        return decoded, skipped

    @torch.no_grad()
    def predict_step(self, batch: list[PreferenceRecord], batch_idx: int) -> list[Outcome]:
        waiting = [r for r in _not_done(batch, self.skip_ids) if task_spec(r.task).prompt == "question"]
        stored = {r.id: r.context for r in waiting}  # what is written is the stored bytes, not a re-encoded copy
        questions, outcomes = self._decoded(waiting)
        if not questions:
            return outcomes
        torch.manual_seed(stable_seed(self.seed, questions[0].id))  # the same on any rank or world size
        texts = generate_texts(
            self.policy,
            self.processor,
            [encode_policy_prompt(self.processor, q) for q in questions],
            self.max_new_tokens,
            batch_size=len(questions),
            num_samples=self.candidates,
            temperature=self.temperature,
        )
        for i, question in enumerate(questions):
            answers = [t.strip() for t in texts[i * self.candidates : (i + 1) * self.candidates]]
            item = f"{question.id}-candidates"
            empty = sum(not a for a in answers)
            answers = [a if a else "(no answer)" for a in answers]  # kept, so every set has N candidates
            meta = {"question": question.id}
            if self.evaluator is not None:
                meta["oracle_scores"] = [self.evaluator(question.prompt, question.context, a).fraction for a in answers]
            candidate_set = CandidateSet(
                id=item,
                task=question.task,
                prompt=question.prompt,
                candidates=tuple(answers),
                source="policy_answers",
                context=encode_media(stored[question.id]),
                meta=meta,
            )
            outcomes.append(Outcome(item, candidate_set, {"counts": {"sets": 1, "empty_answers": empty}}))
        return outcomes


class GeneratedCandidates(L.LightningModule):
    def __init__(
        self,
        denoiser: nn.Module | Callable[..., nn.Module],
        caption_encoder: CaptionEncoder,
        objective: NoiseObjective,
        *,
        sample_size: int,
        num_frames: int | None = None,
        latent_codec: LatentCodec | None = None,
        candidates: int = 10,
        sample_steps: int = 25,
        guidance_scale: float = 1.0,
        evaluator: Callable[[str, Any], float] | None = None,
        tasks: Sequence[str] = (),
    ):
        super().__init__()
        check_tasks(tasks, generator=True)
        if candidates < 2:
            raise ValueError("sample at least 2 candidates per caption")
        self.denoiser = denoiser if isinstance(denoiser, nn.Module) else denoiser(finetune="full")
        self.caption_encoder, self.latent_codec = caption_encoder, latent_codec  # registered: they follow the device
        self.sampler = PixelSampler(
            caption_encoder, objective, sample_size, num_frames, sample_steps, guidance_scale, latent_codec
        )
        self.candidates, self.evaluator = candidates, evaluator
        self.skip_ids: set[str] = set()

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch

    @torch.no_grad()
    def predict_step(self, batch: list[PreferenceRecord], batch_idx: int) -> list[Outcome]:
        prompts = [r for r in _not_done(batch, self.skip_ids) if task_spec(r.task).prompt == "caption"]
        if not prompts:
            return []
        captions = [r.prompt for r in prompts for _ in range(self.candidates)]
        seeds = [stable_seed(r.id, j) for r in prompts for j in range(self.candidates)]
        pixels = to_uint8(self.sampler(self.denoiser, captions, seeds))
        outcomes = []
        for i, prompt in enumerate(prompts):
            block = pixels[i * self.candidates : (i + 1) * self.candidates]
            meta = {"caption_of": prompt.id, "seeds": seeds[i * self.candidates : (i + 1) * self.candidates]}
            if self.evaluator is not None:
                meta["oracle_scores"] = [self.evaluator(prompt.prompt, p) for p in block]
            item = f"{prompt.id}-candidates"
            candidate_set = CandidateSet(
                id=item,
                task=prompt.task,
                prompt=prompt.prompt,
                # stored exactly as sampled: the oracle scored these pixels, and H.264 at crf 18 changed its
                # reading of 99 of 192 tiny-generator videos (blurry samples sit near its thresholds)
                candidates=tuple(encode_media(p, lossless_video=True) for p in block),
                source="generator_samples",
                meta=meta,
            )
            outcomes.append(Outcome(item, candidate_set, {"counts": {"sets": 1}}))
        return outcomes
