"""`BasePretrainModule`: pretrains a VLM on generic vision-language chat (describing, answering, verifying),
the way a real judge's base was pretrained before reward SFT, and exports it as a Hugging Face folder.

Loss: next-token cross-entropy on the answer tokens, plus an auxiliary loss of small heads that read each
image's attribute classes from the vision tower's tokens (the tower learns to see far faster that way than
through the language model's loss alone; experiments/judge_learnability). For the first `vision_steps`
steps only the heads' loss trains the tower (it learns to see before the language model learns to talk about
it), and the language model learns only the batch's text skills (`skills.TextLead`: plain texts, the steps
of a judge's rationale); the heads are not exported. Validation greedily describes held-out images and videos
and reports, per media kind and attribute, how often the description states the true value
(`val/perception/image/color`), using each example's own `check`.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from unified_reward.encoding.chat import encode_chat
from unified_reward.judging.text_generation import generate_texts
from unified_reward.models.export import save_vlm
from unified_reward.models.processor import VLMProcessor
from unified_reward.modules.hooks import move_tensors, optimization
from unified_reward.modules.optimization import (
    OptimizerFactory,
    SchedulerFactory,
    adamw,
    describe,
    vision_scaled_groups,
    warmup_cosine,
)
from unified_reward.modules.reward_sft import MODEL_INPUTS

log = logging.getLogger(__name__)


class AttributeHeads(nn.Module):
    """One small classifier per attribute over an image's visual tokens: flattened (where things are) plus
    max- and mean-pooled (what they are, wherever they are)."""

    def __init__(self, hidden: int, tokens: int, classes: dict[str, int], width: int = 128):
        super().__init__()
        self.hidden, self.tokens = hidden, tokens
        self.heads = nn.ModuleDict(
            {
                name: nn.Sequential(nn.Linear(hidden * (tokens + 2), width), nn.GELU(), nn.Linear(width, count))
                for name, count in classes.items()
            }
        )

    def forward(self, visual_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = visual_tokens.reshape(-1, self.tokens, self.hidden)
        features = torch.cat([tokens.flatten(1), tokens.amax(1), tokens.mean(1)], dim=-1)
        return {name: head(features) for name, head in self.heads.items()}


class BasePretrainModule(L.LightningModule):
    default_export_dir = "base"  # callbacks.export writes export() here, under the run directory

    def __init__(
        self,
        processor: VLMProcessor,
        model: nn.Module | Callable[[VLMProcessor], nn.Module],
        collate: Callable[..., Callable[[list], dict[str, Any]]],
        *,
        probe_classes: dict[str, dict[str, int]],
        probe_tokens: dict[str, int],
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        vision_lr_scale: float = 1.0,
        vision_steps: int = 0,
        vision_weight: float = 1.0,
        eval_max_new_tokens: int = 24,
        eval_skills: tuple[str, ...] = (),
    ):
        super().__init__()
        # the defaults of configs/module/base_pretrain.yaml, for modules built without Hydra
        self.optimizer_factory = optimizer or adamw(lr=1e-3, weight_decay=0.01)
        self.scheduler_factory = scheduler or partial(warmup_cosine, warmup_ratio=0.05, min_lr_rate=0.05)
        self.save_hyperparameters(ignore=["processor", "model", "collate", "optimizer", "scheduler"])
        self.processor = processor
        self.model = model if isinstance(model, nn.Module) else model(processor=processor)
        self.collate = collate(processor=processor)
        hidden = self.model.config.text_config.hidden_size
        self.heads = nn.ModuleDict(
            {kind: AttributeHeads(hidden, probe_tokens[kind], dict(classes)) for kind, classes in probe_classes.items()}
        )
        # per "<kind>/<attribute>" and "<kind>/exact": the share of held-out descriptions that state it right
        names = [f"{kind}/{name}" for kind, classes in probe_classes.items() for name in (*classes, "exact")]
        self.perception = nn.ModuleDict({name: MeanMetric() for name in names})
        # per skill other than describing: the share of held-out examples answered exactly (`val/skill/<name>`)
        self.skills = nn.ModuleDict({name: MeanMetric() for name in eval_skills})

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return move_tensors(batch, device)

    def _vision_loss(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """The attribute heads' cross-entropy on each probed image and video (`probe_image`, `probe_video`)."""
        losses = []
        for kind, heads in self.heads.items():
            probe = batch.get(f"probe_{kind}")
            if probe is None:
                continue
            visual = self.model.model.visual(probe["pixel_values"], grid_thw=probe["grid_thw"]).pooler_output
            count, expected = len(probe["grid_thw"]), self.hparams.probe_tokens[kind]
            if visual.shape[0] != count * expected:
                raise ValueError(
                    f"{visual.shape[0] // count} visual tokens per {kind}, but module.probe_tokens.{kind} is "
                    f"{expected}: set it to match the processor's image size (and the frames per video)"
                )
            for name, logits in heads(visual).items():
                target = probe["targets"][name]
                losses.append(nn.functional.cross_entropy(logits, target))
                accuracy = (logits.argmax(-1) == target).float().mean()
                self.log(f"train/probe_acc/{kind}/{name}", accuracy, batch_size=len(target))
        return sum(losses) if losses else None

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        vision = self._vision_loss(batch)
        loss = torch.zeros((), device=self.device)
        if vision is not None:
            self.log("train/vision_loss", vision, batch_size=len(batch["examples"]))
            loss = loss + self.hparams.vision_weight * vision
        # while the tower learns alone, the language model learns the text skills (the data's text lead)
        chat_batch = batch if self.global_step >= self.hparams.vision_steps else batch.get("text")
        if chat_batch is not None:
            inputs = {k: chat_batch[k] for k in MODEL_INPUTS if k in chat_batch}
            chat = self.model(**inputs, use_cache=False).loss
            self.log("train/chat_loss", chat, prog_bar=True, batch_size=len(batch["examples"]))
            loss = loss + chat
        self.log("train/loss", loss, batch_size=len(batch["examples"]))
        return loss

    def configure_optimizers(self):
        groups = vision_scaled_groups(self.model, self.hparams.vision_lr_scale)
        groups.append({"params": list(self.heads.parameters()), "lr_scale": self.hparams.vision_lr_scale})
        return optimization(self, groups)

    # ---- validation: describe held-out media, check each attribute ------------------------------------

    def describe(self, examples: list) -> list[str]:
        encoded = [encode_chat(self.processor, e.parts(), None) for e in examples]
        return generate_texts(
            self.model, self.processor, encoded, self.hparams.eval_max_new_tokens, batch_size=len(encoded)
        )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        examples = batch["examples"]
        for example, text in zip(examples, self.describe(examples), strict=True):
            exact = float(text.strip() == example.answer)
            if example.skill != "describe":
                if example.skill not in self.skills:
                    raise ValueError(f"held-out {example.skill!r} examples, but module.eval_skills lacks it")
                self.skills[example.skill].update(exact)
                continue
            for attribute, correct in example.check(text).items():
                self.perception[f"{example.kind}/{attribute}"].update(float(correct))
            self.perception[f"{example.kind}/exact"].update(exact)

    def on_validation_epoch_end(self) -> None:
        metrics = {}
        measured = [("perception", self.perception), ("skill", self.skills)]
        for group, shares in measured:
            for name, share in sorted(shares.items()):
                value = float(share.compute())  # every rank's examples (a collective: every rank computes each)
                share.reset()
                if not math.isnan(value):  # NaN: no example of this kind anywhere
                    metrics[f"val/{group}/{name}"] = value
        attributes = [v for k, v in metrics.items() if k.startswith("val/perception/") and not k.endswith("/exact")]
        if attributes:
            metrics["val/perception/min"] = float(min(attributes))
        self.log_dict(metrics)

    # ---- export ------------------------------------------------------------------------------------------

    def export(self, path: Path) -> None:
        """The base as a Hugging Face folder with its card (called on every rank by callbacks.export)."""
        if not self.trainer.is_global_zero:
            return
        save_vlm(self.model, self.processor, path)
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
        settings = dict(self.hparams) | {
            "optimizer": describe(self.optimizer_factory),
            "scheduler": describe(self.scheduler_factory),
        }
        (path / "README.md").write_text(model_card(self.model, path, settings, self.global_step, metrics))
        log.info("base exported to %s", path)


def model_card(model: nn.Module, path: Path, hparams: dict, steps: int, metrics: dict[str, float]) -> str:
    """The card of an exported base: how it was made and what it sees, as measured at the end of training."""
    parameters = sum(p.numel() for p in model.parameters())
    size_mb = sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 2**20
    perception = "\n".join(
        f"| {k.removeprefix('val/perception/')} | {v:.3f} |" for k, v in sorted(metrics.items()) if "perception" in k
    )
    skills = "\n".join(
        f"| {k.removeprefix('val/skill/')} | {v:.3f} |" for k, v in sorted(metrics.items()) if "/skill/" in k
    )
    losses = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("train/") and "loss" in k)
    settings = ", ".join(f"{k}={v}" for k, v in sorted(hparams.items()) if k != "probe_classes")
    return f"""---
library_name: transformers
tags: [qwen2_vl, tiny, synthetic, unified-reward]
---
# Tiny Qwen2-VL base (UnifiedReward-Lightning)

A tiny `Qwen2VLForConditionalGeneration` ({parameters / 1e6:.2f} M parameters, {size_mb:.1f} MB here) pretrained by
this project's own recipe on generic vision-language skills of its synthetic world: describing one or two
images or videos, answering questions about them, yes/no verification of one attribute, and, on plain texts,
the generic steps a reasoning judge's rationale is made of (copying stated values out of a sentence, telling
whether two words are the same, counting the yes in a list, comparing two texts value by value, comparing two
numbers). Never on judge data (no candidates, verdicts or scores): reward SFT (`experiment=reward_joint`) is
what teaches judging. Load it like any hub model: `model=qwen2_vl_tiny_base` (or `from_pretrained` on this folder).

- Command: `{" ".join(["python", *sys.argv])}`
- Steps: {steps} ({hparams["vision_steps"]} of them training the vision tower alone, through attribute heads that
  are not exported, while the language model learns only the text skills: the data's text lead,
  `skills.TextLead`); settings: {settings}
- Data: fresh scenes and texts every step (`unified_reward.synthetic.skills`: skills and their weights), 64 px
  images and 8-frame videos, 16 visual tokens per image (112 x 112 after resizing), videos through mp4 as the
  world's shards hold them.
- Final training losses: {losses}

## Measured perception

Greedy descriptions of held-out images and videos, each attribute read from the generated text with the
oracle's reader (`scene.read_attributes`) and compared with the scene (`exact`: the whole sentence):

| media / attribute | accuracy |
|---|---|
{perception}

## Measured text skills

Greedy answers to held-out examples of each text skill, the share that equals the expected answer exactly:

| skill | exact |
|---|---|
{skills}
"""
