"""Output a working run should not show: third-party notices that our own, intended setup triggers."""

from __future__ import annotations

import logging
import sys
import warnings


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def silence_known_noise() -> None:
    # Lightning 2.6 with torch >= 2.10: its own deprecated pytree call, not ours
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
    # our modules keep records (dataclasses with media) on the host by overriding this hook, on purpose
    warnings.filterwarnings("ignore", message=r"You have overridden `transfer_batch_to_device` in `LightningModule`")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropTips())  # advertisements for Lightning's cloud products
    if not sys.stdout.isatty():  # weight-loading bars are noise in a log file
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
