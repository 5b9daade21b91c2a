from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests_support import compose_config, train_entry
from unified_reward.encoding.policy_pairs import encode_answer_groups, encode_policy_prompt
from unified_reward.judging.queries import JudgeReadings, Judgment
from unified_reward.modules.vlm_grpo import VLMGRPOModule, concordance, prompt_records


class FirstPositionJudge(JudgeReadings):
    """Always names the first position: read in both orders, every pair is a tie, so every group is flat."""

    def judge(self, queries, *, with_text=False):
        return [Judgment({"first": 1.0, "second": 0.0, "tie": 0.0}) for _ in queries]


def _module(tiny_qwen, **options):
    model, processor = tiny_qwen
    return VLMGRPOModule(processor, model, judge=FirstPositionJudge(), reference="copy", **options)


def test_a_group_in_one_row_scores_each_answer_as_its_own_row(tiny_qwen, understanding_pairs):
    model, processor = tiny_qwen
    module = _module(tiny_qwen)
    records = understanding_pairs[:2]
    prompts = [encode_policy_prompt(processor, r) for r in records]
    tokenizer = processor.tokenizer
    groups = [
        [tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for text in answers]
        for answers in (["two red circles", "blue", "one green square left"], ["three", "a red triangle", "no"])
    ]
    batch = encode_answer_groups(processor, prompts, groups)
    grouped = module.answer_logps(model, batch)  # (2, 3, tokens)
    for i, (prompt, group) in enumerate(zip(prompts, groups, strict=True)):
        pixels = torch.cat(prompt.pixel_values)
        for k, answer in enumerate(group):
            ids = torch.tensor([prompt.input_ids + answer])
            types = (ids == model.config.image_token_id).long()
            with torch.no_grad():
                logits = model(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    pixel_values=pixels,
                    image_grid_thw=torch.tensor(prompt.image_grid_thw),
                    mm_token_type_ids=types,
                ).logits[0]
            p = len(prompt.input_ids)
            alone = torch.log_softmax(logits[p - 1 : p - 1 + len(answer)].float(), -1)
            alone = alone.gather(-1, torch.tensor(answer)[:, None])[:, 0]
            assert torch.allclose(grouped[i, k, : len(answer)], alone, atol=1e-4), (i, k)


def test_a_flat_group_gives_zero_loss_and_zero_gradient(tiny_qwen, understanding_pairs):
    module = _module(tiny_qwen, group_size=3, max_new_tokens=6, beta=0.04)
    module.model.train()
    batch = prompt_records(list(understanding_pairs[:2]))
    loss = _step(module, batch)
    assert torch.isfinite(loss) and loss.item() == 0.0  # no advantage, and the policy is its reference: KL 0
    loss.backward()
    grads = [p.grad for p in module.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() and g.abs().max() == 0 for g in grads)
    module.model.zero_grad(set_to_none=True)


def _step(module, batch):
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)
    module.log_dict = lambda values, **kw: logged.update(values)
    loss = module.training_step(batch, 0)
    assert logged["train/reward/flat_groups"] == 1.0 and logged["train/judge/position_bias_rate"] == 1.0
    assert logged["train/judge_calls_total"] == 2 * 6  # 2 questions x 3 pairs x 2 orders
    return loss


def test_concordance_counts_pairs_both_order():
    alike, counted = concordance(torch.tensor([[1.0, 0.0, 0.5]]), torch.tensor([[0.9, 0.1, 0.1]]))
    assert (alike, counted) == (2, 2)  # (0,1) and (0,2) alike; (1,2) tied by the oracle


def _scalars(run_dir: Path, tag: str) -> dict[int, float]:
    values = {}
    for events in sorted(run_dir.rglob("events.out.tfevents*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            values.update({e.step: e.value for e in accumulator.Scalars(tag)})
    return values


def test_kill_and_resume_continues_exactly(tmp_path):
    common = [
        "experiment=vlm_grpo_image",
        "debug=fast",
        "model.pretrained=null",  # a random tiny policy: its answers are varied, the oracle's rewards too
        "judge=oracle",
        "test=false",
        "module.optimizer.lr=1e-3",
        "module.max_new_tokens=8",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "data.num_workers=0",
        "~callbacks.export",
        f"paths.data_dir={tmp_path / 'data'}",  # one world for the three runs
        "trainer.max_steps=4",
    ]
    straight = tmp_path / "straight"
    train_entry().train(compose_config(straight, *common))
    interrupted = tmp_path / "interrupted"
    stop = ["+callbacks.stop._target_=tests_support.StopAfterSteps", "+callbacks.stop.steps=2"]
    train_entry().train(compose_config(interrupted, *common, *stop))
    checkpoint = interrupted / "run" / "checkpoints" / "last.ckpt"
    resumed = tmp_path / "resumed"
    train_entry().train(compose_config(resumed, *common, f"ckpt_path={checkpoint}"))
    for tag in ("train/kl", "train/oracle_reward", "train/reward/spread", "train/judge_calls_total"):
        expected = _scalars(straight / "run", tag)
        assert sorted(expected) == [0, 1, 2, 3], tag
        first, second = _scalars(interrupted / "run", tag), _scalars(resumed / "run", tag)
        assert sorted(second) == [2, 3], (tag, second)
        for step in (0, 1):
            assert first[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-7), (tag, step)
        for step in (2, 3):
            assert second[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-7), (tag, step)
    assert max(_scalars(straight / "run", "train/kl").values()) > 0  # the policy moved
