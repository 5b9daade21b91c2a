"""A run folder says how its run ended: `status.json` (running / completed / failed, with the error), and a
`FAILED` file beside the outputs of a failed run, so failed runs can be told from good ones with `ls`."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only

from unified_reward.errors import find_user_error, user_message

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"
FAILED_MARKER = "FAILED"


def _write_status(folder: Path, **fields) -> None:
    if rank_zero_only.rank != 0:
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATUS_FILE).write_text(json.dumps(fields, indent=2))


@contextmanager
def run_status(folder: str | os.PathLike) -> Iterator[None]:
    """Marks `folder` running, then completed or failed. A `UserError` is reported as one message (no
    traceback, exit status 1) unless HYDRA_FULL_ERROR=1; other errors propagate with their traceback."""
    folder = Path(folder)
    started = time.time()
    command = " ".join(sys.argv)
    _write_status(folder, status="running", command=command, started=time.strftime("%Y-%m-%d %H:%M:%S"))
    (folder / FAILED_MARKER).unlink(missing_ok=True)  # a resumed run starts clean
    try:
        yield
    except BaseException as error:
        if isinstance(error, SystemExit) and error.code in (0, None):
            raise
        user_error = find_user_error(error)
        if user_error is not None:
            error = user_error
        message = user_message(error) if not isinstance(error, SystemExit) else str(error.code)
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {message}"
        seconds = round(time.time() - started, 1)
        _write_status(folder, status="failed", command=command, error=reason, seconds=seconds)
        if rank_zero_only.rank == 0:
            (folder / FAILED_MARKER).write_text(reason + "\n")
        if user_error is not None and os.environ.get("HYDRA_FULL_ERROR") != "1":
            log.error("%s", message)
            log.error("run marked failed in %s (HYDRA_FULL_ERROR=1 shows the traceback)", folder)
            raise SystemExit(1) from None
        raise
    _write_status(folder, status="completed", command=command, seconds=round(time.time() - started, 1))


def completed_metrics(folder: str | os.PathLike) -> dict | None:
    """The metrics of the run in `folder` if it completed (status.json says so and metrics.json is there), else
    None: a resumed multirun skips such runs and redoes the rest (running when killed, failed, or never started)."""
    folder = Path(folder)
    try:
        status = json.loads((folder / STATUS_FILE).read_text())["status"]
        metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return metrics if status == "completed" else None


def instantiate_all(group) -> list:
    """Every entry of a config group (callbacks, loggers) that names a `_target_`, instantiated."""
    import hydra

    if not group:
        return []
    return [hydra.utils.instantiate(entry) for entry in group.values() if entry and "_target_" in entry]
