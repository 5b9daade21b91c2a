"""The progress bar on a terminal only (off a terminal `ProgressLog`'s lines say the same), described by steps:
runs are trained by max_steps over endless streams, where Lightning's `Epoch 0/-2` means nothing."""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    def _get_train_description(self, current_epoch: int) -> str:
        max_steps = self.trainer.max_steps
        description = f"Train (max {max_steps} steps)" if max_steps > 0 else f"Epoch {current_epoch}"
        if len(self.validation_description) > len(description):
            description = f"{description:{len(self.validation_description)}}"
        return description


def with_terminal_progress(callbacks: list) -> dict[str, Any]:
    """Trainer arguments: `callbacks` plus the progress bar when stdout is a terminal, and the bar switched off
    otherwise."""
    if not sys.stdout.isatty():
        return {"callbacks": list(callbacks), "enable_progress_bar": False}
    return {"callbacks": [*callbacks, StepProgressBar()], "enable_progress_bar": True}
