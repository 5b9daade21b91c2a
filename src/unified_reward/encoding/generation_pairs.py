"""Batches of generation pairs for Diffusion-DPO: caption, chosen and rejected image or video as
pixel tensors in [-1, 1], (B, 3, H, W) or (B, 3, F, H, W).

Records that are not strict preferences (ties, point records) carry no pair and are skipped and
counted, never silently turned into one: each batch carries its own counts (`batch["skipped"]`,
which survive dataloader worker processes), and the collator keeps a running total (`skipped`,
in the process that runs it). A record of another task raises.

`eval_captions` holds the caption of every pair record, ties included: a caption whose candidates a judge
could not tell apart (the filter's `keep_questions`) trains nothing but is still a held-out prompt the
generator is tested on, so every judge's DPO run is tested on the same captions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unified_reward.data.schema import PreferenceRecord, VideoClip


def media_to_tensor(media: Image.Image | VideoClip, size: int, num_frames: int | None) -> torch.Tensor:
    """An image (3, H, W) or video (3, F, H, W) at `size` px, in [-1, 1]."""
    if isinstance(media, VideoClip):
        frames = torch.from_numpy(np.ascontiguousarray(media.frames)).permute(0, 3, 1, 2).float()
        if num_frames is not None and frames.shape[0] != num_frames:
            raise ValueError(f"video has {frames.shape[0]} frames, the generator makes {num_frames}")
        if frames.shape[-1] != size or frames.shape[-2] != size:
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return (frames / 127.5 - 1).permute(1, 0, 2, 3).contiguous()
    image = media.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 127.5 - 1


class GenerationPairCollator:
    """`records -> {"captions", "chosen", "rejected", "records", "eval_captions", "skipped"}` (no `chosen` /
    `rejected` when the batch holds only ties); None when no record of the batch is a pair record."""

    def __init__(self, task: str, size: int, num_frames: int | None = None):
        self.task, self.size, self.num_frames = task, size, num_frames
        self.skipped: Counter[str] = Counter()

    def __call__(self, records: list[PreferenceRecord]) -> dict[str, Any] | None:
        pairs, skipped = [], Counter()
        for record in records:
            if record.task != self.task:
                raise ValueError(f"record {record.id!r} is {record.task}; this generator is trained on {self.task}")
            if record.mode != "pair" or record.label == "tie":
                skipped["tie" if record.label == "tie" else "not_a_pair"] += 1
                continue
            pairs.append(record)
        self.skipped.update(skipped)
        eval_captions = [r.prompt for r in records if r.mode == "pair"]
        if not eval_captions:
            return None
        batch = {"captions": [r.prompt for r in pairs], "records": pairs, "eval_captions": eval_captions}
        if pairs:
            batch["chosen"] = torch.stack([media_to_tensor(r.chosen, self.size, self.num_frames) for r in pairs])
            batch["rejected"] = torch.stack([media_to_tensor(r.rejected, self.size, self.num_frames) for r in pairs])
        return batch | {"skipped": dict(skipped)}
