import json

import pytest
import torch

from tests_support import ROOT
from unified_reward.models.architectures import QWEN_SPECIAL_IDS, VLMArchitecture
from unified_reward.sizing.fit import fit_layers
from unified_reward.sizing.measure import measure_diffusion_dpo_step, measure_vlm_step, nf4_bytes

# the released Qwen2.5-VL's layout at a narrow width: the same code paths (window attention, 3-D positions)
NARROW = VLMArchitecture(
    "narrow_qwen2_5_vl",
    "qwen2_5_vl",
    "none",
    {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 4096,
        "tie_word_embeddings": False,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
    },
    {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 4,
        "out_hidden_size": 128,
        "in_channels": 3,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
    },
    {name: 4000 + i for i, name in enumerate(QWEN_SPECIAL_IDS)},  # inside the narrow vocabulary
)
SHAPE = {"tokens": 160, "visual_tokens": 64, "answer_tokens": 32, "dtype": "float32"}


@pytest.mark.parametrize(
    ("method", "objective", "checkpointing"),
    [
        ("full", "reward_sft", True),
        ("lora", "dpo", True),
        pytest.param("full", "reward_sft", False, marks=pytest.mark.slow),
        pytest.param("full", "dpo", False, marks=pytest.mark.slow),
    ],
)
def test_fake_step_counts_what_the_real_step_allocates(method, objective, checkpointing):
    """The same step on real tensors (computed, allocated, tracked) and on fake ones: the same bytes."""
    options = dict(decoder_layers=1, method=method, objective=objective, gradient_checkpointing=checkpointing, **SHAPE)
    torch.manual_seed(0)
    real = measure_vlm_step(NARROW, fake=False, **options)
    fake = measure_vlm_step(NARROW, **options)
    assert real.peak > 0
    for category in ("weights", "gradients", "optimizer", "activations", "peak", "activation_peak"):
        assert getattr(fake, category) == pytest.approx(getattr(real, category), rel=0.02), category


def test_a_layer_adds_the_same_bytes_so_two_depths_predict_a_third():
    steps = {n: measure_vlm_step(NARROW, decoder_layers=n, method="full", **SHAPE) for n in (1, 2, 4)}
    predicted = fit_layers(steps[1], steps[2]).at(4)
    assert predicted.peak == pytest.approx(steps[4].peak, rel=0.10)
    assert predicted.weights == pytest.approx(steps[4].weights, rel=0.01)


def test_recorded_real_width_measurements_fit_a_line_within_ten_percent():
    """experiments/real_size/measurements.jsonl (made by its measure.py): from 1 and 2 decoder layers, the
    4-layer peak of every architecture, method and checkpointing setting within 10%, and the full depth where it
    was measured directly."""
    rows = [json.loads(line) for line in (ROOT / "experiments/real_size/measurements.jsonl").read_text().splitlines()]
    groups: dict[tuple, dict[int, dict]] = {}
    for row in rows:
        if row["kind"] == "vlm":
            group = (row["architecture"], row["method"], row["objective"], row["gradient_checkpointing"])
            groups.setdefault(group, {})[row["decoder_layers"]] = row["bytes"]
    checked = 0
    for group, depths in groups.items():
        if 1 not in depths or 2 not in depths:
            continue
        fit = fit_layers(*(_step(depths[n]) for n in (1, 2)))
        for layers, measured in depths.items():
            if layers > 2:
                assert fit.at(layers).peak == pytest.approx(_step(measured).peak, rel=0.10), (group, layers)
                checked += 1
    assert checked >= 11  # 9 settings at 4 layers, and two at their full depth (28 and 36 layers)


def _step(values: dict):
    from unified_reward.sizing.measure import StepMemory

    return StepMemory.from_dict(values)


def test_nf4_storage_is_what_bitsandbytes_holds():
    import bitsandbytes as bnb

    for rows, columns, nested in ((256, 512, True), (1000, 300, True), (640, 96, False)):
        layer = bnb.nn.Linear4bit(columns, rows, bias=False, compress_statistics=nested, quant_type="nf4").to("cpu")
        state = layer.weight.quant_state
        held = [layer.weight.data, state.absmax, state.code]
        if nested:
            held += [state.state2.absmax, state.state2.code, state.offset]
        assert sum(t.nbytes for t in held) == nf4_bytes(rows * columns, double_quant=nested)


def test_qlora_counts_four_bit_weights_and_float32_for_the_rest():
    lora = measure_vlm_step(NARROW, decoder_layers=1, method="lora", **(SHAPE | {"dtype": "bfloat16"}))
    qlora = measure_vlm_step(NARROW, decoder_layers=1, method="qlora", **(SHAPE | {"dtype": "bfloat16"}))
    # here the vision tower, embeddings and LM head dominate: prepare_model_for_kbit_training makes them float32
    assert qlora.weights > lora.weights
    assert qlora.gradients == lora.gradients


@pytest.mark.slow
def test_sd15_diffusion_dpo_step_at_real_size():
    lora = measure_diffusion_dpo_step(method="lora")
    full = measure_diffusion_dpo_step(method="full")
    sd15_bf16 = 859_520_964 * 2
    assert lora.weights == pytest.approx(sd15_bf16, rel=0.02)  # one UNet, its reference is the adapter off
    assert full.weights == pytest.approx(2 * sd15_bf16, rel=0.01)  # the policy and its frozen copy
    assert full.peak > lora.peak
