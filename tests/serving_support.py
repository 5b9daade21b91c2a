"""Helpers shared by the reward server's tests: random images, a native request body of each op, a tiny judge."""

import numpy as np
import torch
from PIL import Image

from unified_reward.judging.generative import Judge
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.serving.client import media_data_url
from unified_reward.synthetic.vocabulary import world_vocabulary


def image(seed: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


def body(op: str, **fields):
    """A valid image-generation request of `op` (`fields` replace or add fields)."""
    base = {"op": op, "task": "image_generation", "prompt": "two red circles"}
    if op == "score":
        base["candidate"] = media_data_url(image(0))
    else:
        base["candidates"] = [media_data_url(image(i)) for i in range(2 if op == "compare" else 3)]
    return base | fields


def tiny_judge(batch_size: int = 4) -> Judge:
    torch.manual_seed(0)
    processor = build_processor("qwen2_vl", min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    model = build_vlm("qwen2_vl", processor, tiny={"hidden_size": 64, "num_hidden_layers": 2}).eval()
    return Judge(model, processor, batch_size=batch_size)
