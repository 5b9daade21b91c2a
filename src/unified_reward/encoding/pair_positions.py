"""Positions and attention of the shared pair layout (`prompt | chosen | rejected` in one row, see
`policy_pairs.shared_prompt_mask`): the rejected answer sits, for the model, right after the prompt."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unified_reward.encoding.packing import span_rope_positions
from unified_reward.encoding.policy_pairs import CHOSEN, REJECTED


def shared_prompt_positions(rope: nn.Module | None, batch: dict[str, Any]) -> torch.Tensor:
    """Position ids for the shared layout: the model's own positions for `prompt | chosen`, and the rejected
    answer placed right after the prompt (where it would be in a row of its own). `rope`: the model's
    `rope_index_owner`."""
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
    chosen_lengths = (segments == CHOSEN).sum(-1, keepdim=True)
    return positions - (segments == REJECTED).long() * chosen_lengths


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
