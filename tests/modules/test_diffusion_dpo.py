import math

import pytest
import torch
from PIL import Image

from unified_reward.data.schema import PointLabel, PreferenceRecord
from unified_reward.generation.noise import NoiseObjective
from unified_reward.losses.diffusion_dpo import denoise_loss
from unified_reward.models.conditioning import build_caption_encoder, build_latent_codec
from unified_reward.models.diffusion import build_denoiser
from unified_reward.modules.diffusion_dpo import DiffusionDPOModule
from unified_reward.modules.reference import FrozenCopyReference
from unified_reward.synthetic.vocabulary import world_vocabulary

KINDS = [
    ("unet2d", "epsilon"),
    ("unet2d", "v_prediction"),
    ("sd3", "flow"),
    ("unet3d", "epsilon"),
    ("animatediff", "epsilon"),
]


def _module(kind="sd3", prediction="flow", finetune="lora", reference="adapter", **kwargs):
    video = kind in ("unet3d", "animatediff")
    return DiffusionDPOModule(
        build_denoiser(kind, sample_size=16, finetune=finetune, lora_rank=4),
        build_caption_encoder(tiny_vocabulary=world_vocabulary()),
        NoiseObjective(prediction),
        task="video_generation" if video else "image_generation",
        sample_size=16,
        num_frames=4 if video else None,
        reference=reference,
        sample_steps=2,
        **kwargs,
    )


def _batch(module, pairs=3, same=False):
    g = torch.Generator().manual_seed(0)
    shape = module.sample_shape
    chosen = torch.rand((pairs, *shape), generator=g) * 2 - 1
    rejected = chosen.clone() if same else torch.rand((pairs, *shape), generator=g) * 2 - 1
    return {"captions": [f"{i + 1} red circles" for i in range(pairs)], "chosen": chosen, "rejected": rejected}


def _perturb_adapter(module):
    with torch.no_grad():
        for name, parameter in module.denoiser.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3)


@pytest.mark.parametrize("kind, prediction", KINDS)
@pytest.mark.parametrize("finetune, reference", [("lora", "adapter"), ("full", "copy")])
def test_one_dpo_step_of_each_kind_starts_at_ln2_and_reaches_the_trained_weights(kind, prediction, finetune, reference):
    torch.manual_seed(0)
    module = _module(kind, prediction, finetune, reference)
    out = module.dpo_step(_batch(module, pairs=2))
    assert out["loss"].item() == pytest.approx(math.log(2), abs=1e-6)  # policy == reference at the start
    assert out["implicit_accuracy"].item() == 0.5
    out["loss"].backward()
    grads = [p.grad for p in module.denoiser.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)
    if isinstance(module.reference, FrozenCopyReference):
        assert all(p.grad is None for p in module.reference.copy.parameters())


def test_chosen_and_rejected_share_noise_and_timestep():
    """With chosen == rejected the two errors can only differ if noise or timestep differ."""
    torch.manual_seed(0)
    module = _module()
    _perturb_adapter(module)  # model != reference, so a non-shared draw would show
    out = module.dpo_step(_batch(module, same=True))
    assert out["model_error/chosen"].item() == pytest.approx(out["model_error/rejected"].item(), rel=1e-6)
    # beta * (float rounding between batch rows) stays far below what an unshared draw gives (~1e-1)
    assert out["loss"].item() == pytest.approx(math.log(2), abs=1e-3)


def test_dpo_steps_move_the_model_towards_the_chosen_samples():
    torch.manual_seed(0)
    module = _module()
    batch = _batch(module, pairs=4)
    optimizer = torch.optim.Adam([p for p in module.denoiser.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for step in range(15):
        out = module.dpo_step(batch, torch.Generator().manual_seed(step % 3))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    final = module.dpo_step(batch, torch.Generator().manual_seed(0))
    assert final["loss"].item() < math.log(2) - 0.05 and final["implicit_accuracy"].item() > 0.5


def test_denoise_loss_is_the_plain_diffusion_loss_of_the_chosen_samples():
    torch.manual_seed(0)
    module = _module(finetune="full", reference="copy", loss=denoise_loss)
    batch = _batch(module)
    out = module.denoise_step(batch, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(batch["chosen"].shape, generator=g)
    t = module.objective.draw_timesteps(3, torch.device("cpu"), g)
    from unified_reward.models.diffusion import predict

    noisy = (1 - (t / 1000).reshape(-1, 1, 1, 1)) * batch["chosen"] + (t / 1000).reshape(-1, 1, 1, 1) * noise
    prediction = predict(module.denoiser, noisy, t, module.caption_encoder(batch["captions"]))
    expected = ((prediction - (noise - batch["chosen"])) ** 2).mean()
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_latent_codec_path_trains_in_latent_space():
    torch.manual_seed(0)
    module = DiffusionDPOModule(
        build_denoiser("unet2d", sample_size=8, channels=4, finetune="lora", lora_rank=4),
        build_caption_encoder(tiny_vocabulary=world_vocabulary()),
        NoiseObjective("epsilon"),
        latent_codec=build_latent_codec(tiny={"block_out_channels": (8, 16), "norm_num_groups": 4}),
        sample_size=8,
        sample_steps=2,
    )
    pixels = {
        "captions": ["a", "b"],
        "chosen": torch.rand(2, 3, 16, 16) * 2 - 1,
        "rejected": torch.rand(2, 3, 16, 16) * 2 - 1,
    }
    assert module.dpo_step(pixels)["loss"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert module.sample(["a"], [0]).shape == (1, 3, 16, 16)  # decoded back to pixels


def test_mismatched_kind_task_or_reference_fails_at_construction():
    with pytest.raises(ValueError, match="makes images"):
        DiffusionDPOModule(
            build_denoiser("sd3", sample_size=16),
            build_caption_encoder(tiny_vocabulary=world_vocabulary()),
            NoiseObjective("flow"),
            task="video_generation",
            num_frames=4,
        )
    with pytest.raises(ValueError, match="reference=copy"):
        DiffusionDPOModule(
            build_denoiser("sd3", sample_size=16),
            build_caption_encoder(tiny_vocabulary=world_vocabulary()),
            NoiseObjective("flow"),
        )


def test_collator_skips_and_counts_ties_and_point_records():
    module = _module()
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    pair = PreferenceRecord(
        id="p",
        task="image_generation",
        mode="pair",
        prompt="a red circle",
        candidates=(image, image),
        label="second",
        source="t",
    )
    tie = PreferenceRecord(
        id="t", task="image_generation", mode="pair", prompt="x", candidates=(image, image), label="tie", source="t"
    )
    point = PreferenceRecord(
        id="q",
        task="image_generation",
        mode="point",
        prompt="x",
        candidates=(image,),
        label=PointLabel(3.0, 1.0, 5.0),
        source="t",
    )
    batch = module.collate([pair, tie, point])
    assert batch["captions"] == ["a red circle"] and batch["chosen"].shape == (1, 3, 16, 16)
    assert batch["chosen"].min() >= -1 and batch["chosen"].max() <= 1
    assert batch["skipped"] == {"tie": 1, "not_a_pair": 1} == module.collate.skipped
    assert batch["eval_captions"] == ["a red circle", "x"]  # a tie trains nothing but is still a test caption
    only_tie = module.collate([tie])
    assert only_tie["records"] == [] and "chosen" not in only_tie and only_tie["eval_captions"] == ["x"]
    assert module.collate([point]) is None


def test_test_captions_include_the_ties_a_judge_could_not_rank():
    """With the filter's keep_questions, every held-out caption is sampled and scored, pair or tie, so every judge's
    DPO run is measured on the same captions."""
    scored: list[str] = []

    def evaluator(caption, sample):
        scored.append(caption)
        return 3.0

    module = _module(evaluator=evaluator)
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    records = [
        PreferenceRecord(
            id=i, task="image_generation", mode="pair", prompt=p, candidates=(image, image), label=label, source="t"
        )
        for i, p, label in (("a", "one red circle", "first"), ("b", "two blue squares", "tie"))
    ]
    module.test_step(module.collate(records), 0)
    module.test_step(module.collate(records[1:]), 1)  # a batch of ties only
    assert scored == ["one red circle", "two blue squares"] * 2 + ["two blue squares"] * 2  # after, then before
    rows = module.scores.gathered()
    assert rows.shape == (3, 2) and bool((rows == 3.0).all())


def test_several_test_samples_per_caption_with_the_same_noise_before_and_after():
    """Common random numbers: each caption's k samples start from the same seeds before and after DPO (so with the
    adapter still at zero, after == before sample for sample), sample j does not depend on k, and a caption's row is
    the mean of its k scores."""
    seen: list[tuple[str, float]] = []

    def evaluator(caption, sample):
        seen.append((caption, float(sample.astype(float).mean())))
        return float(sample.astype(float).mean())

    image = Image.new("RGB", (64, 64), (200, 30, 30))
    records = [
        PreferenceRecord(
            id=i, task="image_generation", mode="pair", prompt=p, candidates=(image, image), label="first", source="t"
        )
        for i, p in (("a", "one red circle"), ("b", "two blue squares"))
    ]
    rows = {}
    for k in (1, 3):
        seen.clear()
        torch.manual_seed(0)  # the same tiny denoiser for both k
        module = _module(evaluator=evaluator, eval_samples_per_caption=k)
        module.test_step(module.collate(records), 0)
        rows[k] = module.scores.gathered()
        after, before = seen[: 2 * k], seen[2 * k :]
        assert [c for c, _ in after] == ["one red circle"] * k + ["two blue squares"] * k
        assert after == before  # LoRA B starts at zero: the same denoiser, the same noise, the same samples
        means = [sum(v for _, v in after[i * k : (i + 1) * k]) / k for i in range(2)]
        assert rows[k][:, 0].tolist() == pytest.approx(means)
        if k == 3:
            first = [v for c, v in seen[:6:3]]  # sample 0 of each caption
            assert first == pytest.approx(rows[1][:, 0].tolist())
    with pytest.raises(ValueError, match="eval_samples_per_caption"):
        _module(eval_samples_per_caption=0)
