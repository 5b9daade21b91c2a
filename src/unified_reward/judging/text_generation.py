"""Batched text generation for VLMs (greedy or sampled, with the KV cache): judge rationales, policy answers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unified_reward.encoding.chat import pad_batch
from unified_reward.models.builders import VLMProcessor
from unified_reward.prompts.parsing import verdict_start
from unified_reward.strategies import is_sharded


def rationale_length(tokenizer, ids: Sequence[int]) -> int | None:
    """How many of the generated `ids` come before the verdict (`parsing.verdict_start` on their text); None when
    the text has no verdict line (the rationale did not finish)."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    start = verdict_start(text)
    if start is None:
        return None
    for count in range(len(ids) + 1):
        if len(tokenizer.decode(ids[:count], skip_special_tokens=True)) >= start:
            return count
    return None


@torch.no_grad()
def generate_token_ids(
    model: nn.Module,
    processor: VLMProcessor,
    encoded: Sequence,
    max_new_tokens: int,
    *,
    batch_size: int = 8,
    num_samples: int = 1,
    temperature: float = 0.0,
    suppress_tokens: Sequence[int] | None = None,
) -> list[list[int]]:
    """Continuations of encoded prompts (`encoding.chat.encode_chat` with no answer), as token ids up to (not
    including) the end token: greedy with `temperature=0`, else `num_samples` sampled answers per prompt
    (prompt-major order). `suppress_tokens` are never generated (a policy's answer must not hold media tokens)."""
    tokenizer = processor.tokenizer
    device = next(model.parameters()).device
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}
    if suppress_tokens:
        sampling["suppress_tokens"] = list(suppress_tokens)
    continuations: list[list[int]] = []
    synced = torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1 and is_sharded(model)
    for start in range(0, len(encoded), batch_size):
        batch = pad_batch(list(encoded[start : start + batch_size]), processor, left=True)
        batch.pop("labels")
        batch = {k: v.to(device) for k, v in batch.items()}
        length = batch["input_ids"].shape[1]
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            num_return_sequences=num_samples,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            # sharded (FSDP) models: every rank keeps stepping until all are done, so collectives match
            synced_gpus=synced,
            **sampling,
        )
        for row in output[:, length:].tolist():
            end = row.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in row else len(row)
            continuations.append(row[:end])
    return continuations


def generate_texts(
    model: nn.Module, processor: VLMProcessor, encoded: Sequence, max_new_tokens: int, **options
) -> list[str]:
    """`generate_token_ids` (same options: batch_size, num_samples, temperature), decoded."""
    ids = generate_token_ids(model, processor, encoded, max_new_tokens, **options)
    return processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
