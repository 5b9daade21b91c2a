"""`VLMGRPOModule`: online GRPO for a VLM policy (image or video understanding), the judge giving the reward.

Each training step, for each prompt (a question about an image or video) of the batch:
1. G answers are sampled from the current policy (`group_size`, `temperature`, at most `max_new_tokens`); the RNG is
   seeded by (`sampling_seed`, step), so a resumed run samples what the uninterrupted one did;
2. the judge rewards them (`judging.group_rewards.GroupRewards`: `reward=score | win_rate`, pair `orders`, the
   `invalid` policy), in one judge call for the whole batch; the judge runs in-process (a judge export, `oracle`,
   `random`) or behind the project's server (`judge=http://host:port`);
3. group-normalised advantages, then the clipped GRPO objective with the k3 KL to the reference
   (`losses.grpo`), on the answers' tokens as sampled (the ids, not re-tokenised text).
The group is one row, `prompt | answer 1 | ... | answer G`: the media and the prompt are encoded once per group
(TRL encodes them once per answer). One optimisation step per sampled batch, so the old policy is the current one
(ratio 1: the clip bounds steps only with `ppo_epochs` > 1, not offered here) as in TRL's default
`num_iterations=1`.

Logged per step: the loss, KL, the reward's mean, within-group spread and flat groups, the judge's calls
(and `train/judge_calls_total`, cumulative: the budget that compares runs), invalid rate, first-position rate,
and with `orders=both` its swap agreement and position-bias rate. With an `evaluator` (the synthetic world's
oracle), the oracle's score of the sampled answers (`train/oracle_reward`) and how often the judge's reward orders
two answers of a group as the oracle does (`train/judge_oracle_concordance`): a judge reward the policy learns to
please while the oracle's score stays put is reward hacking. Test: the oracle's score of greedy and sampled answers
before and after (`modules.answer_scoring`), as the DPO module reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from unified_reward.data.schema import PreferenceRecord
from unified_reward.data.tasks import judges_media
from unified_reward.encoding.chat import image_id, video_id
from unified_reward.encoding.packing import rope_index_owner
from unified_reward.encoding.pair_positions import answer_logit_inputs, attention_mask_for
from unified_reward.encoding.policy_pairs import encode_answer_groups, encode_policy_prompt
from unified_reward.judging.group_rewards import GroupRewardReading, GroupRewards, group_pairs
from unified_reward.judging.loading import load_judge
from unified_reward.judging.queries import JudgeReadings
from unified_reward.judging.text_generation import generate_token_ids
from unified_reward.losses.grpo import LOSS_TYPES, group_advantages, grpo_loss, token_logps
from unified_reward.models.export import save_vlm
from unified_reward.models.processor import VLMProcessor
from unified_reward.modules.answer_scoring import AnswerScoring
from unified_reward.modules.hooks import export_gathered, move_tensors, optimization, shard_with_reference
from unified_reward.modules.optimization import (
    OptimizerFactory,
    SchedulerFactory,
    adamw,
    vision_scaled_groups,
    warmup_cosine,
)
from unified_reward.modules.reference import build_reference

log = logging.getLogger(__name__)
GRPO_REFERENCES = ("adapter", "copy")


def reward_judge(spec: str | JudgeReadings, **options) -> JudgeReadings:
    """The judge a GRPO run is rewarded by: a judge object as is; `http(s)://...` the project's server there
    (`serving.client.ServedJudge`); anything else what `judging.loading.load_judge` reads (an export, `random`, a
    named judge such as `oracle`)."""
    if not isinstance(spec, str):
        return spec
    if spec.startswith(("http://", "https://")):
        from unified_reward.serving.client import JudgeClient, ServedJudge

        return ServedJudge(JudgeClient(spec, token=options.get("token")))
    options.pop("token", None)
    return load_judge(spec, **options)


def prompt_records(records: list[PreferenceRecord]) -> dict[str, Any] | None:
    """The collate of GRPO: the batch's questions (understanding records of either mode; their answers are not
    used), or None when the batch held none."""
    questions = [r for r in records if not judges_media(r.task)]
    return {"records": questions, "questions": questions} if questions else None


@contextmanager
def seeded_sampling(seed: int, step: int, device: torch.device):
    """torch's RNG (CPU, and the GPU in use) seeded by (seed, step) inside, and restored after: sampling depends on
    the step, not on what ran before it."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed * 1_000_003 + step)
        yield


def concordance(rewards: torch.Tensor, oracle: torch.Tensor) -> tuple[int, int]:
    """Of the pairs within each group that the oracle and the reward both order (no tie in either), how many they
    order alike; (alike, counted)."""
    alike = counted = 0
    for judged, truth in zip(rewards.tolist(), oracle.tolist(), strict=True):
        for i, j in group_pairs(len(judged)):
            a, b = judged[i] - judged[j], truth[i] - truth[j]
            if a == a and a != 0 and b != 0:  # a == a: not NaN
                counted += 1
                alike += (a > 0) == (b > 0)
    return alike, counted


class VLMGRPOModule(L.LightningModule):
    default_export_dir = "policy"  # callbacks.export writes export() here, under the run directory

    def __init__(
        self,
        processor: VLMProcessor,
        model: nn.Module | Callable[[VLMProcessor], nn.Module],
        *,
        judge: str | JudgeReadings | Callable[[], JudgeReadings] = "random",
        reward: str = "win_rate",
        orders: str = "both",
        invalid: str = "tie",
        group_size: int = 4,
        scale_rewards: bool = True,
        loss_type: str = "grpo",
        beta: float = 0.04,
        epsilon: float = 0.2,
        epsilon_high: float | None = None,
        temperature: float = 1.0,
        max_new_tokens: int = 24,
        reference: str = "adapter",
        sampling_seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        vision_lr_scale: float = 1.0,
        evaluator: Callable[[str, Any, str], Any] | None = None,
        generate_batch_size: int = 64,
        eval_samples: int = 0,
        eval_temperature: float = 1.0,
    ):
        super().__init__()
        if group_size < 2:
            raise ValueError(f"group_size must be at least 2 (advantages are relative to the group), got {group_size}")
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
        if reference not in GRPO_REFERENCES:
            raise ValueError(
                f"reference must be one of {GRPO_REFERENCES} (GRPO's answers are new every step, so no "
                f"reference log-probs can be precomputed), got {reference!r}"
            )
        self.save_hyperparameters(ignore=["processor", "model", "judge", "evaluator", "optimizer", "scheduler"])
        self.optimizer_factory = optimizer or adamw(lr=1e-6, weight_decay=0.0)
        self.scheduler_factory = scheduler or partial(warmup_cosine, warmup_ratio=0.0, min_lr_rate=1.0)
        self.processor = processor
        self.model = model if isinstance(model, nn.Module) else model(processor=processor)
        attention_mask_for(self.model, torch.ones(1, 1, 1, 1, dtype=torch.bool))  # fail now, not at step 1
        self.reference = build_reference(reference, self.model) if beta else None
        judge = judge() if callable(judge) and not isinstance(judge, JudgeReadings) else judge
        self.rewards = GroupRewards(
            reward_judge(judge), reward=reward, orders=orders, invalid=invalid, seed=sampling_seed
        )
        self.evaluator = evaluator
        self.answer_scoring = AnswerScoring.when_given(
            processor,
            evaluator,
            max_new_tokens=max_new_tokens,
            batch_size=generate_batch_size,
            samples=eval_samples,
            temperature=eval_temperature,
        )
        self.collate = prompt_records
        self.judge_calls_total = 0
        self._sharded = False
        self._rope: tuple[nn.Module | None] | None = None

    # ---- one step: sample, reward, learn ---------------------------------------------------------------

    def sample_groups(self, encoded: list) -> list[list[list[int]]]:
        """G answers per encoded prompt (`encode_policy_prompt`) from the current policy, as token ids with the end
        token where it was emitted."""
        hp = self.hparams
        was_training = self.model.training
        self.model.eval()
        with seeded_sampling(hp.sampling_seed, self.global_step, self.device):
            ids = generate_token_ids(
                self.model,
                self.processor,
                encoded,
                hp.max_new_tokens,
                batch_size=max(1, hp.generate_batch_size // hp.group_size),
                num_samples=hp.group_size,
                temperature=hp.temperature,
                # a media token in an answer would be read as an image that is not there
                suppress_tokens=[image_id(self.processor), video_id(self.processor)],
            )
        self.model.train(was_training)
        eos = self.processor.tokenizer.eos_token_id
        answers = [a + [eos] if len(a) < hp.max_new_tokens else a for a in ids]  # ended, or cut at the budget
        return [answers[i * hp.group_size : (i + 1) * hp.group_size] for i in range(len(encoded))]

    def judge_groups(self, records: list[PreferenceRecord], texts: list[list[str]]) -> GroupRewardReading:
        tasks = {r.task for r in records}
        if len(tasks) != 1:
            raise ValueError(f"a GRPO batch holds one task, got {sorted(tasks)} (data.tasks=[<one task>])")
        prompts, contexts = [r.prompt for r in records], [r.context for r in records]
        return self.rewards(tasks.pop(), prompts, contexts, texts, step=self.global_step)

    def answer_logps(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """(prompts, G, tokens) log-probabilities of each sampled answer token under `model`."""
        if "model_inputs" not in batch:
            if self._rope is None:
                self._rope = (rope_index_owner(model),)
            batch["model_inputs"] = answer_logit_inputs(model, batch, self._rope[0])
        inputs, keep, rows, index = batch["model_inputs"]
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
        return token_logps(logits[rows, index], batch["targets"])

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int):
        if batch is None or not batch["records"]:
            return None
        hp = self.hparams
        records = batch["records"]
        encoded = [encode_policy_prompt(self.processor, r) for r in records]  # for sampling and for the loss
        groups = self.sample_groups(encoded)
        decode = self.processor.tokenizer.batch_decode
        texts = [decode(g, skip_special_tokens=True) for g in groups]
        reading = self.judge_groups(records, texts)
        rewards = reading.rewards.to(self.device, torch.float32)
        kept = torch.isfinite(rewards)
        advantages = group_advantages(rewards, kept, scale=hp.scale_rewards)

        inputs = move_tensors(encode_answer_groups(self.processor, encoded, groups), self.device)
        logps = self.answer_logps(self.model, inputs).flatten(0, 1)
        mask = (inputs["target_mask"] * kept[:, :, None]).flatten(0, 1)
        reference = None
        if self.reference is not None:
            with torch.no_grad(), self.reference.model() as model:
                reference = self.answer_logps(model, inputs).flatten(0, 1)
        output = grpo_loss(
            logps,
            logps.detach(),
            reference,
            advantages.flatten(),
            mask,
            beta=hp.beta,
            epsilon=hp.epsilon,
            epsilon_high=hp.epsilon_high,
            loss_type=hp.loss_type,
        )
        self.judge_calls_total += reading.judge_calls
        metrics = {f"train/{k}": v for k, v in (output.metrics() | reading.metrics()).items()}
        metrics["train/judge_calls_total"] = float(self.judge_calls_total)
        metrics["train/answer_tokens"] = inputs["target_mask"].sum(-1).mean()
        eos = self.processor.tokenizer.eos_token_id
        metrics["train/truncated"] = torch.tensor([a[-1] != eos for g in groups for a in g]).float().mean()
        if self.evaluator is not None:
            metrics |= self._oracle_metrics(records, texts, reading.rewards)
        self.log("train/loss", output.loss, prog_bar=True, batch_size=len(records))
        self.log_dict(metrics, batch_size=len(records))
        return output.loss

    def _oracle_metrics(self, records, texts, rewards: torch.Tensor) -> dict[str, float]:
        """The oracle's score of the sampled answers, and how the judge's reward orders them against it."""
        oracle = torch.tensor(
            [
                [self.evaluator(r.prompt, r.context, t).fraction for t in group]
                for r, group in zip(records, texts, strict=True)
            ]
        )
        alike, counted = concordance(rewards, oracle)
        metrics = {"train/oracle_reward": float(oracle.mean())}
        if counted:
            metrics["train/judge_oracle_concordance"] = alike / counted
        return metrics

    def validation_step(self, batch, batch_idx) -> None:
        return None  # the test scores answers; a validation pass would sample and judge again

    def test_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        if batch is not None and self.answer_scoring is not None and batch["questions"]:
            self.answer_scoring.update(self.model, self.reference, batch["questions"])

    def on_test_epoch_end(self) -> None:
        if self.answer_scoring is not None:  # alike on every rank: each gathers every rank's rows
            self.log_dict(self.answer_scoring.metrics(), sync_dist=False)

    # ---- Lightning plumbing ----------------------------------------------------------------------------

    def configure_model(self) -> None:
        if not self._sharded:
            self._sharded = shard_with_reference(self, self.model, self.reference)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return move_tensors(batch, device)

    def on_fit_start(self) -> None:
        judge_model = getattr(self.rewards.judge, "model", None)  # an in-process learned judge: beside the policy
        if isinstance(judge_model, nn.Module):
            judge_model.to(self.device)

    def configure_optimizers(self):
        return optimization(self, vision_scaled_groups(self.model, self.hparams.vision_lr_scale))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["judge_calls_total"] = self.judge_calls_total

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.judge_calls_total = checkpoint.get("judge_calls_total", 0)

    def export(self, path: Path) -> None:
        """The policy as a Hugging Face folder (called on every rank by callbacks.export)."""
        export_gathered(self, self.model, lambda state: save_vlm(self.model, self.processor, path, state))
        if self.trainer.is_global_zero:
            log.info("policy exported to %s (model=<family> model.pretrained=%s loads it)", path, path)
