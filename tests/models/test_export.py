"""An exported judge is a plain Hugging Face folder: transformers alone loads it and reads images as we do."""

import torch

from unified_reward.judging.generative import Judge
from unified_reward.judging.queries import JudgeQuery
from unified_reward.prompts.templates import render_judge_prompt


def test_an_exported_judge_loads_and_runs_with_plain_transformers(tiny_qwen, decoded_records, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    model, processor = tiny_qwen
    judge = Judge(model, processor)
    judge.save_pretrained(tmp_path / "judge")
    # the documented way (README, "The exported judge with plain transformers"): no torchvision needed
    plain_model = AutoModelForImageTextToText.from_pretrained(tmp_path / "judge").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "judge")
    image_processor = AutoImageProcessor.from_pretrained(tmp_path / "judge")

    record = decoded_records[0]  # image generation, pair: two images
    query = JudgeQuery.of(record)
    parts = render_judge_prompt(
        judge.templates, query.task, query.mode, query.prompt, query.context, query.candidates, query.scale
    )
    images = [p["media"] for p in parts if p["type"] == "image"]
    content = [{"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]} for p in parts]
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    pixels = image_processor(images=images, return_tensors="pt")
    merge = image_processor.merge_size**2
    for grid in pixels["image_grid_thw"]:  # each placeholder stands for as many tokens as its image takes
        text = text.replace("<|image_pad|>", "<|placeholder|>" * (int(grid.prod()) // merge), 1)
    text = text.replace("<|placeholder|>", "<|image_pad|>")
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    inputs["mm_token_type_ids"] = (inputs["input_ids"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")).long()
    with torch.no_grad():
        plain = plain_model(**inputs, **pixels).logits[0, -1]
        ours_batch = judge._model_batch([judge._encode(query)])
        ours = model(**ours_batch).logits[0, -1]
    assert inputs["input_ids"][0].tolist() == ours_batch["input_ids"][0].tolist()
    assert torch.allclose(plain, ours, atol=1e-5)
