"""Positions and attention of the shared pair layout (`prompt | chosen | rejected` in one row, see
`policy_pairs.shared_prompt_mask`): the rejected answer sits, for the model, right after the prompt."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unified_reward.encoding.packing import span_rope_positions
from unified_reward.encoding.policy_pairs import shared_prompt_mask

MEDIA_INPUTS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "image_sizes")


def shared_prompt_positions(rope: nn.Module | None, batch: dict[str, Any]) -> torch.Tensor:
    """Position ids for the shared layout: the model's own positions for the prompt and its first answer, and every
    later answer (the rejected one of a pair, a GRPO group's others) placed right after the prompt, where it would
    be in a row of its own. `rope`: the model's `rope_index_owner`."""
    segments = batch["segments"]
    present = (segments >= 0).long()
    if rope is not None:  # Qwen2-VL / Qwen2.5-VL: 3-D (temporal, height, width) positions over the media
        positions, _ = rope.get_rope_index(
            input_ids=batch["input_ids"],
            mm_token_type_ids=batch["mm_token_type_ids"],
            image_grid_thw=batch.get("image_grid_thw"),
            video_grid_thw=batch.get("video_grid_thw"),
            attention_mask=present,
        )
    else:
        positions = (present.cumsum(-1) - 1).clamp(min=0)
    # each answer segment (1, 2, ...) moves back by the lengths of the answers before it
    answers = int(segments.max().item()) if segments.numel() else 0
    lengths = torch.stack([(segments == s).sum(-1) for s in range(1, answers + 1)], -1) if answers else None
    if lengths is None:
        return positions
    before = torch.cat([torch.zeros_like(lengths[:, :1]), lengths.cumsum(-1)], -1)  # (B, answers + 1)
    return positions - before.gather(1, (segments.clamp(min=1) - 1).long())


def packed_pair_positions(rope: nn.Module | None, batch: dict[str, Any]) -> torch.Tensor:
    """`shared_prompt_positions` for rows that hold several pairs (`pack_tokens`): each pair's positions as if it
    had the row to itself, from `batch["pair_spans"]` (start, prompt, chosen, rejected, images, videos)."""
    ids = batch["input_ids"]
    shape = (3, *ids.shape) if rope is not None else ids.shape
    positions = torch.zeros(shape, dtype=torch.long, device=ids.device)
    images = videos = 0
    for row, spans in enumerate(batch["pair_spans"]):
        for start, p, c, r, n_images, n_videos in spans:
            span = slice(start, start + p + c + r)
            if rope is not None:
                own = span_rope_positions(
                    rope, batch, row, span, slice(images, images + n_images), slice(videos, videos + n_videos)
                )
            else:
                own = torch.arange(p + c + r, device=ids.device)
            own = own.clone()
            own[..., p + c :] -= c  # the rejected answer right after the prompt
            positions[..., row, span] = own
            images, videos = images + n_images, videos + n_videos
    return positions


def attention_mask_for(model: nn.Module, allowed: torch.Tensor) -> torch.Tensor:
    """A boolean (B, 1, L, L) mask in the form the model's attention implementation takes."""
    implementation = getattr(model.config, "_attn_implementation", "sdpa")
    if implementation == "sdpa":
        return allowed
    if implementation == "eager":
        dtype = next(model.parameters()).dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min
        )
    raise ValueError(
        f"layout=shared needs a custom attention mask, which {implementation!r} does not take; "
        "use attn_implementation=sdpa or eager, or layout=separate"
    )


def answer_logit_inputs(model: nn.Module, batch: dict[str, Any], rope: nn.Module | None, *, shared: bool = True):
    """What a forward that scores a batch's answers needs, built once per batch (a policy and its reference share
    it): the model's inputs (the shared layout's mask and positions, or the plain padding mask), the sorted
    positions whose logits are kept (`logits_to_keep`), and the (rows, index) that gather each answer token's logits
    from them: `logits[rows, index]` is (items, answers, tokens, vocab). `rope`: the model's `rope_index_owner`."""
    inputs = {k: batch[k] for k in ("input_ids", "mm_token_type_ids", *MEDIA_INPUTS) if k in batch}
    if shared:
        allowed = shared_prompt_mask(batch["segments"], batch.get("pair_ids"))
        inputs["attention_mask"] = attention_mask_for(model, allowed)
        place = packed_pair_positions if "pair_spans" in batch else shared_prompt_positions
        inputs["position_ids"] = place(rope, batch)
    else:
        inputs["attention_mask"] = batch["attention_mask"]
    mask = batch["target_mask"]
    keep = torch.unique(batch["target_positions"][mask > 0])  # sorted: the rows' logits we need
    index = torch.searchsorted(keep, batch["target_positions"]).clamp(max=len(keep) - 1)
    rows = batch["target_rows"][:, :, None].expand_as(index)
    return inputs, keep, rows, index
