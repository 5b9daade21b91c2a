"""Export a trained VLM (judge or policy) as a folder plain transformers loads with `from_pretrained`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from unified_reward.models.processor import VLMProcessor


def save_vlm(
    model: nn.Module, processor: VLMProcessor, path: str | Path, state_dict: dict[str, Any] | None = None
) -> bool:
    """Weights (LoRA merged into the base unless the base is 4-bit), tokenizer and image processor.

    `state_dict`: the full weights of a sharded model, gathered by the caller. Returns whether the folder
    holds a peft adapter rather than full weights (adapters on 4-bit bases, sharded adapter models).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    adapter = False
    if state_dict is not None:
        adapter = hasattr(model, "peft_config")
    elif hasattr(model, "merge_and_unload") and not getattr(model, "is_loaded_in_4bit", False):
        model = copy.deepcopy(model).merge_and_unload()
    elif hasattr(model, "peft_config"):
        adapter = True
    model.save_pretrained(path, state_dict=state_dict)
    processor.save_pretrained(path)
    return adapter
