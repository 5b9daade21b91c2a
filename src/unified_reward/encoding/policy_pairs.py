"""Preference pairs (understanding tasks) -> model inputs for a VLM policy, in one of two layouts.

`shared` (ours, the default): one row per pair, `prompt | chosen | rejected`. The media and the prompt are
encoded ONCE per pair; the rejected tokens attend to the prompt but not to the chosen answer (a 4-D mask
built by `shared_prompt_mask`) and take the positions they would have right after the prompt. TRL instead
runs the prompt, with all its image or video tokens, once for each answer.

`separate` (TRL's layout): the chosen rows `prompt | chosen`, then the rejected rows `prompt | rejected`,
a plain padding mask, the media once per row. For attention kernels that take no custom mask
(flash-attention) and as the reference the shared layout is tested against.

Both give, per pair, the completion tokens to score and where their logits come from:
`targets`, `target_mask`, `target_rows` (B, 2) and `target_positions` (B, 2, A) with index 0 = chosen,
1 = rejected. Ties, point records and generation tasks are skipped and counted (`batch["skipped"]`);
`batch["questions"]` keeps every understanding record of the batch (ties and points too), the questions
a policy is evaluated on.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import torch

from unified_reward.data.schema import PreferenceRecord
from unified_reward.data.tasks import judges_media
from unified_reward.encoding.chat import IGNORE_INDEX, EncodedChat, TooLongError, encode_chat, pad_batch
from unified_reward.models.processor import VLMProcessor
from unified_reward.prompts.templates import render_policy_prompt

LAYOUTS = ("shared", "separate")
PROMPT, CHOSEN, REJECTED, PADDING = 0, 1, 2, -1


def encode_policy_prompt(processor: VLMProcessor, record: PreferenceRecord) -> EncodedChat:
    """The policy's prompt (media + question) as token ids, with the generation prompt appended."""
    return encode_chat(processor, render_policy_prompt(record.task, record.prompt, record.context), None)


def answer_ids(processor: VLMProcessor, answer: str) -> list[int]:
    tokenizer = processor.tokenizer
    return tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]


class PolicyPairCollator:
    def __init__(
        self,
        processor: VLMProcessor,
        *,
        layout: str = "shared",
        max_length: int = 4096,
        strict: bool = False,
        pack_tokens: int | None = None,
    ):
        """`pack_tokens` (shared layout): several pairs share a row of at most that many tokens, each pair blind to
        the others (`batch["pair_ids"]`, `batch["pair_spans"]`); None: one pair per row."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if pack_tokens is not None and layout != "shared":
            raise ValueError("pack_tokens packs pairs in the shared layout; layout=separate cannot be packed")
        self.processor, self.layout, self.max_length, self.strict = processor, layout, max_length, strict
        self.pack_tokens = pack_tokens
        self.skipped: Counter[str] = Counter()

    def _skip_reason(self, record: PreferenceRecord) -> str | None:
        if judges_media(record.task):
            return "generation_task"
        if record.mode != "pair":
            return "not_a_pair"
        if record.label == "tie":
            return "tie"
        return None

    def __call__(self, records: list[PreferenceRecord]) -> dict[str, Any] | None:
        kept, prompts, answers, skipped = [], [], [], Counter()
        for record in records:
            reason = self._skip_reason(record)
            if reason is None:
                prompt = encode_policy_prompt(self.processor, record)
                pair = (answer_ids(self.processor, record.chosen), answer_ids(self.processor, record.rejected))
                length = len(prompt.input_ids) + (
                    sum(map(len, pair)) if self.layout == "shared" else max(map(len, pair))
                )
                if length <= self.max_length:
                    kept.append(record)
                    prompts.append(prompt)
                    answers.append(pair)
                    continue
                if self.strict:
                    raise TooLongError(f"record {record.id}: {length} tokens > max_length {self.max_length}")
                reason = "too_long"
            skipped[reason] += 1
        self.skipped.update(skipped)
        questions = [r for r in records if not judges_media(r.task)]
        if not kept:
            return {"records": [], "questions": questions, "skipped": dict(skipped)} if questions else None
        batch = self._shared(prompts, answers) if self.layout == "shared" else self._separate(prompts, answers)
        batch["records"] = kept
        batch["questions"] = questions
        batch["skipped"] = dict(skipped)
        return batch

    def _shared(self, prompts: list[EncodedChat], answers: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
        units = [_with_answers(p, chosen + rejected) for p, (chosen, rejected) in zip(prompts, answers, strict=True)]
        if self.pack_tokens is None:
            groups = [[i] for i in range(len(units))]
        else:
            from unified_reward.encoding.packing import pack_rows

            groups = pack_rows([len(u.input_ids) for u in units], self.pack_tokens)
        batch = pad_batch([_concatenated([units[i] for i in group]) for group in groups], self.processor)
        segments = torch.full_like(batch["input_ids"], PADDING)
        pair_ids = torch.full_like(batch["input_ids"], PADDING)
        positions: list[tuple[list[int], list[int]]] = [([], [])] * len(prompts)
        rows: list[tuple[int, int]] = [(0, 0)] * len(prompts)
        spans = []
        for row, group in enumerate(groups):
            start, row_spans = 0, []
            for local, i in enumerate(group):
                p, c, r = len(prompts[i].input_ids), len(answers[i][0]), len(answers[i][1])
                segments[row, start : start + p] = PROMPT
                segments[row, start + p : start + p + c] = CHOSEN
                segments[row, start + p + c : start + p + c + r] = REJECTED
                pair_ids[row, start : start + p + c + r] = local
                # the first answer token of either answer is predicted from the last prompt token
                last = start + p - 1
                positions[i] = (
                    list(range(last, last + c)),
                    [last] + list(range(start + p + c, start + p + c + r - 1)),
                )
                rows[i] = (row, row)
                media = (len(prompts[i].image_grid_thw), len(prompts[i].video_grid_thw))
                row_spans.append((start, p, c, r, *media))
                start += p + c + r
            spans.append(row_spans)
        batch["segments"] = segments
        if self.pack_tokens is not None:
            batch["pair_ids"], batch["pair_spans"] = pair_ids, spans
        batch.update(_targets(answers, positions, rows=rows))
        return batch

    def _separate(self, prompts: list[EncodedChat], answers: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
        rows = []
        for side in (0, 1):
            for prompt, pair in zip(prompts, answers, strict=True):
                rows.append(_with_answers(prompt, pair[side]))
        batch = pad_batch(rows, self.processor)
        n = len(prompts)
        positions = []
        for prompt, (chosen, rejected) in zip(prompts, answers, strict=True):
            p = len(prompt.input_ids)
            positions.append((list(range(p - 1, p + len(chosen) - 1)), list(range(p - 1, p + len(rejected) - 1))))
        batch.update(_targets(answers, positions, rows=[(i, n + i) for i in range(n)]))
        return batch


def encode_answer_groups(
    processor: VLMProcessor, prompts: list[EncodedChat], groups: list[list[list[int]]]
) -> dict[str, Any]:
    """A GRPO batch in the shared layout: one row per prompt, `prompt | answer 1 | ... | answer G` (answers as token
    ids, their end token included where the sampler emitted it), the media and prompt encoded once per group and
    each answer blind to the others (`shared_prompt_mask`), placed right after the prompt. `targets` etc. are
    (prompts, G, A)."""
    units = [_with_answers(p, [t for a in group for t in a]) for p, group in zip(prompts, groups, strict=True)]
    batch = pad_batch(units, processor)
    segments = torch.full_like(batch["input_ids"], PADDING)
    positions, rows = [], []
    for row, (prompt, group) in enumerate(zip(prompts, groups, strict=True)):
        p = len(prompt.input_ids)
        segments[row, :p] = PROMPT
        start, places = p, []
        for k, answer in enumerate(group):
            segments[row, start : start + len(answer)] = k + 1
            places.append([p - 1] + list(range(start, start + len(answer) - 1)))  # the first from the prompt's end
            start += len(answer)
        positions.append(tuple(places))
        rows.append((row,) * len(group))
    batch["segments"] = segments
    batch.update(_targets([tuple(g) for g in groups], positions, rows=rows))
    return batch


def _with_answers(prompt: EncodedChat, answer_tokens: list[int]) -> EncodedChat:
    """The prompt (and its media) followed by answer tokens, labelled on them."""
    return dataclasses.replace(
        prompt,
        input_ids=prompt.input_ids + answer_tokens,
        labels=[IGNORE_INDEX] * len(prompt.input_ids) + answer_tokens,
    )


def _concatenated(units: list[EncodedChat]) -> EncodedChat:
    """Several encoded sequences as one row, their media in order."""
    if len(units) == 1:
        return units[0]
    joined = EncodedChat([], [])
    for unit in units:
        for name in ("input_ids", "labels", "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
            getattr(joined, name).extend(getattr(unit, name))
        joined.image_sizes.extend(unit.image_sizes)
    return joined


def _targets(
    answers: list[tuple[list[int], ...]],
    positions: list[tuple[list[int], ...]],
    rows: list[tuple[int, ...]],
) -> dict[str, torch.Tensor]:
    """Per item, each of its answers' tokens (`targets`, `target_mask`) and where their logits come from
    (`target_rows` (B, answers), `target_positions` (B, answers, A)): a pair's two answers, a GRPO group's G."""
    sides = len(answers[0])
    width = max(len(a) for item in answers for a in item)
    shape = (len(answers), sides, width)
    targets = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    where = torch.zeros(shape, dtype=torch.long)
    mask = torch.zeros(shape, dtype=torch.float32)
    for i, (item, places) in enumerate(zip(answers, positions, strict=True)):
        for side in range(sides):
            n = len(item[side])
            targets[i, side, :n] = torch.tensor(item[side], dtype=torch.long)
            where[i, side, :n] = torch.tensor(places[side], dtype=torch.long)
            mask[i, side, :n] = 1.0
    return {
        "targets": targets,
        "target_mask": mask,
        "target_positions": where,
        "target_rows": torch.tensor(rows, dtype=torch.long),
    }


def shared_prompt_mask(segments: torch.Tensor, pair_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1, L, L) boolean attention mask for the shared layout: causal, no attention to padding, and each answer
    segment (a pair's chosen and rejected, a GRPO group's G answers) blind to the others: it sees the prompt and
    itself; with `pair_ids` (packed rows) each pair sees only itself. Padding queries also see themselves, so no row
    is fully masked (its softmax would be NaN); their outputs are never read."""
    length = segments.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segments.device).tril()
    query, key = segments[:, :, None], segments[:, None, :]
    allowed = causal & (key != PADDING) & ((key == PROMPT) | (key == query))
    if pair_ids is not None:
        allowed &= pair_ids[:, :, None] == pair_ids[:, None, :]
    allowed |= torch.eye(length, dtype=torch.bool, device=segments.device)
    return allowed[:, None]
