"""`RewardSFTModule`: generative SFT of the unified judge on all tasks and modes.

Training is next-token cross-entropy on the judge's answer tokens only. Validation and test judge
every held-out record with the judge API (one forward, `scoring.Judge`) and report, per
(task, mode) stream: pair accuracy (the argmax of first / second / tie against the label, so ties
count only when predicted as ties), point-score MAE and Spearman rank correlation of the expected
score; test also greedily generates each answer and parses it, reporting the generative accuracy
and the invalid-answer rate. Metric names: `val/acc/image_generation_pair`, `test/mae/...`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.regression import SpearmanCorrCoef

from unified_reward.data.collators import JudgeCollator
from unified_reward.data.schema import MODES, TASKS, PreferenceRecord, VideoClip
from unified_reward.models.builders import VLMProcessor
from unified_reward.prompts.templates import load_templates
from unified_reward.scoring import VERDICTS, Judge, JudgeQuery

log = logging.getLogger(__name__)
MODEL_INPUTS = (
    "input_ids",
    "attention_mask",
    "labels",
    "pixel_values",
    "image_grid_thw",
    "pixel_values_videos",
    "video_grid_thw",
    "mm_token_type_ids",
)


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class RewardSFTModule(L.LightningModule):
    def __init__(
        self,
        processor: VLMProcessor,
        model: nn.Module | Callable[[VLMProcessor], nn.Module],
        *,
        templates: str | None = None,
        lr: float = 2.5e-6,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        min_lr_ratio: float = 0.0,
        max_length: int = 4096,
        train_rationale: bool = False,
        judge_batch_size: int = 16,
        test_generate: bool = True,
        generate_max_new_tokens: int = 16,
        logged_examples: int = 4,
        export_dir: str | None = "judge",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["processor", "model"])
        self.processor = processor
        self.model = model if isinstance(model, nn.Module) else model(processor=processor)
        self.templates = load_templates(templates)
        self.collate = JudgeCollator(processor, self.templates, max_length=max_length, train_rationale=train_rationale)
        self.judge = Judge(self.model, processor, self.templates, batch_size=judge_batch_size, max_length=max_length)
        self.metrics = nn.ModuleDict()
        for split in ("val", "test"):
            for task in TASKS:
                self.metrics[f"{split}_acc_{task}_pair"] = MeanMetric()
                self.metrics[f"{split}_mae_{task}_point"] = MeanMetric()
                self.metrics[f"{split}_spearman_{task}_point"] = SpearmanCorrCoef()
                for mode in MODES:
                    self.metrics[f"{split}_invalid_{task}_{mode}"] = MeanMetric()
                    self.metrics[f"{split}_genscore_{task}_{mode}"] = MeanMetric()  # gen acc (pair) / gen MAE (point)
        self._seen: set[str] = set()

    # ---- training --------------------------------------------------------------------------------------

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        if batch is None:
            return None
        # records (frozen dataclasses with media) stay on the host; the judge moves what it encodes
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
        return self.model(**inputs, use_cache=False).loss

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int):
        if batch is None:  # every sample of the batch was too long and skipped (counted by the collator)
            return None
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["records"]))
        self.log("train/skipped_too_long", float(self.collate.skipped_too_long), batch_size=1)
        return loss

    def configure_optimizers(self):
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, int(self.hparams.warmup_ratio * total))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, total, warmup, self.hparams.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ---- evaluation ------------------------------------------------------------------------------------

    def validation_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        self._evaluate(batch, "val", batch_idx)

    def test_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        self._evaluate(batch, "test", batch_idx)

    def _evaluate(self, batch: dict[str, Any] | None, split: str, batch_idx: int) -> None:
        if batch is None:
            return
        records: list[PreferenceRecord] = batch["records"]
        self.log(f"{split}/loss", self._loss(batch), batch_size=len(records), sync_dist=True)
        queries = [JudgeQuery.of(r) for r in records]
        readings = self.judge.answer_probabilities(queries)
        for record, reading in zip(records, readings, strict=True):
            self._update_one_forward(split, record, reading)
        if split == "test" and self.hparams.test_generate:
            answers = self.judge.generate_and_parse(queries, self.hparams.generate_max_new_tokens)
            for record, answer in zip(records, answers, strict=True):
                self._update_generated(split, record, answer)
        if batch_idx == 0 and self.hparams.logged_examples:
            count = self.hparams.logged_examples
            self._log_examples(split, records[:count], readings[:count])

    def _update_one_forward(self, split: str, record: PreferenceRecord, reading: dict) -> None:
        if record.mode == "pair":
            predicted = max(VERDICTS, key=lambda v: reading.get(v, 0.0))
            self.metrics[f"{split}_acc_{record.task}_pair"].update(float(predicted == record.label))
        else:
            expected = sum(score * p for score, p in reading.items())
            self.metrics[f"{split}_mae_{record.task}_point"].update(abs(expected - record.label.score))
            self.metrics[f"{split}_spearman_{record.task}_point"].update(
                torch.tensor([expected], device=self.device), torch.tensor([record.label.score], device=self.device)
            )

    def _update_generated(self, split: str, record: PreferenceRecord, answer) -> None:
        self.metrics[f"{split}_invalid_{record.task}_{record.mode}"].update(float(answer is None))
        if answer is None:
            return
        if record.mode == "pair":
            self.metrics[f"{split}_genscore_{record.task}_pair"].update(float(answer == record.label))
        else:
            self.metrics[f"{split}_genscore_{record.task}_point"].update(abs(answer - record.label.score))

    def _included_streams(self) -> set[str] | None:
        """The streams the datamodule reads (the same on every rank, so metric syncs stay in step)."""
        weights = getattr(getattr(self.trainer, "datamodule", None), "weights", None)
        return {name for name, weight in weights.items() if weight > 0} if weights else None

    def _log_epoch(self, split: str) -> None:
        values: dict[str, float] = {}
        included = self._included_streams()
        for key, metric in self.metrics.items():
            _, kind, *stream = key.split("_")
            name = "_".join(stream)
            if not key.startswith(split + "_") or (name not in included if included else not metric.update_called):
                continue
            if kind in ("invalid", "genscore") and not (split == "test" and self.hparams.test_generate):
                continue
            value = float(metric.compute()) if kind != "spearman" or _enough(metric) else float("nan")
            metric.reset()
            label = {"genscore": "gen_acc" if name.endswith("pair") else "gen_mae"}.get(kind, kind)
            values[f"{split}/{label}/{name}"] = value
        pair_accuracies = [v for k, v in values.items() if k.startswith(f"{split}/acc/")]
        if pair_accuracies:
            values[f"{split}/acc/mean"] = float(np.nanmean(pair_accuracies))
        if values:
            self.log_dict(values, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _log_examples(self, split: str, records: list[PreferenceRecord], readings: list[dict]) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_text") or not self.trainer.is_global_zero:
            return
        for i, (record, reading) in enumerate(zip(records, readings, strict=True)):
            judged = ", ".join(f"{k}: {v:.2f}" for k, v in reading.items())
            label = record.label if isinstance(record.label, str) else f"{record.label.score:g}"
            candidates = " | ".join(c for c in record.candidates if isinstance(c, str))
            text = f"**{record.stream}** `{record.id}`  \nprompt: {record.prompt}  \n"
            text += f"answers: {candidates}  \n" if candidates else ""
            text += f"label: {label}  \njudge: {judged}"
            experiment.add_text(f"{split}/examples/{i}", text, self.global_step)
            media = record.context if record.context is not None else record.candidates[0]
            experiment.add_image(f"{split}/examples/{i}", _as_grid(media), self.global_step, dataformats="HWC")

    # ---- export ----------------------------------------------------------------------------------------

    def on_train_end(self) -> None:
        if self.hparams.export_dir and self.trainer.is_global_zero:
            path = Path(self.trainer.default_root_dir) / self.hparams.export_dir
            self.judge.save_pretrained(path)
            log.info("judge exported to %s (load it with Judge.from_pretrained)", path)


def _enough(metric: SpearmanCorrCoef) -> bool:
    """Spearman is defined only for two or more non-constant values."""
    if isinstance(metric.preds, list) and not metric.preds:
        return False
    predictions = torch.cat(metric.preds) if isinstance(metric.preds, list) else metric.preds
    targets = torch.cat(metric.target) if isinstance(metric.target, list) else metric.target
    return len(predictions) > 1 and predictions.std() > 0 and targets.std() > 0


def _as_grid(media) -> np.ndarray:
    """An image as HWC uint8, a video as its frames side by side."""
    if isinstance(media, VideoClip):
        return np.concatenate(list(media.frames), axis=1)
    return np.asarray(media.convert("RGB"))
