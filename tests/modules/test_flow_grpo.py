import pytest
import torch

from unified_reward.generation.noise import NoiseObjective
from unified_reward.judging.queries import JudgeReadings, Judgment
from unified_reward.models.conditioning import build_caption_encoder
from unified_reward.models.diffusion import build_denoiser
from unified_reward.modules.flow_grpo import FlowGRPOModule, caption_records
from unified_reward.synthetic.oracle import score_generated_sample
from unified_reward.synthetic.oracle_judge import OracleJudge
from unified_reward.synthetic.vocabulary import world_vocabulary


class FirstPositionJudge(JudgeReadings):
    def judge(self, queries, *, with_text=False):
        return [Judgment({"first": 1.0, "second": 0.0, "tie": 0.0}) for _ in queries]


def _module(judge, **options):
    torch.manual_seed(0)
    return FlowGRPOModule(
        build_denoiser("sd3", sample_size=16, finetune="lora", lora_rank=4),
        build_caption_encoder(tiny_vocabulary=world_vocabulary()),
        NoiseObjective("flow"),
        judge=judge,
        sample_size=16,
        sample_steps=3,
        group_size=3,
        **options,
    )


def _step(module, captions):
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)
    module.log_dict = lambda values, **kw: logged.update(values)
    return module.training_step({"captions": captions}, 0), logged


def test_a_flat_group_gives_no_gradient_and_the_stored_log_probs_are_the_policys():
    module = _module(FirstPositionJudge())
    loss, logged = _step(module, ["two red circles", "one blue square"])
    assert logged["train/reward/flat_groups"] == 1.0
    assert logged["train/ratio"] == pytest.approx(1.0, abs=1e-5)  # recomputed log-probs = sampled ones
    assert logged["train/judge_calls_total"] == 2 * 6
    loss.backward()
    grads = [p.grad for p in module.denoiser.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() and g.abs().max() == 0 for g in grads)


def test_the_oracle_reward_is_logged_beside_the_judge_and_the_step_is_finite():
    module = _module(OracleJudge(), reward="score", evaluator=score_generated_sample)
    loss, logged = _step(module, ["two red circles", "one blue square"])
    assert torch.isfinite(loss) and "train/oracle_reward" in logged
    loss.backward()
    assert any(p.grad is not None and torch.isfinite(p.grad).all() for p in module.denoiser.parameters())


def test_a_generator_that_is_not_flow_matching_is_refused():
    with pytest.raises(ValueError, match="flow"):
        FlowGRPOModule(
            build_denoiser("unet2d", sample_size=16),
            build_caption_encoder(tiny_vocabulary=world_vocabulary()),
            NoiseObjective("epsilon"),
        )
    assert caption_records([]) is None
