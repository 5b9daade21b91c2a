"""Shared-prefix reading: judgments that begin alike (one candidate set's pairs, or its points; a GRPO group) have
their common beginning encoded once, and every continuation reads on from its KV cache.

`shared_prefix` finds what a group of encoded prompts really shares: the same token ids AND the same media tensors
(media tokens are alike for any two images of one size, so tokens alone would lie); it never ends inside a media
span, and leaves every row at least its last prompt token. `read_windows` then runs the prefix once (batch 1),
repeats its cache (`Cache.batch_repeat_interleave`) over each chunk of continuations and reads each row's logits
window. Positions are the model's own: Qwen's 3-D rotary positions from its `get_rope_index` over the whole row,
1-D positions continue from the cache otherwise. Only public transformers API: the forward's `past_key_values`
and the cache object it returns.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from unified_reward.data.schema import VideoClip
from unified_reward.encoding.chat import EncodedChat, image_id, pad_batch, video_id
from unified_reward.encoding.packing import rope_index_owner, span_rope_positions


@dataclass(frozen=True)
class SharedPrefix:
    tokens: int
    images: int  # the first `images` images (and `videos` videos) lie wholly inside the prefix
    videos: int


def media_spans(input_ids: Sequence[int], token_id: int) -> list[tuple[int, int]]:
    """[start, end) of each run of `token_id` (one run per image or video: templates put text between media)."""
    spans, start = [], None
    for position, token in enumerate(input_ids):
        if token == token_id and start is None:
            start = position
        elif token != token_id and start is not None:
            spans.append((start, position))
            start = None
    if start is not None:
        spans.append((start, len(input_ids)))
    return spans


def shared_prefix(encoded: Sequence[EncodedChat], processor, keep: Sequence[int]) -> SharedPrefix:
    """The longest beginning every row shares in tokens and media; `keep[i]`: tokens row i must keep after the
    prefix (at least its last prompt token, whose logits are read)."""
    first = encoded[0].input_ids
    length = min(len(e.input_ids) - k for e, k in zip(encoded, keep, strict=True))
    for e in encoded[1:]:
        length = next((i for i, (a, b) in enumerate(zip(first[:length], e.input_ids, strict=False)) if a != b), length)
    spans = sorted(
        (start, end, pixels, index)
        for pixels, token_id in (("pixel_values", image_id(processor)), ("pixel_values_videos", video_id(processor)))
        for index, (start, end) in enumerate(media_spans(first, token_id))
    )
    for start, end, pixels, index in spans:
        if start >= length:
            break
        reference = getattr(encoded[0], pixels)[index]
        same = all(
            getattr(e, pixels)[index] is reference or torch.equal(getattr(e, pixels)[index], reference) for e in encoded
        )
        if end > length or not same:  # the prefix ends before a media span it cannot hold whole
            length = start
            break
    inside = [pixels for _, end, pixels, _ in spans if end <= length]
    return SharedPrefix(length, inside.count("pixel_values"), inside.count("pixel_values_videos"))


def _part(e: EncodedChat, prefix: SharedPrefix, *, head: bool) -> EncodedChat:
    cut = slice(None, prefix.tokens) if head else slice(prefix.tokens, None)
    images = slice(None, prefix.images) if head else slice(prefix.images, None)
    videos = slice(None, prefix.videos) if head else slice(prefix.videos, None)
    return replace(
        e,
        input_ids=e.input_ids[cut],
        labels=e.labels[cut],
        pixel_values=e.pixel_values[images],
        image_grid_thw=e.image_grid_thw[images],
        image_sizes=e.image_sizes[images],
        pixel_values_videos=e.pixel_values_videos[videos],
        video_grid_thw=e.video_grid_thw[videos],
    )


def _rope_positions(rope: torch.nn.Module, e: EncodedChat, processor) -> torch.Tensor:
    """(3, length): Qwen's rotary positions of one whole row."""
    whole = slice(0, len(e.input_ids))
    images, videos = slice(0, len(e.image_grid_thw)), slice(0, len(e.video_grid_thw))
    return span_rope_positions(rope, pad_batch([e], processor), 0, whole, images, videos)


def _inputs(encoded: list[EncodedChat], processor, device) -> dict[str, torch.Tensor]:
    batch = pad_batch(encoded, processor)
    batch.pop("labels")
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def read_windows(
    model: torch.nn.Module,
    processor,
    encoded: Sequence[EncodedChat],
    prefix: SharedPrefix,
    windows: Sequence[tuple[int, int]],
    *,
    batch_size: int,
) -> list[torch.Tensor]:
    """Each row's logits at positions [start, start + length) (`windows`, all at or after `prefix.tokens`), the
    prefix encoded once."""
    device = next(model.parameters()).device
    rope = rope_index_owner(model)
    head = _inputs([_part(encoded[0], prefix, head=True)], processor, device)
    positions = [_rope_positions(rope, e, processor).to(device) for e in encoded] if rope is not None else None
    if positions is not None:
        head["position_ids"] = positions[0][:, None, : prefix.tokens]
    output = model(**head, use_cache=True)
    # transformers >= 5.2x names the cache `cache` (in and out); earlier releases `past_key_values`
    cache_name = "cache" if "cache" in output else "past_key_values"
    prefix_cache = output[cache_name]
    results: list[torch.Tensor] = []
    for start in range(0, len(encoded), batch_size):
        rows = list(range(start, min(start + batch_size, len(encoded))))
        tail = _inputs([_part(encoded[r], prefix, head=False) for r in rows], processor, device)
        width = tail["input_ids"].shape[1]
        tail["attention_mask"] = torch.cat(
            [tail["attention_mask"].new_ones(len(rows), prefix.tokens), tail["attention_mask"]], dim=1
        )
        if positions is not None:
            tail_positions = torch.zeros((3, len(rows), width), dtype=torch.long, device=device)
            for i, r in enumerate(rows):
                own = positions[r][:, prefix.tokens :]
                tail_positions[:, i, : own.shape[1]] = own
            tail["position_ids"] = tail_positions
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(len(rows))
        logits = model(**tail, **{cache_name: cache}, use_cache=True).logits
        for i, r in enumerate(rows):
            begin, length = windows[r]
            results.append(logits[i, begin - prefix.tokens : begin - prefix.tokens + length])
    return results


def media_digest(media: Any) -> Any:
    """A content key for a query's context (None, text, an image, a video), to group queries that may share it."""
    if media is None or isinstance(media, str):
        return media
    if isinstance(media, Image.Image):
        data, shape = media.tobytes(), (media.mode, media.size)
    elif isinstance(media, VideoClip):
        data, shape = np.ascontiguousarray(media.frames).tobytes(), media.frames.shape
    else:
        return id(media)
    return shape, hashlib.blake2b(data, digest_size=16).hexdigest()
