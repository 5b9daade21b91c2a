"""`VLMDPOModule`: DPO (sigmoid, IPO, hinge; plus the official recipe's SFT term) for VLM policies on
image and video understanding pairs.

Each pair is one row `prompt | chosen | rejected` by default (`layout=shared`, see
`encoding/policy_pairs.py`): the image or video is encoded once per pair, not once per answer as in TRL.
Only the logits that predict answer tokens are computed (`logits_to_keep`).

The reference policy (`reference`: `adapter`, the LoRA policy with its adapter off; `copy`, a frozen copy;
`precomputed`, log-probs of the initial policy stored in `reference_logps_file`) is a `modules.reference` object.
`loss` is a loss of `losses.vlm_dpo` chosen by config (`configs/module/loss`): `preference_loss` with its type,
beta and label smoothing, or `sft_loss`, the chosen answers only (next-token cross-entropy, no reference): how a
policy is first taught to answer, with the same data, collator and optimiser.

Test: the DPO metrics on the test pairs and, with an `evaluator` (a reader of answers, `(question, media, answer)`
-> `.fraction` of asked attributes stated right and `.hallucinated`, such as the synthetic world's oracle
`unified_reward.synthetic.oracle.score_answer`), the greedy answers of the trained policy and of the reference
policy to each test question, scored by it (`test/oracle_score`, `test/oracle_score_reference`,
`test/oracle_score_gain`), so one run reports before and after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from unified_reward.encoding.packing import rope_index_owner
from unified_reward.encoding.pair_positions import answer_logit_inputs, attention_mask_for
from unified_reward.encoding.policy_pairs import PolicyPairCollator
from unified_reward.fingerprint import weights_fingerprint
from unified_reward.losses.vlm_dpo import check_loss, completion_logps, preference_loss, sft_loss
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
from unified_reward.modules.reference import (
    REFERENCES,
    PrecomputedReference,
    build_reference,
    stored_or_computed,
    upgrade_copy_keys,
)

log = logging.getLogger(__name__)
REFERENCE_SPLITS = ("train", "val", "test")  # the splits whose pairs get precomputed reference log-probs


class VLMDPOModule(L.LightningModule):
    default_export_dir = "policy"  # callbacks.export writes export() here, under the run directory

    def __init__(
        self,
        processor: VLMProcessor,
        model: nn.Module | Callable[[VLMProcessor], nn.Module],
        *,
        loss: Callable[..., Any] | None = None,
        sft_weight: float = 0.0,
        reference: str = "adapter",
        reference_logps_file: str | None = None,
        layout: str = "shared",
        pack_tokens: int | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        vision_lr_scale: float = 1.0,
        max_length: int = 4096,
        evaluator: Callable[[str, Any, str], Any] | None = None,
        generate_max_new_tokens: int = 24,
        generate_batch_size: int = 16,
        eval_samples: int = 0,
        eval_temperature: float = 1.0,
    ):
        super().__init__()
        # the defaults of configs/module/vlm_dpo.yaml, for modules built without Hydra
        self.optimizer_factory = optimizer or adamw(lr=5e-7, weight_decay=0.0)
        self.scheduler_factory = scheduler or partial(warmup_cosine, warmup_ratio=0.1, min_lr_rate=0.0)
        # configs/module/loss: dpo (preference_loss with its loss_type, beta, label_smoothing) or sft (sft_loss)
        self.loss = loss or partial(preference_loss, loss_type="sigmoid", beta=0.1, label_smoothing=0.0)
        check_loss(self.loss)
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        self.save_hyperparameters(ignore=["processor", "model", "evaluator", "loss", "optimizer", "scheduler"])
        if isinstance(evaluator, str):  # checkpoints of before 2026-11-29 stored evaluator="synthetic_oracle"
            raise ValueError(
                f"evaluator={evaluator!r}: pass the reader itself, e.g. evaluator=unified_reward.synthetic.oracle."
                "score_answer (to load_from_checkpoint too)"
            )
        self.processor = processor
        self.model = model if isinstance(model, nn.Module) else model(processor=processor)
        if layout == "shared":
            attention_mask_for(self.model, torch.ones(1, 1, 1, 1, dtype=torch.bool))  # fail now, not at step 1
        self.reference = build_reference(reference, self.model) if self.uses_reference else None
        self.collate = PolicyPairCollator(processor, layout=layout, max_length=max_length, pack_tokens=pack_tokens)
        self.answer_scoring = AnswerScoring.when_given(
            processor,
            evaluator,
            max_new_tokens=generate_max_new_tokens,
            batch_size=generate_batch_size,
            samples=eval_samples,
            temperature=eval_temperature,
        )
        self._sharded = False
        self._rope: tuple[nn.Module | None] | None = None

    @property
    def uses_reference(self) -> bool:
        return getattr(self.loss, "func", self.loss) is not sft_loss  # SFT reads the chosen answers only

    # ---- log-probabilities -----------------------------------------------------------------------------

    def _model_inputs(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        """The forward's inputs, built once per batch: the policy and its reference share them."""
        if "model_inputs" not in batch:
            shared = self.hparams.layout == "shared"
            if shared and self._rope is None:  # found once: walking a 7B model's modules every batch is not free
                self._rope = (rope_index_owner(model),)
            rope = self._rope[0] if shared else None
            batch["model_inputs"] = answer_logit_inputs(model, batch, rope, shared=shared)
        return batch["model_inputs"]

    def completion_logps(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """(pairs, 2) summed log-probabilities of the chosen and rejected answers under `model`."""
        inputs, keep, rows, index = self._model_inputs(model, batch)
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
        return completion_logps(logits[rows, index], batch["targets"], batch["target_mask"])

    def reference_logps(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.reference.logps(batch, self.completion_logps)

    # ---- training --------------------------------------------------------------------------------------

    def configure_model(self) -> None:
        if not self._sharded:
            self._sharded = shard_with_reference(self, self.model, self.reference)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return move_tensors(batch, device)

    def _losses(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        logps = self.completion_logps(self.model, batch)
        lengths = batch["target_mask"].sum(-1)
        size = len(batch["records"])
        metrics = {"logps/chosen": logps[:, 0].detach().mean(), "logps/rejected": logps[:, 1].detach().mean()}
        sft = sft_loss(logps[:, 0], lengths[:, 0])
        if not self.uses_reference:
            loss = sft
        else:
            reference = self.reference_logps(batch)
            output = self.loss(
                logps[:, 0],
                logps[:, 1],
                reference[:, 0],
                reference[:, 1],
                chosen_lengths=lengths[:, 0],
                rejected_lengths=lengths[:, 1],
            )
            loss = output.loss + self.hparams.sft_weight * sft
            metrics |= output.metrics()
        metrics["sft_loss"] = sft.detach()
        sync = split != "train"
        self.log(f"{split}/loss", loss, prog_bar=split == "train", batch_size=size, sync_dist=sync)
        self.log_dict({f"{split}/{k}": v for k, v in metrics.items()}, batch_size=size, sync_dist=sync)
        for reason, count in batch.get("skipped", {}).items():
            self.log(f"{split}/skipped/{reason}", float(count), reduce_fx="sum", batch_size=1, sync_dist=sync)
        return loss

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int):
        if batch is None or not batch["records"]:  # nothing in this batch was a strict pair (counted)
            return None
        return self._losses(batch, "train")

    def validation_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        if batch is not None and batch["records"]:
            self._losses(batch, "val")

    def test_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        if batch is None:
            return
        if batch["records"]:
            self._losses(batch, "test")
        if self.answer_scoring is not None and batch["questions"]:
            self.answer_scoring.update(self.model, self.reference, batch["questions"])

    def configure_optimizers(self):
        return optimization(self, vision_scaled_groups(self.model, self.hparams.vision_lr_scale))

    # ---- precomputed reference -------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        # a resumed run has its table from the checkpoint: the restored weights are no longer the reference
        if isinstance(self.reference, PrecomputedReference) and not self.reference.table:
            self.reference.table = self._load_or_compute_reference()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if isinstance(self.reference, PrecomputedReference) and self.reference.table:
            checkpoint["reference_logps"] = {k: list(v) for k, v in self.reference.table.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        upgrade_copy_keys(checkpoint, "reference_model.")
        if isinstance(self.reference, PrecomputedReference):
            self.reference.table = {k: tuple(v) for k, v in checkpoint.get("reference_logps", {}).items()}

    def _reference_file(self) -> Path:
        configured = self.hparams.reference_logps_file
        return Path(configured) if configured else Path(self.trainer.default_root_dir) / "reference_logps.pt"

    def _load_or_compute_reference(self) -> dict[str, tuple[float, float]]:
        fingerprint = weights_fingerprint(self.model, {"layout": self.hparams.layout, "splits": REFERENCE_SPLITS})

        def compute() -> dict[str, tuple[float, float]]:
            table = {}
            for split in REFERENCE_SPLITS:
                table |= self.compute_reference_table(self.trainer.datamodule.pass_dataloader(split))
            return table

        return stored_or_computed(self._reference_file(), fingerprint, compute, write=self.trainer.is_global_zero)

    def compute_reference_table(self, loader) -> dict[str, tuple[float, float]]:
        """{record id: (chosen, rejected)} log-probs under the current (initial) policy, from every rank."""
        batches = (self.transfer_batch_to_device(b, self.device, 0) for b in loader)
        return PrecomputedReference.table_of(self.model, batches, self.completion_logps)

    # ---- answers scored by the oracle ------------------------------------------------------------------

    def on_test_epoch_end(self) -> None:
        if self.answer_scoring is not None:  # alike on every rank: each gathers every rank's rows
            self.log_dict(self.answer_scoring.metrics(), sync_dist=False)

    # ---- export ----------------------------------------------------------------------------------------

    def export(self, path: Path) -> None:
        """The policy as a Hugging Face folder (called on every rank by callbacks.export)."""
        export_gathered(self, self.model, lambda state: save_vlm(self.model, self.processor, path, state))
        if self.trainer.is_global_zero:
            log.info("policy exported to %s (model=<family> model.pretrained=%s loads it)", path, path)
