"""Progress as log lines, whatever stdout is: a run whose output goes to a file (a cluster job) shows no progress
bar, and without these lines a running job cannot be told from a hung one.

Every `every_n_seconds` (and every `every_n_steps`, if set) of training: step, mean loss since the last line,
samples/s, elapsed time and ETA at the pace so far; one line when each stage starts and ends (fit, validation,
test, prediction). The lines go through `logging`, so Hydra writes them to the console and to the run's log file.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import torch

log = logging.getLogger("progress")
HEADLINE_METRICS = ("acc/mean", "loss")


def clock(seconds: float) -> str:
    """12s, 3m05s, 1h02m03s."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def batch_size_of(batch: Any) -> int | None:
    """Samples in a batch: a list's length, a dict's `records`/`examples`, else the first tensor's rows."""
    if isinstance(batch, list | tuple):
        return len(batch)
    if isinstance(batch, dict):
        for key in ("records", "examples"):
            if isinstance(batch.get(key), list | tuple):
                return len(batch[key])
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim:
                return int(value.shape[0])
    return None


def _loss_of(outputs: Any) -> float | None:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else None


def _headline(metrics: dict[str, Any], prefix: str) -> str:
    shown = [
        f"{name} {float(value):.4f}"
        for name, value in sorted(metrics.items())
        if name.startswith(prefix) and name.endswith(HEADLINE_METRICS)
    ]
    return ", ".join(shown)


class ProgressLog(L.Callback):
    def __init__(self, every_n_seconds: float = 30.0, every_n_steps: int | None = None):
        self.every_n_seconds = every_n_seconds
        self.every_n_steps = every_n_steps
        self._fit_started = self._last_line = self._stage_started = 0.0
        self._first_step = 0
        self._losses: list[float] = []
        self._samples = self._predicted = 0

    # ---- training ------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_started = self._last_line = time.monotonic()
        self._first_step = trainer.global_step
        if not trainer.is_global_zero:
            return
        total = sum(p.numel() for p in pl_module.parameters())
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        log.info(
            "fit: %s, %.2f M parameters (%.2f M trainable); step %d of %s",
            type(pl_module).__name__,
            total / 1e6,
            trainable / 1e6,
            trainer.global_step,
            trainer.max_steps if trainer.max_steps > 0 else "no step limit",
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = _loss_of(outputs)
        if loss is not None:
            self._losses.append(loss)
        self._samples += batch_size_of(batch) or 0
        now = time.monotonic()
        due = now - self._last_line >= self.every_n_seconds
        if self.every_n_steps:
            due = due or trainer.global_step % self.every_n_steps == 0
        if due and trainer.is_global_zero:
            self._log_step(trainer, now)
        if due:
            self._last_line, self._losses, self._samples = now, [], 0

    def _log_step(self, trainer: L.Trainer, now: float) -> None:
        step, elapsed = trainer.global_step, now - self._fit_started
        done = max(step - self._first_step, 1)
        parts = [f"step {step}" + (f"/{trainer.max_steps}" if trainer.max_steps > 0 else "")]
        if self._losses:
            parts.append(f"loss {sum(self._losses) / len(self._losses):.4f}")
        if self._samples:
            parts.append(f"{self._samples * trainer.world_size / max(now - self._last_line, 1e-9):.1f} samples/s")
        parts.append(f"elapsed {clock(elapsed)}")
        if trainer.max_steps > 0:
            parts.append(f"ETA {clock(elapsed / done * max(trainer.max_steps - step, 0))}")
        log.info(" · ".join(parts))

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.is_global_zero:
            elapsed = time.monotonic() - self._fit_started
            log.info("fit: done at step %d in %s", trainer.global_step, clock(elapsed))

    # ---- evaluation stages ---------------------------------------------------------------------------------
    def _start(self, trainer: L.Trainer, stage: str) -> None:
        self._stage_started = time.monotonic()
        if trainer.is_global_zero:
            log.info("%s: started at step %d", stage, trainer.global_step)

    def _end(self, trainer: L.Trainer, stage: str, prefix: str) -> None:
        if not trainer.is_global_zero:
            return
        headline = _headline(trainer.callback_metrics, prefix)
        took = clock(time.monotonic() - self._stage_started)
        log.info("%s: done in %s%s", stage, took, f"; {headline}" if headline else "")

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._start(trainer, "validation")

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._end(trainer, "validation", "val/")
            self._last_line += time.monotonic() - self._stage_started  # samples/s measures training only

    def on_test_start(self, trainer, pl_module) -> None:
        self._start(trainer, "test")

    def on_test_end(self, trainer, pl_module) -> None:
        self._end(trainer, "test", "test/")

    def on_predict_start(self, trainer, pl_module) -> None:
        self._start(trainer, "prediction")
        self._last_line, self._samples, self._predicted = time.monotonic(), 0, 0

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        count = batch_size_of(batch) or 0
        self._samples += count
        self._predicted += count
        now = time.monotonic()
        if now - self._last_line < self.every_n_seconds:
            return
        if trainer.is_global_zero:
            rate = self._samples / max(now - self._last_line, 1e-9)
            took = clock(now - self._stage_started)
            log.info("prediction: %d items on this rank · %.1f items/s · elapsed %s", self._predicted, rate, took)
        self._last_line, self._samples = now, 0

    def on_predict_end(self, trainer, pl_module) -> None:
        self._end(trainer, "prediction", "predict/")
