"""Candidate generation as a Lightning prediction loop: a policy's N candidates per prompt, written as
candidate-set shards (`ResumableShardWriter`), so judging can be re-run without re-sampling.

`AnswerCandidates`: a VLM policy samples N answers (temperature) to each understanding question of the input
records (their question and image or video); each question gives one `CandidateSet` with id
`<record id>-candidates`. An empty sampled answer is stored as the text "(no answer)" (the schema refuses
empty texts; the judge sees that the answer is missing) and counted (`empty_answers`). With `oracle=True`
(the synthetic world) every candidate's oracle score goes to `meta["oracle_scores"]`, so the filter's
choices can be checked. Generator candidates (N seeds per caption) are not written yet.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn

from unified_reward.data.media import encode_image, encode_video
from unified_reward.data.policy_pairs import encode_policy_prompt
from unified_reward.data.schema import CandidateSet, PreferenceRecord, is_generation
from unified_reward.filtering.writer import Outcome
from unified_reward.models.builders import VLMProcessor
from unified_reward.scoring import generate_texts


def _unique_prompts(records: list[PreferenceRecord], skip: set[str]) -> list[PreferenceRecord]:
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
        oracle: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        if candidates < 2 or temperature <= 0:
            raise ValueError("sample at least 2 candidates with temperature > 0")
        self.processor = processor
        self.policy = policy if isinstance(policy, nn.Module) else policy(processor=processor, finetune="full")
        self.candidates, self.temperature, self.max_new_tokens = candidates, temperature, max_new_tokens
        self.oracle, self.seed = oracle, seed
        self.skip_ids: set[str] = set()

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch

    @torch.no_grad()
    def predict_step(self, batch: list[PreferenceRecord], batch_idx: int) -> list[Outcome]:
        questions = [r for r in _unique_prompts(batch, self.skip_ids) if not is_generation(r.task)]
        if not questions:
            return []
        torch.manual_seed(self.seed + batch_idx + 1000 * self.global_rank)
        texts = generate_texts(
            self.policy,
            self.processor,
            [encode_policy_prompt(self.processor, q) for q in questions],
            self.max_new_tokens,
            batch_size=len(questions),
            num_samples=self.candidates,
            temperature=self.temperature,
        )
        outcomes = []
        for i, question in enumerate(questions):
            answers = [t.strip() for t in texts[i * self.candidates : (i + 1) * self.candidates]]
            item = f"{question.id}-candidates"
            empty = sum(not a for a in answers)
            answers = [a if a else "(no answer)" for a in answers]  # kept, so every set has N candidates
            meta = {"question": question.id}
            if self.oracle:
                from unified_reward.data.synthetic.oracle import score_answer

                meta["oracle_scores"] = [score_answer(question.prompt, question.context, a).fraction for a in answers]
            candidate_set = CandidateSet(
                id=item,
                task=question.task,
                prompt=question.prompt,
                candidates=tuple(answers),
                source="policy_answers",
                context=_stored(question.context),
                meta=meta,
            )
            outcomes.append(Outcome(item, candidate_set, {"counts": {"sets": 1, "empty_answers": empty}}))
        return outcomes


def _stored(media):
    """Decoded media back to bytes for a shard (images as PNG, videos as MP4 of their frames)."""
    from PIL import Image

    from unified_reward.data.schema import EncodedMedia, VideoClip

    if isinstance(media, EncodedMedia):
        return media
    if isinstance(media, Image.Image):
        return encode_image(media)
    if isinstance(media, VideoClip):
        return encode_video(media.frames)
    raise TypeError(f"cannot store {type(media).__name__} in a candidate set")
