"""Stops training when a whole epoch gives no batch: every training stream ended with nothing valid. Without it a
run over bad data loops over empty epochs forever (max_steps is never reached)."""

from __future__ import annotations

import lightning as L

from unified_reward.errors import UserError


class EmptyEpochGuard(L.Callback):
    def __init__(self):
        self.batches = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.batches:
            return
        datamodule = getattr(trainer, "datamodule", None)
        skipped = datamodule.skipped().get("train", {}) if hasattr(datamodule, "skipped") else {}
        raise UserError(
            f"training data gave no batch in a whole epoch (epoch {trainer.current_epoch}): every training stream "
            f"ended without a valid sample (skipped, by reason: {skipped or 'none'}). The warnings above name the "
            "shards; fix them, or leave their streams out of the run (data.tasks / data.modes / data.weights)."
        )
