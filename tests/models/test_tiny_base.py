"""The tiny base shipped in checkpoints/tiny_qwen2_vl_base: it loads as a hub checkpoint would, and it sees."""

from collections import defaultdict

import numpy as np
import pytest
import torch

from tests_support import ROOT
from unified_reward.encoding.chat import encode_chat
from unified_reward.judging.text_generation import generate_texts
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.models.tokenizer import build_tiny_tokenizer
from unified_reward.synthetic.skills import held_out_examples
from unified_reward.synthetic.vocabulary import world_vocabulary

BASE = ROOT / "checkpoints" / "tiny_qwen2_vl_base"


@pytest.fixture(scope="module")
def base():
    processor = build_processor("qwen2_vl", str(BASE))
    model = build_vlm("qwen2_vl", processor, pretrained=str(BASE)).eval()
    return model, processor


def test_base_is_a_plain_hugging_face_folder_with_its_card():
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "README.md"):
        assert (BASE / name).exists(), name
    size = sum(f.stat().st_size for f in BASE.iterdir()) / 2**20
    assert size < 30, size
    card = (BASE / "README.md").read_text()
    assert "python src/train.py experiment=tiny_base" in card and "Measured perception" in card


def test_shipped_tokenizer_is_the_one_the_code_builds(base):
    """Changing the offline tokenizer means rebuilding and re-shipping the base (`experiment=tiny_base`)."""
    _, processor = base
    assert processor.tokenizer.get_vocab() == build_tiny_tokenizer(vocabulary=world_vocabulary()).get_vocab()
    assert processor.tokenizer.chat_template == build_tiny_tokenizer(vocabulary=world_vocabulary()).chat_template


def test_base_describes_fresh_scenes(base):
    """Greedy descriptions of scenes it never saw (their own seed), each attribute read from the text."""
    model, processor = base
    examples = held_out_examples(seed=12345, per_kind=24)
    encoded = [encode_chat(processor, e.parts(), None) for e in examples]
    with torch.no_grad():
        texts = generate_texts(model, processor, encoded, 24, batch_size=16)
    hits: dict[str, list[bool]] = defaultdict(list)
    for example, text in zip(examples, texts, strict=True):
        for attribute, correct in example.check(text).items():
            hits[f"{example.kind}/{attribute}"].append(correct)
    accuracy = {k: float(np.mean(v)) for k, v in hits.items()}
    assert len(accuracy) == 8 and min(accuracy.values()) >= 0.9, accuracy
