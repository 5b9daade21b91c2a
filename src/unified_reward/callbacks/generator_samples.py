"""Logs a generator's samples for fixed captions to TensorBoard: at the start of training and every
N steps. Images side by side; a video as a grid with one row of frames per caption."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np

from unified_reward.generation.sampling import to_uint8


def sample_grid(samples: list[np.ndarray]) -> np.ndarray:
    """uint8 samples, images (H, W, 3) or videos (F, H, W, 3), as one HWC image."""
    if samples[0].ndim == 3:
        return np.concatenate(samples, axis=1)
    return np.concatenate([np.concatenate(list(video), axis=1) for video in samples], axis=0)


class GeneratorSampleLogger(L.Callback):
    def __init__(self, captions: Sequence[str], every_n_steps: int = 200, seed: int = 0):
        if not captions:
            raise ValueError("GeneratorSampleLogger needs at least one caption")
        self.captions = list(captions)
        self.every_n_steps = every_n_steps
        self.seeds = [seed + i for i in range(len(self.captions))]

    def _log(self, trainer: L.Trainer, module) -> None:
        experiment = getattr(trainer.logger, "experiment", None)
        if not trainer.is_global_zero or experiment is None or not hasattr(experiment, "add_image"):
            return
        grid = sample_grid(to_uint8(module.sample(self.captions, self.seeds)))
        experiment.add_image("samples", grid, trainer.global_step, dataformats="HWC")
        experiment.add_text("samples/captions", "  \n".join(self.captions), trainer.global_step)

    def on_train_start(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0 and trainer.global_step > 0:
            self._log(trainer, pl_module)
