"""`RewardSFTModule`: generative SFT of the unified judge on all tasks and modes.

Training is next-token cross-entropy on the judge's answer tokens only: the verdict, preceded by the
record's rationale when `train_rationale` (a reasoning judge). Validation and test judge every held-out
record with the judge API (`judging.generative.Judge`: one forward, or the rationale generated first and then the
verdict read) and report, per
(task, mode) stream: pair accuracy (the argmax of first / second / tie against the label, so ties
count only when predicted as ties), point-score MAE and Spearman rank correlation of the expected
score; where the judge wrote text (a reasoning judge always; a direct one at test) it is parsed into
the generative accuracy and the invalid-answer rate. Metric names: `val/acc/image_generation_pair`, `test/mae/...`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from unified_reward.data.schema import PreferenceRecord, VideoClip
from unified_reward.encoding.judge_batches import JudgeCollator
from unified_reward.encoding.packing import packed_position_ids, rope_index_owner
from unified_reward.judging.generative import Judge
from unified_reward.judging.queries import VERDICTS, JudgeQuery
from unified_reward.models.processor import VLMProcessor
from unified_reward.modules.hooks import export_gathered, move_tensors, optimization
from unified_reward.modules.metrics import CollectedRows, judge_metrics, judge_row
from unified_reward.modules.optimization import (
    OptimizerFactory,
    SchedulerFactory,
    adamw,
    vision_scaled_groups,
    warmup_cosine,
)
from unified_reward.prompts.templates import load_templates, rescale
from unified_reward.strategies import shard_for_strategy

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
    "image_sizes",
)


def judge_sft_loss(model: nn.Module, batch: dict[str, Any], rope: nn.Module | None = None) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens of a collated batch; a packed batch (`sample_lengths`) gets
    positions restarting per sample, from which transformers builds the block-diagonal mask (`rope`: the model's
    `rope_index_owner`, found here when not given)."""
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    if "sample_lengths" in batch:
        inputs["position_ids"] = packed_position_ids(batch, rope if rope is not None else rope_index_owner(model))
    return model(**inputs, use_cache=False).loss


class RewardSFTModule(L.LightningModule):
    default_export_dir = "judge"  # callbacks.export writes export() here, under the run directory

    def __init__(
        self,
        processor: VLMProcessor,
        model: nn.Module | Callable[[VLMProcessor], nn.Module],
        *,
        templates: str | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        vision_lr_scale: float = 1.0,
        max_length: int = 4096,
        train_rationale: bool = False,
        packing: bool = False,
        pack_tokens: int | None = None,
        judge_batch_size: int = 16,
        test_generate: bool = True,
        generate_max_new_tokens: int = 16,
        logged_examples: int = 4,
    ):
        super().__init__()
        # the defaults of configs/module/reward_sft.yaml, for modules built without Hydra
        self.optimizer_factory = optimizer or adamw(lr=2.5e-6, weight_decay=0.0)
        self.scheduler_factory = scheduler or partial(warmup_cosine, warmup_ratio=0.03, min_lr_rate=0.0)
        self.save_hyperparameters(ignore=["processor", "model", "optimizer", "scheduler"])
        self.processor = processor
        self.model = model if isinstance(model, nn.Module) else model(processor=processor)
        self.templates = load_templates(templates)
        self.collate = JudgeCollator(
            processor,
            self.templates,
            max_length=max_length,
            train_rationale=train_rationale,
            packing=packing,
            pack_tokens=pack_tokens,
        )
        self.judge = Judge(
            self.model,
            processor,
            self.templates,
            batch_size=judge_batch_size,
            max_length=max_length,
            reasoning=train_rationale,  # a judge trained to reason first is read after its rationale
            max_reasoning_tokens=generate_max_new_tokens,
        )
        self.measured = nn.ModuleDict({split: CollectedRows(width=4) for split in ("val", "test")})
        self._sharded = False  # set once FSDP2 has sharded the model (configure_model runs for fit and test)
        self._rope: tuple[nn.Module | None] | None = None  # the model's rope_index_owner, for packed batches

    # ---- training --------------------------------------------------------------------------------------

    def configure_model(self) -> None:
        if not self._sharded:  # configure_model runs for fit and for test: shard once
            self._sharded = shard_for_strategy(self.trainer, self.model, self.device_mesh)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return move_tensors(batch, device)

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        if self._rope is None and "sample_lengths" in batch:  # found once, not every step
            self._rope = (rope_index_owner(self.model),)
        return judge_sft_loss(self.model, batch, self._rope[0] if self._rope else None)

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int):
        if batch is None:  # every sample of the batch was too long and skipped (counted by the collator)
            return None
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["records"]))
        self.log("train/skipped_too_long", float(self.collate.skipped_too_long), batch_size=1)
        return loss

    def configure_optimizers(self):
        return optimization(self, vision_scaled_groups(self.model, self.hparams.vision_lr_scale))

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
        with_text = split == "test" and self.hparams.test_generate
        judgments = self.judge.judge(queries, with_text=with_text)
        rows = []
        for record, judgment in zip(records, judgments, strict=True):
            if judgment.probabilities:  # empty where the asked scale cannot be read in one pass (0-100)
                rows += one_forward_rows(record, judgment)
            if judgment.text is not None:
                rows += generated_rows(record, judgment)
        if rows:  # one update per batch
            self.measured[split].update(rows)
        if batch_idx == 0 and self.hparams.logged_examples:
            count = self.hparams.logged_examples
            self._log_examples(split, records[:count], judgments[:count])

    def _log_epoch(self, split: str) -> None:
        metrics = judge_metrics(self.measured[split].gathered(), split)  # every rank's rows
        if metrics:
            self.log_dict(metrics, sync_dist=False)  # already gathered: every rank holds the same values

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _log_examples(self, split: str, records: list[PreferenceRecord], judgments: list) -> None:
        """Each example as text (prompt, every candidate, the truth, the judge's probabilities and its written
        answer) and as one image holding the context and every candidate medium, one row each, in order."""
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_text") or not self.trainer.is_global_zero:
            return
        for i, (record, judgment) in enumerate(zip(records, judgments, strict=True)):
            judged = ", ".join(f"{k}: {v:.2f}" for k, v in judgment.probabilities.items())
            label = record.label if isinstance(record.label, str) else f"{record.label.score:g}"
            text = f"**{record.stream}** `{record.id}`  \nprompt: {record.prompt}  \n"
            first_row = 1 if record.context is None else 2  # the context, if any, is row 1 of the image
            for n, candidate in enumerate(record.candidates):
                shown = candidate if isinstance(candidate, str) else f"(row {first_row + n} of the image)"
                text += f"candidate {n + 1}: {shown}  \n"
            text += f"truth: {label}  \njudge: {judged}  \n"
            if judgment.text is not None:
                text += f"judge wrote: {judgment.text}  \n"
            experiment.add_text(f"{split}/examples/{i}", text, self.global_step)
            media = [] if record.context is None else [record.context]
            media += [c for c in record.candidates if not isinstance(c, str)]
            if media:
                experiment.add_image(f"{split}/examples/{i}", media_rows(media), self.global_step, dataformats="HWC")

    # ---- export ----------------------------------------------------------------------------------------

    def export(self, path: Path) -> None:
        """The judge as a folder `Judge.from_pretrained` loads (called on every rank by callbacks.export)."""
        export_gathered(self, self.model, lambda state: self.judge.save_pretrained(path, state_dict=state))
        if self.trainer.is_global_zero:
            log.info("judge exported to %s (load it with Judge.from_pretrained)", path)


def one_forward_rows(record: PreferenceRecord, judgment) -> list[tuple[float, ...]]:
    """A pair record: whether the most probable verdict is the label (and, for a tie, whether it was judged one); a
    point record: the expected score, compared on the label's scale (a template may ask on its own), and the label."""
    if record.mode == "pair":
        predicted = max(VERDICTS, key=lambda v: judgment.probabilities.get(v, 0.0))
        rows = [judge_row("acc", record.stream, float(predicted == record.label))]
        if record.label == "tie":
            rows.append(judge_row("tie_recall", record.stream, float(predicted == "tie")))
        return rows
    expected = rescale(judgment.expected_score, judgment.scale, record.scale)
    return [judge_row("point", record.stream, expected, record.label.score)]


def generated_rows(record: PreferenceRecord, judgment) -> list[tuple[float, ...]]:
    """Of the judge's written answer: whether it was invalid, and if not, its verdict's accuracy or score's error."""
    answer = judgment.parsed(record.mode)
    rows = [judge_row("invalid", record.stream, float(answer is None))]
    if answer is not None and record.mode == "pair":
        rows.append(judge_row("gen_acc", record.stream, float(answer == record.label)))
    elif answer is not None:
        error = abs(rescale(answer, judgment.scale, record.scale) - record.label.score)
        rows.append(judge_row("gen_mae", record.stream, error))
    return rows


def media_rows(media: list) -> np.ndarray:
    """Images and videos as one HWC uint8 image: one row per medium (a video's frames side by side), separated by
    a white line, narrower rows padded with black on the right."""
    rows = [
        np.concatenate(list(m.frames), axis=1) if isinstance(m, VideoClip) else np.asarray(m.convert("RGB"))
        for m in media
    ]
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    separator = np.full((2, width, 3), 255, dtype=np.uint8)
    stacked = [padded[0]]
    for row in padded[1:]:
        stacked += [separator, row]
    return np.concatenate(stacked, axis=0).astype(np.uint8)
