"""`FlowGRPOModule`: online GRPO (Flow-GRPO) for a flow-matching text-to-image generator, the judge giving the reward.

Each training step, for each caption of the batch:
1. G images are sampled with the SDE sampler (`losses.flow_grpo`: the flow ODE with injected noise `eta`, the same
   marginals), `sample_steps` steps, the starting noise and every step's noise seeded by (`sampling_seed`, step);
   every step's input, output and Gaussian log-probability are kept;
2. the judge rewards the group (`judging.group_rewards.GroupRewards`: Pref-GRPO win rates by default, or scores);
   the reward spread, the judge's calls, invalid rate and position bias are logged as in `VLMGRPOModule`;
3. group-normalised advantages, then for every step the clipped objective on the step's log-probability under the
   current denoiser, plus `beta` times the KL of its Gaussian to the reference's (the denoiser with its LoRA adapter
   off, or a frozen copy).
One optimisation step per sampled batch (old = current: the clip is inactive). Classifier-free guidance is not used
in sampling here (its log-probability is that of the guided mean; kept out for one model pass per step).
With an `evaluator` (the synthetic world's oracle, `score_generated_sample`), the oracle's 1-5 score of the samples
is logged beside the judge's reward (`train/oracle_reward`, `train/judge_oracle_concordance`), and the test reports
the oracle's mean score of ODE samples of held-out captions before and after, from the same noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from unified_reward.data.schema import PreferenceRecord
from unified_reward.generation.noise import NoiseObjective
from unified_reward.generation.sampling import PixelSampler, to_uint8
from unified_reward.judging.group_rewards import GroupRewards
from unified_reward.judging.queries import JudgeReadings
from unified_reward.losses.flow_grpo import flow_grpo_step_loss, gaussian_log_prob, sde_step_mean_std, step_kl
from unified_reward.losses.grpo import group_advantages
from unified_reward.models.conditioning import CaptionEmbeddings, CaptionEncoder
from unified_reward.models.diffusion import denoiser_kind, predict
from unified_reward.modules.diffusion_dpo import hash_caption, save_denoiser
from unified_reward.modules.hooks import optimization
from unified_reward.modules.metrics import CollectedRows, after_before_metrics
from unified_reward.modules.optimization import OptimizerFactory, SchedulerFactory, adamw, warmup_cosine
from unified_reward.modules.reference import build_reference
from unified_reward.modules.vlm_grpo import concordance, reward_judge, seeded_sampling

log = logging.getLogger(__name__)


def caption_records(records: list[PreferenceRecord]) -> dict[str, Any] | None:
    """The collate of Flow-GRPO: the batch's image-generation captions (their images are not used)."""
    captions = [r.prompt for r in records if r.task == "image_generation"]
    return {"captions": captions} if captions else None


class FlowGRPOModule(L.LightningModule):
    default_export_dir = "generator"

    def __init__(
        self,
        denoiser: nn.Module | Callable[[], nn.Module],
        caption_encoder: CaptionEncoder,
        objective: NoiseObjective,
        *,
        judge: str | JudgeReadings = "random",
        reward: str = "win_rate",
        orders: str = "both",
        invalid: str = "tie",
        group_size: int = 4,
        sample_size: int = 32,
        sample_steps: int = 10,
        eta: float = 0.7,
        beta: float = 0.04,
        epsilon: float = 1e-4,
        scale_rewards: bool = True,
        reference: str = "adapter",
        sampling_seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        evaluator: Callable[[str, np.ndarray], float] | None = None,
        eval_seed: int = 1234,
        eval_samples_per_caption: int = 1,
    ):
        super().__init__()
        if objective.prediction != "flow":
            raise ValueError(
                f"Flow-GRPO needs a flow-matching generator (model=t2i_sd3_tiny), got {objective.prediction}"
            )
        if group_size < 2:
            raise ValueError(f"group_size must be at least 2, got {group_size}")
        self.save_hyperparameters(
            ignore=["denoiser", "caption_encoder", "objective", "judge", "evaluator", "optimizer", "scheduler"]
        )
        self.optimizer_factory = optimizer or adamw(lr=1e-4, weight_decay=0.0)
        self.scheduler_factory = scheduler or partial(warmup_cosine, warmup_ratio=0.0, min_lr_rate=1.0)
        self.denoiser = denoiser if isinstance(denoiser, nn.Module) else denoiser()
        if denoiser_kind(self.denoiser) != "sd3":
            raise ValueError("Flow-GRPO samples images from a flow transformer (model=t2i_sd3_tiny)")
        self.caption_encoder, self.objective, self.evaluator = caption_encoder, objective, evaluator
        self.reference = build_reference(reference, self.denoiser) if beta else None
        self.rewards = GroupRewards(
            reward_judge(judge), reward=reward, orders=orders, invalid=invalid, seed=sampling_seed
        )
        self.sampler = PixelSampler(caption_encoder, objective, sample_size, None, sample_steps, 1.0, None)
        self.scores = CollectedRows(width=2)  # test: the evaluator's score after, before
        self.collate = caption_records
        self.judge_calls_total = 0

    # ---- sampling with log-probabilities -----------------------------------------------------------------

    def _sigmas(self) -> list[float]:
        scheduler = self.objective.sampler()
        scheduler.set_timesteps(self.hparams.sample_steps)
        return [float(s) for s in scheduler.sigmas]

    def _velocity(self, model: nn.Module, x: Tensor, sigma: float, text: CaptionEmbeddings) -> Tensor:
        timesteps = torch.full((x.shape[0],), sigma * self.objective.num_train_timesteps, device=x.device)
        return predict(model, x, timesteps, text)

    @torch.no_grad()
    def sample_trajectories(self, captions: Sequence[str]) -> dict[str, Any]:
        """G SDE samples per caption: states (steps + 1, n, C, H, W) and each step's log-probability (steps, n)."""
        hp = self.hparams
        repeated = [c for c in captions for _ in range(hp.group_size)]
        text = self.caption_encoder(repeated)
        sigmas = self._sigmas()
        shape = (len(repeated), self.denoiser.config.in_channels, hp.sample_size, hp.sample_size)
        was_training = self.denoiser.training
        self.denoiser.eval()
        with seeded_sampling(hp.sampling_seed, self.global_step, self.device):
            x = torch.randn(shape, device=self.device)
            states, log_probs = [x], []
            for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
                velocity = self._velocity(self.denoiser, x, sigma, text)
                mean, std = sde_step_mean_std(x, velocity, sigma, sigma_next, eta=hp.eta, sigma_cap=sigmas[1])
                x = mean + std * torch.randn_like(mean)
                states.append(x)
                log_probs.append(gaussian_log_prob(x, mean, std))
        self.denoiser.train(was_training)
        return {"states": torch.stack(states), "log_probs": torch.stack(log_probs), "text": text, "sigmas": sigmas}

    # ---- one step --------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int):
        if batch is None:
            return None
        hp = self.hparams
        captions = batch["captions"]
        trajectory = self.sample_trajectories(captions)
        pixels = to_uint8(trajectory["states"][-1])
        groups = [
            [Image.fromarray(p) for p in pixels[i * hp.group_size : (i + 1) * hp.group_size]]
            for i in range(len(captions))
        ]
        reading = self.rewards("image_generation", captions, [None] * len(captions), groups, step=self.global_step)
        advantages = group_advantages(reading.rewards.float(), scale=hp.scale_rewards).flatten().to(self.device)
        kept = torch.isfinite(reading.rewards).flatten().to(self.device)
        if not kept.any():  # every judgment dropped (invalid=drop): nothing to learn from this batch
            return None

        sigmas, text, states = trajectory["sigmas"], trajectory["text"], trajectory["states"]
        loss, totals = 0.0, {}
        steps = len(sigmas) - 1
        for k in range(steps):
            x, target = states[k], states[k + 1]
            velocity = self._velocity(self.denoiser, x, sigmas[k], text)
            mean, std = sde_step_mean_std(x, velocity, sigmas[k], sigmas[k + 1], eta=hp.eta, sigma_cap=sigmas[1])
            kl = None
            if self.reference is not None:
                with torch.no_grad(), self.reference.model() as reference:
                    reference_velocity = self._velocity(reference, x, sigmas[k], text)
                    reference_mean, _ = sde_step_mean_std(
                        x, reference_velocity, sigmas[k], sigmas[k + 1], eta=hp.eta, sigma_cap=sigmas[1]
                    )
                kl = step_kl(mean, reference_mean, std)[kept]
            step_loss, metrics = flow_grpo_step_loss(
                gaussian_log_prob(target, mean, std)[kept],
                trajectory["log_probs"][k][kept],
                advantages[kept],
                kl,
                beta=hp.beta,
                epsilon=hp.epsilon,
            )
            loss = loss + step_loss / steps
            for name, value in metrics.items():
                totals[name] = totals.get(name, 0.0) + value / steps
        self.judge_calls_total += reading.judge_calls
        logged = {f"train/{k}": v for k, v in (totals | reading.metrics()).items()}
        logged["train/judge_calls_total"] = float(self.judge_calls_total)
        if self.evaluator is not None:
            oracle = torch.tensor(
                [
                    [self.evaluator(c, np.asarray(image)) for image in group]
                    for c, group in zip(captions, groups, strict=True)
                ]
            )
            alike, counted = concordance(reading.rewards, oracle)
            logged["train/oracle_reward"] = float(oracle.mean())
            if counted:
                logged["train/judge_oracle_concordance"] = alike / counted
        self.log("train/loss", loss, prog_bar=True, batch_size=len(captions))
        self.log_dict(logged, batch_size=len(captions))
        return loss

    # ---- test: ODE samples of held-out captions before and after -----------------------------------------

    def validation_step(self, batch, batch_idx) -> None:
        return None

    def test_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        if batch is None or self.evaluator is None:
            return
        captions = batch["captions"]
        k = self.hparams.eval_samples_per_caption
        seeds = [self.hparams.eval_seed + hash_caption(c) + 100_003 * j for c in captions for j in range(k)]
        repeated = [c for c in captions for _ in range(k)]

        def means(use_reference: bool) -> list[float]:
            with self.reference.model() if use_reference else nullcontext(self.denoiser) as model:
                samples = to_uint8(self.sampler(model, repeated, seeds))
            scores = [self.evaluator(c, s) for c, s in zip(repeated, samples, strict=True)]
            return [float(np.mean(scores[i * k : (i + 1) * k])) for i in range(len(captions))]

        after = means(False)
        before = means(True) if self.reference is not None else [float("nan")] * len(after)
        self.scores.update(list(zip(after, before, strict=True)))

    def on_test_epoch_end(self) -> None:
        if self.evaluator is None:
            return
        rows = self.scores.gathered()
        if len(rows):
            self.log_dict({"test/score_count": float(len(rows))} | after_before_metrics("test", ("score",), rows))

    # ---- plumbing --------------------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        judge_model = getattr(self.rewards.judge, "model", None)
        if isinstance(judge_model, nn.Module):
            judge_model.to(self.device)

    def configure_optimizers(self):
        return optimization(self, [p for p in self.denoiser.parameters() if p.requires_grad])

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # captions stay on the host

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["judge_calls_total"] = self.judge_calls_total

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.judge_calls_total = checkpoint.get("judge_calls_total", 0)

    def export(self, path: Path) -> None:
        if self.trainer.is_global_zero:
            save_denoiser(self.denoiser, path)
            log.info("denoiser exported to %s (load it with model.pretrained=%s)", path, path)
