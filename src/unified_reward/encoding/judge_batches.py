"""Batches of judge records for reward SFT: the task's template around the record's media and texts, and the
judge's answer (rationale, verdict or score) as the target (`chat.encode_chat` does the encoding)."""

from __future__ import annotations

from typing import Any

from unified_reward.data.schema import PreferenceRecord
from unified_reward.encoding.chat import TooLongError, encode_chat, pad_batch
from unified_reward.models.processor import VLMProcessor
from unified_reward.prompts.parsing import parse_pair, parse_score
from unified_reward.prompts.templates import (
    DEFAULT_SCALE,
    JudgeTemplate,
    render_judge_prompt,
    rescale,
    score_answer,
)


class JudgeCollator:
    """Batches judge records: the task's template, the media, and the judge's answer as the SFT target."""

    def __init__(
        self,
        processor: VLMProcessor,
        templates: dict[str, JudgeTemplate],
        *,
        max_length: int = 4096,
        strict: bool = False,
        train_rationale: bool = False,
        packing: bool = False,
        pack_tokens: int | None = None,
    ):
        """`packing`: several samples per row, no padding between them (`encoding.packing`; Qwen families), rows of at
        most `pack_tokens` tokens (None: the batch's longest sample)."""
        self.processor = processor
        self.templates = templates
        self.max_length = max_length
        self.strict = strict
        self.train_rationale = train_rationale
        self.packing = packing
        self.pack_tokens = pack_tokens
        self.skipped_too_long = 0

    def parts(self, record: PreferenceRecord) -> list[dict[str, Any]]:
        return render_judge_prompt(
            self.templates,
            record.task,
            record.mode,
            record.prompt,
            record.context,
            record.candidates,
            record.scale or DEFAULT_SCALE,
        )

    def answer(self, record: PreferenceRecord) -> str:
        template = self.templates[record.stream]
        if record.mode == "pair":
            if record.label not in template.pair_answers:
                raise ValueError(
                    f"record {record.id} is labelled {record.label!r}, but the {record.stream} template has no such "
                    f"answer (it offers {sorted(template.pair_answers)}); add one to the template or leave such "
                    "records out"
                )
            verdict = template.pair_answers[record.label]
        else:  # on the scale the template asks on (the official image-understanding template: 0-100)
            scale = record.scale or DEFAULT_SCALE
            verdict = score_answer(rescale(record.label.score, scale, template.asked_scale(scale)))
        if not (self.train_rationale and record.rationale):
            return verdict
        rationale = record.rationale.strip()
        # an official record's answer is its reasoning with the verdict already in it: train on it as it is
        stated = parse_pair(rationale).valid if record.mode == "pair" else parse_score(rationale, record.scale).valid
        return rationale if stated else f"{rationale}\n{verdict}"

    def __call__(self, records: list[PreferenceRecord]) -> dict[str, Any] | None:
        encoded, kept = [], []
        for record in records:
            try:
                encoded.append(
                    encode_chat(self.processor, self.parts(record), self.answer(record), max_length=self.max_length)
                )
                kept.append(record)
            except TooLongError as error:
                if self.strict:
                    raise TooLongError(f"record {record.id}: {error}") from error
                self.skipped_too_long += 1
        if not encoded:
            return None
        if self.packing:
            from unified_reward.encoding.packing import pack_batch

            batch = pack_batch(encoded, self.processor, self.pack_tokens)
            batch["records"] = [kept[i] for i in batch["sample_order"]]
        else:
            batch = pad_batch(encoded, self.processor)
            batch["records"] = kept
        return batch
