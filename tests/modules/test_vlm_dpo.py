import copy
import dataclasses
import math
from functools import partial

import pytest
import torch

from unified_reward.encoding.chat import EncodedChat, pad_batch
from unified_reward.encoding.policy_pairs import answer_ids, encode_policy_prompt
from unified_reward.losses.vlm_dpo import preference_loss, sft_loss
from unified_reward.modules.vlm_dpo import VLMDPOModule
from unified_reward.synthetic.vocabulary import world_vocabulary


@pytest.fixture
def pairs(understanding_pairs):
    return understanding_pairs[:2] + understanding_pairs[3:5]


def _tiny(finetune="full", seed=0):
    from unified_reward.models.builders import build_vlm
    from unified_reward.models.processor import build_processor

    torch.manual_seed(seed)
    processor = build_processor("qwen2_vl", min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    tiny = {"hidden_size": 64, "num_hidden_layers": 2}
    return build_vlm("qwen2_vl", processor, tiny=tiny, finetune=finetune, lora_rank=4, lora_dropout=0.0), processor


def _answer_row(processor, record, answer: str) -> EncodedChat:
    """The policy prompt followed by one answer, labelled on the answer: a row of its own."""
    prompt, ids = encode_policy_prompt(processor, record), answer_ids(processor, answer)
    return dataclasses.replace(prompt, input_ids=prompt.input_ids + ids, labels=[-100] * len(prompt.input_ids) + ids)


def _direct_logps(model, processor, record) -> list[float]:
    """Each answer in a row of its own, the model's plain forward, log-softmax summed over the answer."""
    values = []
    for answer in (record.chosen, record.rejected):
        batch = pad_batch([_answer_row(processor, record, answer)], processor)
        labels = batch.pop("labels")[0, 1:]
        logits = model(**batch).logits[0, :-1]
        picked = torch.log_softmax(logits.float(), -1).gather(1, batch["input_ids"][0, 1:, None])[:, 0]
        values.append(picked[labels != -100].sum().item())
    return values


@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_answer_logps_equal_a_direct_computation_for_images_and_videos(layout, tiny_qwen, pairs):
    model, processor = tiny_qwen
    module = VLMDPOModule(processor, model, reference="precomputed", layout=layout)
    with torch.no_grad():
        ours = module.completion_logps(model, module.collate(pairs))
        direct = torch.tensor([_direct_logps(model, processor, r) for r in pairs])
    torch.testing.assert_close(ours, direct, rtol=1e-4, atol=1e-4)


def test_eager_attention_takes_the_shared_layout_too(pairs):
    model, processor = _tiny()
    model.eval()
    module = VLMDPOModule(processor, model, reference="precomputed")
    with torch.no_grad():
        sdpa = module.completion_logps(model, module.collate(pairs))
        model.set_attn_implementation("eager")
        eager = module.completion_logps(model, module.collate(pairs))
    torch.testing.assert_close(sdpa, eager, rtol=1e-4, atol=1e-4)


def _step_loss(module, batch):
    module.log = lambda *a, **k: None
    module.log_dict = lambda *a, **k: None
    return module.training_step(batch, 0)


def test_step_zero_loss_is_ln2_with_the_adapter_reference_and_only_lora_learns(pairs):
    model, processor = _tiny("lora")
    module = VLMDPOModule(processor, model, reference="adapter")
    loss = _step_loss(module, module.collate(pairs))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_frozen_copy_reference_gets_no_gradient(pairs):
    model, processor = _tiny("full")
    module = VLMDPOModule(processor, model, reference="copy")
    loss = _step_loss(module, module.collate(pairs))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    loss.backward()
    assert all(p.grad is None for p in module.reference.copy.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.parameters())
    assert not any(p.requires_grad for p in module.reference.copy.parameters())


def test_precomputed_reference_equals_the_live_reference_and_names_missing_records(pairs):
    model, processor = _tiny("lora")
    module = VLMDPOModule(processor, model, reference="adapter")
    batches = [module.collate(pairs[:2]), module.collate(pairs[2:])]
    table = module.compute_reference_table(batches)
    precomputed = VLMDPOModule(processor, model, reference="precomputed")
    precomputed.reference.table = table
    batch = module.collate(pairs)
    torch.testing.assert_close(precomputed.reference_logps(batch), module.reference_logps(batch))
    assert _step_loss(precomputed, batch).item() == pytest.approx(math.log(2), abs=1e-6)
    precomputed.reference.table = {}
    with pytest.raises(KeyError, match=pairs[0].id):
        precomputed.reference_logps(batch)


def test_dpo_steps_on_a_fixed_batch_separate_chosen_from_rejected(pairs):
    model, processor = _tiny("lora")
    module = VLMDPOModule(processor, model, reference="adapter", loss=partial(preference_loss, beta=0.5))
    batch = module.collate(pairs)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    losses = []
    for _ in range(15):
        loss = _step_loss(module, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        policy, reference = module.completion_logps(model, batch), module.reference_logps(batch)
    margins = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
    assert losses[-1] < 0.5 * losses[0]
    assert (margins > 0).all()


def test_sft_loss_equals_the_models_own_cross_entropy_on_the_chosen_answers(tiny_qwen, pairs):
    model, processor = tiny_qwen
    module = VLMDPOModule(processor, model, loss=sft_loss, reference="adapter")  # sft needs no reference
    with torch.no_grad():
        ours = _step_loss(module, module.collate(pairs))
        chosen_rows = [_answer_row(processor, record, record.chosen) for record in pairs]
        expected = model(**pad_batch(chosen_rows, processor)).loss
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)


def test_configuration_errors_say_what_to_do(tiny_qwen):
    model, processor = tiny_qwen
    with pytest.raises(ValueError, match="reference=copy or reference=precomputed"):
        VLMDPOModule(processor, model, reference="adapter")
    with pytest.raises(ValueError, match="loss_type must be one of"):
        VLMDPOModule(processor, model, loss=partial(preference_loss, loss_type="kto"), reference="copy")
    flash = copy.deepcopy(model)
    flash.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="layout=separate"):
        VLMDPOModule(processor, flash, reference="precomputed")
    VLMDPOModule(processor, flash, reference="precomputed", layout="separate")


def test_precomputed_reference_is_written_once_for_all_splits_and_kept_in_checkpoints(tmp_path):
    from tests_support import compose_config, train_entry

    overrides = [
        "experiment=vlm_dpo_image",
        "debug=fast",
        "model.pretrained=null",
        "model.backbone.finetune=full",
        "module.reference=precomputed",
        "data=synthetic",
        "data.tasks=[image_understanding]",
        "data.modes=[pair]",
        "module.evaluator=null",
    ]
    train_entry().train(compose_config(tmp_path, *overrides))
    stored = torch.load(tmp_path / "run" / "reference_logps.pt", weights_only=True)
    assert {key.split("-")[1] for key in stored["logps"]} == {"train", "val", "test"}
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["reference_logps"].keys() == stored["logps"].keys()


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava_onevision"])
def test_other_families_shared_layout_equals_a_direct_computation(family, pairs):
    from unified_reward.models.builders import build_vlm
    from unified_reward.models.processor import build_processor

    torch.manual_seed(0)
    processor = build_processor(family, min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    model = build_vlm(family, processor, tiny={"hidden_size": 64, "num_hidden_layers": 2}).eval()
    module = VLMDPOModule(processor, model, reference="precomputed")
    with torch.no_grad():
        ours = module.completion_logps(model, module.collate(pairs))
        direct = torch.tensor([_direct_logps(model, processor, r) for r in pairs])
    torch.testing.assert_close(ours, direct, rtol=1e-4, atol=1e-4)


def test_qlora_policy_takes_a_dpo_step_on_cpu_with_the_adapter_reference(pairs):
    model, processor = _tiny("qlora")
    module = VLMDPOModule(processor, model, reference="adapter")
    loss = _step_loss(module, module.collate(pairs))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "llava_onevision"])
def test_packed_pairs_give_the_same_answer_logps_and_gradients(family, pairs):
    from unified_reward.models.builders import build_vlm
    from unified_reward.models.processor import build_processor

    torch.manual_seed(0)
    processor = build_processor(family, min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    model = build_vlm(family, processor, tiny={"hidden_size": 64, "num_hidden_layers": 2})
    shared = VLMDPOModule(processor, model, reference="precomputed")
    packed = VLMDPOModule(processor, model, reference="precomputed", pack_tokens=4096)
    one_row, rows = shared.collate(pairs), packed.collate(pairs)
    assert rows["input_ids"].shape[0] == 1 < one_row["input_ids"].shape[0]  # every pair in one row
    with torch.no_grad():
        direct = torch.tensor([_direct_logps(model.eval(), processor, r) for r in pairs])
        torch.testing.assert_close(packed.completion_logps(model, rows), direct, rtol=1e-4, atol=1e-4)

    def gradients(module, batch):
        model.zero_grad()
        logps = module.completion_logps(model.train(), batch)
        (logps[:, 0] - logps[:, 1]).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    expected, got = gradients(shared, shared.collate(pairs)), gradients(packed, packed.collate(pairs))
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-5, msg=name)
