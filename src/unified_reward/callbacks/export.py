"""Writes the trained module's deployable form when fit ends: the judge (`Judge.from_pretrained`), the policy
(`model=<family> model.pretrained=<dir>`), the generator (`model.pretrained=<dir>`) or the tiny base.

The module says what it writes (`export(path)`, called on every rank: a sharded model is gathered first and rank
zero writes); the callback says when and where, so a run that should leave nothing drops it
(`~callbacks.export`)."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from unified_reward.errors import UserError


class ExportAtTrainEnd(L.Callback):
    def __init__(self, dirname: str | None = None):
        """`dirname`: under the run directory, or absolute; null: the module's `default_export_dir`."""
        self.dirname = dirname

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not callable(getattr(pl_module, "export", None)):
            raise UserError(
                f"callbacks.export: {type(pl_module).__name__} has no export(path); drop the callback "
                "(~callbacks.export)"
            )
        pl_module.export(Path(trainer.default_root_dir) / (self.dirname or pl_module.default_export_dir))
