"""Packed rows give the same per-sample losses and the same gradients as padded rows (Qwen families, images and
videos); LLaVA-OneVision is refused."""

import pytest
import torch

from unified_reward.encoding.chat import encode_chat, pad_batch
from unified_reward.encoding.judge_batches import JudgeCollator
from unified_reward.encoding.packing import pack_batch, pack_rows, packed_position_ids, rope_index_owner
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.prompts.templates import load_templates
from unified_reward.synthetic.vocabulary import world_vocabulary

MEDIA = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "mm_token_type_ids")


def test_rows_hold_at_most_the_budget_first_fit_longest_first():
    rows = pack_rows([5, 3, 8, 2, 6], max_tokens=10)
    assert rows == [[2, 3], [4, 1], [0]]
    assert sorted(i for row in rows for i in row) == list(range(5))
    assert pack_rows([12, 3], max_tokens=10) == [[0], [1]]  # too long for the budget: a row of its own


def _model(family):
    torch.manual_seed(0)
    processor = build_processor(family, min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    return build_vlm(family, processor, tiny={"hidden_size": 64, "num_hidden_layers": 2}), processor


def _token_logps(logits, labels):
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    target = labels[:, 1:]
    return logp.gather(-1, target.clamp(min=0)[..., None])[..., 0] * (target != -100), target != -100


def _padded_per_sample(model, batch):
    out = model(**{k: batch[k] for k in ("input_ids", "attention_mask", *MEDIA) if k in batch}, use_cache=False)
    logps, mask = _token_logps(out.logits, batch["labels"])
    return logps.sum(1) / mask.sum(1)


def _packed_per_sample(model, batch, count):
    position_ids = packed_position_ids(batch, rope_index_owner(model))
    out = model(
        input_ids=batch["input_ids"],
        position_ids=position_ids,
        use_cache=False,
        **{k: batch[k] for k in MEDIA if k in batch},
    )
    logps, mask = _token_logps(out.logits, batch["labels"])
    losses, sample = [None] * count, 0
    for row, lengths in enumerate(batch["sample_lengths"]):
        start = 0
        for length in lengths:
            span = slice(start, start + length - 1)
            losses[batch["sample_order"][sample]] = logps[row, span].sum() / mask[row, span].sum()
            start, sample = start + length, sample + 1
    return torch.stack(losses)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_packed_and_padded_give_the_same_per_sample_losses_and_gradients(family, decoded_records):
    model, processor = _model(family)
    collate = JudgeCollator(processor, load_templates(None))
    records = decoded_records + decoded_records[::-1]  # 16 samples, all 4 tasks x 2 modes: images and videos
    encoded = [encode_chat(processor, collate.parts(r), collate.answer(r)) for r in records]
    padded = pad_batch(encoded, processor)
    packed = pack_batch(encoded, processor, max_tokens=2 * max(len(e.input_ids) for e in encoded))
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]  # samples do share rows
    model.eval()
    with torch.no_grad():
        assert torch.allclose(
            _packed_per_sample(model, packed, len(records)), _padded_per_sample(model, padded), atol=1e-5
        )

    def gradients(batch, **extra):
        model.zero_grad()
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels", *MEDIA) if k in batch}
        loss = model(**inputs, **extra, use_cache=False).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_padded, grads_padded = gradients(padded)
    loss_packed, grads_packed = gradients(packed, position_ids=packed_position_ids(packed, rope_index_owner(model)))
    assert torch.allclose(loss_packed, loss_padded, atol=1e-5)
    assert grads_packed.keys() == grads_padded.keys()
    for name, grad in grads_padded.items():
        assert torch.allclose(grads_packed[name], grad, atol=1e-5, rtol=1e-4), name


def test_the_collator_packs_and_keeps_records_in_row_order(tiny_qwen, decoded_records):
    _, processor = tiny_qwen
    collate = JudgeCollator(processor, load_templates(None), packing=True, pack_tokens=400)
    batch = collate(decoded_records)
    assert "attention_mask" not in batch and len(batch["records"]) == len(decoded_records)
    assert [r.id for r in batch["records"]] == [decoded_records[i].id for i in batch["sample_order"]]
    encoded = [encode_chat(processor, collate.parts(r), collate.answer(r)) for r in batch["records"]]
    assert [n for row in batch["sample_lengths"] for n in row] == [len(e.input_ids) for e in encoded]
    assert max(map(sum, batch["sample_lengths"])) <= 400 and batch["input_ids"].shape[0] < len(decoded_records)


def test_llava_onevision_is_refused_with_what_to_do(decoded_records):
    processor = build_processor("llava_onevision", tiny_vocabulary=world_vocabulary())
    collate = JudgeCollator(processor, load_templates(None), packing=True)
    with pytest.raises(ValueError, match="LLaVA-OneVision cannot be packed: train it padded"):
        collate(decoded_records[:2])
