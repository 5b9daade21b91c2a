"""`DiffusionDPOModule`: Diffusion-DPO of a text-to-image or text-to-video denoiser.

`loss="dpo"` (default): chosen and rejected of each pair share one noise and one timestep; the
per-sample errors of the trained denoiser and of the reference (the same denoiser with its LoRA
adapter disabled, or a frozen copy for full fine-tuning) give the loss of
`losses.diffusion_dpo`. `loss="denoise"`: the plain diffusion loss on the chosen samples, used to
first train a generator (optionally with caption dropout for classifier-free guidance).

Test samples `eval_samples_per_caption` candidates per held-out caption from the trained denoiser and, for DPO,
from the reference too, with the same noise seeds before and after (common random numbers: the gain compares each
caption's samples from the same starting noise), and reports the `evaluator`'s mean score of both
(`test/score`, `test/score_reference`) and the paired standard error of the gain over the captions (each caption's
mean over its samples): the before/after of DPO in one run.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from unified_reward.data.tasks import media_kind_of
from unified_reward.encoding.generation_pairs import GenerationPairCollator
from unified_reward.generation.noise import NoiseObjective
from unified_reward.generation.sampling import PixelSampler, to_uint8
from unified_reward.losses.diffusion_dpo import (
    denoise_loss,
    diffusion_dpo_loss,
    per_sample_error,
    shared_noise_and_timesteps,
    split_pair_errors,
)
from unified_reward.models.adapters import has_adapter
from unified_reward.models.conditioning import CaptionEmbeddings, CaptionEncoder, LatentCodec
from unified_reward.models.diffusion import VIDEO_KINDS, denoiser_kind, predict
from unified_reward.modules.hooks import move_tensors, optimization
from unified_reward.modules.metrics import CollectedRows, after_before_metrics
from unified_reward.modules.optimization import (
    OptimizerFactory,
    SchedulerFactory,
    adamw,
    warmup_cosine,
)
from unified_reward.modules.reference import build_reference, upgrade_copy_keys

log = logging.getLogger(__name__)
Evaluator = Callable[[str, np.ndarray], float]


class DiffusionDPOModule(L.LightningModule):
    default_export_dir = "generator"  # callbacks.export writes export() here, under the run directory

    def __init__(
        self,
        denoiser: nn.Module | Callable[[], nn.Module],
        caption_encoder: CaptionEncoder,
        objective: NoiseObjective,
        *,
        latent_codec: LatentCodec | None = None,
        task: Literal["image_generation", "video_generation"] = "image_generation",
        sample_size: int = 32,
        num_frames: int | None = None,
        loss: Callable[..., Any] | None = None,
        reference: Literal["adapter", "copy"] = "adapter",
        caption_dropout: float = 0.0,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        sample_steps: int = 25,
        guidance_scale: float = 1.0,
        evaluator: Evaluator | None = None,
        eval_seed: int = 1234,
        eval_samples_per_caption: int = 1,
    ):
        super().__init__()
        if eval_samples_per_caption < 1:
            raise ValueError(f"eval_samples_per_caption must be >= 1, got {eval_samples_per_caption}")
        # the defaults of configs/module/diffusion_dpo.yaml, for modules built without Hydra
        self.optimizer_factory = optimizer or adamw(lr=1e-4, weight_decay=0.0)
        self.scheduler_factory = scheduler or partial(warmup_cosine, warmup_ratio=0.0, min_lr_rate=1.0)
        self.save_hyperparameters(
            ignore=[
                "denoiser",
                "caption_encoder",
                "objective",
                "latent_codec",
                "evaluator",
                "loss",
                "optimizer",
                "scheduler",
            ]
        )
        if reference not in ("adapter", "copy"):
            raise ValueError(f"reference must be adapter or copy, got {reference!r}")
        self.denoiser = denoiser if isinstance(denoiser, nn.Module) else denoiser()
        self.kind = denoiser_kind(self.denoiser)
        is_video = self.kind in VIDEO_KINDS
        if is_video != (media_kind_of(task) == "video") or is_video != (num_frames is not None):
            raise ValueError(
                f"a {self.kind} denoiser makes {'videos' if is_video else 'images'}: task={task}, "
                f"num_frames={num_frames} do not match (video kinds need num_frames, image kinds none)"
            )
        self.caption_encoder = caption_encoder
        self.latent_codec = latent_codec
        self.objective = objective
        self.evaluator = evaluator
        self.sampler = PixelSampler(
            caption_encoder, objective, sample_size, num_frames, sample_steps, guidance_scale, latent_codec
        )
        # configs/module/loss: diffusion_dpo (the pair loss, with its beta) or denoise (the chosen samples only)
        self.loss = loss or partial(diffusion_dpo_loss, beta=5000.0)
        self.reference = build_reference(reference, self.denoiser) if self.uses_reference else None
        self.collate = GenerationPairCollator(task, sample_size, num_frames)
        self.skipped_records: Counter[str] = Counter()  # ties and point records the collator left out
        self.scores = CollectedRows(width=2)  # the evaluator's score of test samples: after, before

    # ---- the two losses ----------------------------------------------------------------------------------

    def _reference_predict(self, noisy: Tensor, timesteps: Tensor, text: CaptionEmbeddings) -> Tensor:
        with torch.no_grad(), self.reference.model() as model:
            return predict(model, noisy, timesteps, text)

    def _model_space(self, pixels: Tensor) -> Tensor:
        return pixels if self.latent_codec is None else self.latent_codec.encode(pixels)

    def dpo_step(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        chosen, rejected = self._model_space(batch["chosen"]), self._model_space(batch["rejected"])
        pairs = chosen.shape[0]
        noise = torch.randn(chosen.shape, generator=generator).to(chosen)
        timesteps = self.objective.draw_timesteps(pairs, chosen.device, generator)
        noise, timesteps = shared_noise_and_timesteps(noise, timesteps)
        clean = torch.cat([chosen, rejected])
        noisy = self.objective.noisy(clean, noise, timesteps)
        target = self.objective.target(clean, noise, timesteps)
        text = self.caption_encoder(list(batch["captions"]) * 2)
        model_errors = per_sample_error(predict(self.denoiser, noisy, timesteps, text), target)
        reference_errors = per_sample_error(self._reference_predict(noisy, timesteps, text), target)
        model_w, model_l = split_pair_errors(model_errors)
        reference_w, reference_l = split_pair_errors(reference_errors)
        out = self.loss(model_w, model_l, reference_w, reference_l)
        return {
            "loss": out.loss,
            "implicit_accuracy": out.implicit_accuracy,
            "model_error/chosen": model_w.mean(),
            "model_error/rejected": model_l.mean(),
            "reference_error/chosen": reference_w.mean(),
            "reference_error/rejected": reference_l.mean(),
        }

    def denoise_step(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        clean = self._model_space(batch["chosen"])
        captions = list(batch["captions"])
        if self.training and self.hparams.caption_dropout > 0:
            drop = torch.rand(len(captions), generator=generator) < self.hparams.caption_dropout
            captions = ["" if d else c for c, d in zip(captions, drop.tolist(), strict=True)]
        noise = torch.randn(clean.shape, generator=generator).to(clean)
        timesteps = self.objective.draw_timesteps(clean.shape[0], clean.device, generator)
        noisy = self.objective.noisy(clean, noise, timesteps)
        prediction = predict(self.denoiser, noisy, timesteps, self.caption_encoder(captions))
        return {"loss": self.loss(prediction, self.objective.target(clean, noise, timesteps))}

    def _step(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return self.dpo_step(batch, generator) if self.uses_reference else self.denoise_step(batch, generator)

    @property
    def uses_reference(self) -> bool:
        return getattr(self.loss, "func", self.loss) is not denoise_loss  # the plain loss reads chosen samples only

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int):
        if batch is None:
            return None
        self.skipped_records.update(batch.get("skipped", {}))
        if not batch["records"]:  # ties only: nothing to train on (counted)
            return None
        metrics = self._step(batch)
        size = len(batch["captions"])
        for reason, count in self.skipped_records.items():
            self.log(f"train/skipped/{reason}", float(count), batch_size=1)
        self.log("train/loss", metrics["loss"], prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in metrics.items() if k != "loss"}, batch_size=size)
        return metrics["loss"]

    def configure_optimizers(self):
        return optimization(self, self.denoiser.parameters())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        upgrade_copy_keys(checkpoint, "reference_copy.")

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return move_tensors(batch, device)

    # ---- evaluation ------------------------------------------------------------------------------------

    def sample(self, captions: Sequence[str], seeds: Sequence[int], *, use_reference: bool = False) -> Tensor:
        """Pixel samples in [-1, 1] of the trained denoiser (or of the reference), one seed per caption."""
        with self.reference.model() if use_reference else nullcontext(self.denoiser) as model:
            return self.sampler(model, captions, seeds)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.sampler.shape(self.denoiser)

    def _evaluate(self, batch: dict[str, Any] | None, split: str, batch_idx: int) -> None:
        if batch is None:
            return
        if batch["records"]:
            # fixed noise per batch, so validation losses of different steps are comparable
            generator = torch.Generator().manual_seed(self.hparams.eval_seed + batch_idx)
            metrics = self._step(batch, generator)
            size = len(batch["captions"])
            self.log_dict({f"{split}/{k}": v for k, v in metrics.items()}, batch_size=size, sync_dist=True)
        if self.evaluator is None or split != "test":
            return
        captions = batch["eval_captions"]  # ties too: every held-out caption, whichever pairs a judge kept
        k = self.hparams.eval_samples_per_caption
        # the same seeds before and after, and sample j of a caption is the same whatever k is
        seeds = [self.hparams.eval_seed + hash_caption(c) + 100_003 * j for c in captions for j in range(k)]
        repeated = [c for c in captions for _ in range(k)]

        def caption_means(use_reference: bool) -> list[float]:
            samples = to_uint8(self.sample(repeated, seeds, use_reference=use_reference))
            scores = [self.evaluator(c, s) for c, s in zip(repeated, samples, strict=True)]
            return [float(np.mean(scores[i * k : (i + 1) * k])) for i in range(len(captions))]

        scores = caption_means(False)
        references = caption_means(True) if self.reference is not None else [float("nan")] * len(scores)
        self.scores.update(list(zip(scores, references, strict=True)))

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", batch_idx)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test", batch_idx)

    def on_test_epoch_end(self) -> None:
        if self.evaluator is None:  # nothing was scored (alike on every rank)
            return
        rows = self.scores.gathered()  # every rank's: (after, before) per caption, before NaN for loss=denoise
        if len(rows):
            metrics = {"test/score_count": float(len(rows))} | after_before_metrics("test", ("score",), rows)
            self.log_dict(metrics, sync_dist=False)

    # ---- export ----------------------------------------------------------------------------------------

    def export(self, path: Path) -> None:
        """The denoiser as a pipeline-style folder (called on every rank by callbacks.export)."""
        if self.trainer.is_global_zero:
            save_denoiser(self.denoiser, path)
            log.info("denoiser exported to %s (load it with model.pretrained=%s)", path, path)


def hash_caption(caption: str) -> int:
    """A seed offset from the caption text that is stable across processes (Python's hash is not)."""
    import zlib

    return zlib.crc32(caption.encode()) % 100_000


def save_denoiser(denoiser: nn.Module, path: str | Path) -> None:
    """A pipeline-style folder (`unet/` or `transformer/`) that `build_denoiser(pretrained=path)` loads;
    a LoRA denoiser is saved with its adapter merged into the weights."""
    subfolder = "transformer" if denoiser_kind(denoiser) == "sd3" else "unet"
    if has_adapter(denoiser):
        from peft.tuners.tuners_utils import BaseTunerLayer

        merged = copy.deepcopy(denoiser)
        for name, module in list(merged.named_modules()):
            if isinstance(module, BaseTunerLayer):
                module.merge()
                parent, _, child = name.rpartition(".")
                setattr(merged.get_submodule(parent) if parent else merged, child, module.get_base_layer())
        denoiser = merged
    denoiser.save_pretrained(Path(path) / subfolder)
