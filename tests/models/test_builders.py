import pytest
import torch

from unified_reward.encoding.judge_batches import JudgeCollator
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.prompts.templates import DEFAULT_TEMPLATES
from unified_reward.synthetic.vocabulary import world_vocabulary

TINY = {"hidden_size": 64, "num_hidden_layers": 2}


def _model_inputs(batch):
    return {k: v for k, v in batch.items() if k != "records"}


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_tiny_qwen_families_train_on_images_and_videos(family, decoded_records):
    torch.manual_seed(0)
    processor = build_processor(family, min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    model = build_vlm(family, processor, tiny=TINY)
    assert (
        type(model).__name__
        == {"qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}[family]
    )
    batch = JudgeCollator(processor, DEFAULT_TEMPLATES)(decoded_records)
    assert "pixel_values" in batch and "pixel_values_videos" in batch
    loss = model(**_model_inputs(batch)).loss
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0  # gradients reach the vision tower


def test_tiny_llava_onevision_builds_and_runs_a_text_forward():
    processor = build_processor("llava_onevision", tiny_vocabulary=world_vocabulary())
    model = build_vlm("llava_onevision", processor, tiny=TINY)
    assert type(model).__name__ == "LlavaOnevisionForConditionalGeneration"
    ids = processor.tokenizer("two red circles", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids, labels=ids).loss.isfinite()
    assert processor.tokenizer.convert_tokens_to_ids("<image>") != processor.tokenizer.unk_token_id


def test_lora_trains_only_the_adapter(decoded_records):
    processor = build_processor("qwen2_vl", min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    model = build_vlm("qwen2_vl", processor, tiny=TINY, finetune="lora", lora_rank=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("language_model" in n for n in trainable) and not any("visual" in n for n in trainable)
    loss = model(**_model_inputs(JudgeCollator(processor, DEFAULT_TEMPLATES)(decoded_records[:2]))).loss
    loss.backward()
    with model.disable_adapter():  # the reference model of DPO: same weights, adapter off
        assert torch.isfinite(
            model(**_model_inputs(JudgeCollator(processor, DEFAULT_TEMPLATES)(decoded_records[:2]))).loss
        )


def test_qlora_step_on_cpu_after_an_eval_forward(decoded_records):
    """4-bit NF4 weights, LoRA on top; an eval forward first (the avx512_bf16 repacking pitfall), then
    two training steps that change the adapter."""
    torch.manual_seed(0)
    processor = build_processor("qwen2_vl", min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    model = build_vlm("qwen2_vl", processor, tiny=TINY, finetune="qlora", lora_rank=4)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    batch = _model_inputs(JudgeCollator(processor, DEFAULT_TEMPLATES)(decoded_records[:2]))
    with torch.no_grad():
        model.eval()(**batch)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    for _ in range(2):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)


def test_unknown_family_and_finetune_are_rejected():
    with pytest.raises(ValueError, match="unknown model family"):
        build_processor("llama")
    with pytest.raises(ValueError, match="finetune must be"):
        build_vlm("qwen2_vl", build_processor("qwen2_vl", tiny_vocabulary=world_vocabulary()), finetune="half")
