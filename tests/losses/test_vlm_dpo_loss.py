"""The VLM DPO losses against the formulas written out here and against TRL 1.16.0's own computation."""

import copy
import math
from collections import defaultdict
from functools import partial

import pytest
import torch

from unified_reward.losses.vlm_dpo import completion_logps, preference_loss, sft_loss


def _random_logps(n=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [-torch.rand(n, generator=generator, dtype=torch.float64) * 40 for _ in range(4)]


def test_sigmoid_hinge_ipo_equal_the_formulas():
    pc, pr, rc, rr = _random_logps()
    lengths_c, lengths_r = torch.arange(3, 19).double(), torch.arange(20, 4, -1).double()
    beta = 0.1
    for i in range(len(pc)):
        delta = (pc[i].item() - rc[i].item()) - (pr[i].item() - rr[i].item())
        sigmoid = -math.log(1 / (1 + math.exp(-beta * delta)))
        hinge = max(0.0, 1 - beta * delta)
        average = (pc[i].item() - rc[i].item()) / lengths_c[i].item() - (pr[i].item() - rr[i].item()) / lengths_r[
            i
        ].item()
        ipo = (average - 1 / (2 * beta)) ** 2
        for loss_type, expected in (("sigmoid", sigmoid), ("hinge", hinge), ("ipo", ipo)):
            out = preference_loss(
                pc[i : i + 1],
                pr[i : i + 1],
                rc[i : i + 1],
                rr[i : i + 1],
                beta=beta,
                loss_type=loss_type,
                chosen_lengths=lengths_c[i : i + 1],
                rejected_lengths=lengths_r[i : i + 1],
            )
            assert out.loss.item() == pytest.approx(expected, rel=1e-9)


def test_label_smoothing_and_metrics():
    pc, pr, rc, rr = _random_logps(seed=1)
    out = preference_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=0.2)
    delta = (pc - rc) - (pr - rr)
    expected = -(0.8 * torch.log(torch.sigmoid(0.5 * delta)) + 0.2 * torch.log(torch.sigmoid(-0.5 * delta)))
    torch.testing.assert_close(out.losses, expected)
    metrics = out.metrics()
    torch.testing.assert_close(metrics["rewards/chosen"], (0.5 * (pc - rc)).mean())
    torch.testing.assert_close(metrics["rewards/margins"], (0.5 * delta).mean())
    assert metrics["rewards/accuracies"].item() == pytest.approx((delta > 0).double().mean().item())


def test_loss_is_ln2_when_policy_equals_reference():
    pc, pr, _, _ = _random_logps(seed=2)
    assert preference_loss(pc, pr, pc, pr).loss.item() == pytest.approx(math.log(2))


def test_completion_logps_sums_only_masked_tokens():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float32)
    log_probs = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    torch.testing.assert_close(completion_logps(logits, targets, mask), (log_probs * mask).sum(-1))
    assert sft_loss(completion_logps(logits, targets, mask), mask.sum(-1)).item() == pytest.approx(
        -(log_probs * mask).sum().item() / 7, rel=1e-6
    )


def test_unknown_loss_and_ipo_without_lengths_fail_clearly():
    pc, pr, rc, rr = _random_logps()
    with pytest.raises(ValueError, match="loss_type"):
        preference_loss(pc, pr, rc, rr, loss_type="kto")
    with pytest.raises(ValueError, match="lengths"):
        preference_loss(pc, pr, rc, rr, loss_type="ipo")


# ---- TRL 1.16.0 as the oracle --------------------------------------------------------------------------


def _trl_dpo(loss_type: str, beta: float):
    """A TRL `DPOTrainer` holding only what `_compute_loss` reads (its constructor needs a dataset and a
    processor class our offline tiny model has no use for)."""
    from accelerate import Accelerator
    from trl import DPOTrainer

    trainer = object.__new__(DPOTrainer)
    trainer.accelerator = Accelerator(cpu=True)
    trainer.aux_loss_enabled = False
    trainer.ld_alpha = None
    trainer.precompute_ref_logps = True  # the reference log-probs come with the inputs
    trainer.f_divergence_type = "reverse_kl"
    trainer.loss_types, trainer.loss_weights = [loss_type], [1.0]
    trainer.beta, trainer.label_smoothing = beta, 0.0
    trainer.use_weighting = False
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    trainer._total_train_tokens, trainer._tp_size = 0, 1
    return trainer


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
def test_equal_to_trl_dpo_trainer_compute_loss_on_a_real_tiny_vlm(loss_type, tiny_qwen, understanding_pairs):
    """TRL runs the real tiny Qwen2-VL (with its fused LM head) on the same image and video pairs in its own
    layout; our module runs it in the shared layout. Losses and logged metrics agree."""
    from trl.trainer.utils import add_fused_lm_head

    from unified_reward.encoding.policy_pairs import PolicyPairCollator
    from unified_reward.modules.vlm_dpo import VLMDPOModule

    model, processor = tiny_qwen
    beta = 0.1
    ours = VLMDPOModule(
        processor,
        model,
        loss=partial(preference_loss, loss_type=loss_type, beta=beta),
        reference="precomputed",
        layout="shared",
    )
    generator = torch.Generator().manual_seed(4)
    reference = -torch.rand(len(understanding_pairs), 2, generator=generator) * 60
    with torch.no_grad():
        logps = ours.completion_logps(model, ours.collate(understanding_pairs))
    lengths = ours.collate(understanding_pairs)["target_mask"].sum(-1)
    expected = preference_loss(
        logps[:, 0],
        logps[:, 1],
        reference[:, 0],
        reference[:, 1],
        beta=beta,
        loss_type=loss_type,
        chosen_lengths=lengths[:, 0],
        rejected_lengths=lengths[:, 1],
    )

    trl_model = copy.deepcopy(model).eval()
    add_fused_lm_head(trl_model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    batch = PolicyPairCollator(processor, layout="separate")(understanding_pairs)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "mm_token_type_ids")}
    inputs |= {k: batch[k] for k in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")}
    inputs["completion_mask"] = (batch["labels"] != -100).long()
    inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = reference[:, 0], reference[:, 1]
    trainer = _trl_dpo(loss_type, beta)
    trainer.model = trl_model
    with torch.no_grad():
        trl_loss = trainer._compute_loss(trl_model, inputs, return_outputs=False)

    assert expected.loss.item() == pytest.approx(trl_loss.item(), rel=1e-4, abs=1e-5)
    logged = trainer._metrics["eval"]
    assert logged["logps/chosen"][0] == pytest.approx(logps[:, 0].mean().item(), rel=1e-4)
    assert logged["logps/rejected"][0] == pytest.approx(logps[:, 1].mean().item(), rel=1e-4)
    for name, value in expected.metrics().items():
        assert logged[name][0] == pytest.approx(value.item(), rel=1e-4, abs=1e-5), name
