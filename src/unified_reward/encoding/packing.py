"""Padding-free packing for the Qwen families: several samples in one row, positions restarting per sample.

A packed batch has no attention mask: transformers builds a block-diagonal causal mask from the text positions
(`position_ids[0]` of a (4, rows, length) tensor: text positions, then Qwen's 3-D rotary positions), so a
sample attends only to itself; the padding at a row's end is a block of its own whose labels are ignored.
Media tensors follow the samples' order in the rows. `packed_position_ids` computes the positions with the
model's own `get_rope_index`, one sample at a time. LLaVA-OneVision has no per-sample positions to restart and
is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from unified_reward.encoding.chat import IGNORE_INDEX, EncodedChat, mm_token_type_ids

if TYPE_CHECKING:
    from unified_reward.models.processor import VLMProcessor


def pack_rows(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Sample indices grouped into rows of at most `max_tokens` (first fit, longest first); a sample longer
    than `max_tokens` gets a row of its own."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
        if row is None:
            rows.append([index])
            room.append(max_tokens - lengths[index])
        else:
            rows[row].append(index)
            room[row] -= lengths[index]
    return rows


def pack_batch(encoded: list[EncodedChat], processor: VLMProcessor, max_tokens: int | None = None) -> dict[str, Any]:
    """Packed tensors: `input_ids`, `labels`, `mm_token_type_ids` (rows, length), the media in row order, and
    `sample_lengths` (per row) and `sample_order` (which encoded sample each packed one is)."""
    if not processor.spec.grid_media:
        raise ValueError(
            "packing needs the Qwen families' per-sample positions; LLaVA-OneVision cannot be packed: "
            "train it padded (module.packing=false)"
        )
    lengths = [len(e.input_ids) for e in encoded]
    rows = pack_rows(lengths, max_tokens or max(lengths))
    width = max(sum(lengths[i] for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), processor.tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            input_ids[r, start : start + lengths[i]] = torch.tensor(encoded[i].input_ids)
            labels[r, start : start + lengths[i]] = torch.tensor(encoded[i].labels)
            start += lengths[i]
    order = [i for row in rows for i in row]
    batch: dict[str, Any] = {
        "input_ids": input_ids,
        "labels": labels,
        "mm_token_type_ids": mm_token_type_ids(input_ids, processor),
        "sample_lengths": [[lengths[i] for i in row] for row in rows],
        "sample_order": order,
    }
    for pixels, grids in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
        media = [p for i in order for p in getattr(encoded[i], pixels)]
        if media:
            batch[pixels] = torch.cat(media)
            batch[grids] = torch.tensor([g for i in order for g in getattr(encoded[i], grids)])
    batch["sample_media"] = [(len(encoded[i].image_grid_thw), len(encoded[i].video_grid_thw)) for i in order]
    return batch


def rope_index_owner(model: torch.nn.Module) -> torch.nn.Module | None:
    """The submodule with Qwen's `get_rope_index` (3-D positions), or None for 1-D-position models."""
    return next((m for m in model.modules() if hasattr(m, "get_rope_index")), None)


def span_rope_positions(
    rope: torch.nn.Module, batch: dict[str, Any], row: int, span: slice, images: slice, videos: slice
):
    """(3, span length): the 3-D rotary positions of the sample at `span` of `row` as if it had the row to itself;
    `images` / `videos` select its grids among the batch's."""
    own, _ = rope.get_rope_index(
        input_ids=batch["input_ids"][row : row + 1, span],
        mm_token_type_ids=batch["mm_token_type_ids"][row : row + 1, span],
        image_grid_thw=batch["image_grid_thw"][images] if images.stop > images.start else None,
        video_grid_thw=batch["video_grid_thw"][videos] if videos.stop > videos.start else None,
    )
    return own[:, 0]


def packed_position_ids(batch: dict[str, Any], rope: torch.nn.Module | None) -> torch.Tensor:
    """(4, rows, length): text positions restarting per sample (and per row-end padding), then the 3-D rotary
    positions of each sample (`span_rope_positions`; `rope`: the model's `rope_index_owner`)."""
    if rope is None:
        raise ValueError("packed batches need a Qwen-family model (get_rope_index): only those can be packed")
    rows, width = batch["input_ids"].shape
    device = batch["input_ids"].device
    positions = torch.zeros((4, rows, width), dtype=torch.long, device=device)
    images = videos = sample = 0
    for r, lengths in enumerate(batch["sample_lengths"]):
        start = 0
        for length in lengths:
            n_images, n_videos = batch["sample_media"][sample]
            span = slice(start, start + length)
            positions[:, r, span] = torch.arange(length, device=device)
            if n_images or n_videos:  # text-only samples keep plain positions in all three dimensions
                own = span_rope_positions(
                    rope, batch, r, span, slice(images, images + n_images), slice(videos, videos + n_videos)
                )
                positions[1:, r, span] = own
            images, videos, sample, start = images + n_images, videos + n_videos, sample + 1, start + length
        if start < width:  # the row's padding: a block of its own
            positions[:, r, start:] = torch.arange(width - start, device=device)
    return positions
