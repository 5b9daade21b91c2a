"""`pretrained=` values: an existing local checkpoint folder, or a hub id; told apart before loading so that a
mistyped path is reported as a missing folder, not as a malformed hub id."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from unified_reward.errors import UserError

CHECKPOINT_FILES = ("config.json", "model_index.json")  # transformers, diffusers
HUB_ID_EXAMPLE = "Qwen/Qwen2-VL-7B-Instruct"


def looks_like_path(value: str) -> bool:
    return value.startswith(("/", ".", "~")) or "\\" in value or value.count("/") > 1


def locate_pretrained(value: str, what: str = "model.pretrained") -> str:
    """`value` as a local folder path if it is one, else unchanged as a hub id; a clear error for a path that
    does not exist or a folder that is no checkpoint."""
    path = Path(value).expanduser()
    if path.is_dir():
        if not any((path / name).exists() for name in CHECKPOINT_FILES):
            raise UserError(
                f"{what}={value}: the folder exists but is not a Hugging Face checkpoint (no config.json or "
                "model_index.json in it). Point it at the folder that save_pretrained / an export wrote."
            )
        return str(path)
    if path.exists():
        raise UserError(f"{what}={value} is a file; a checkpoint is a folder (the one save_pretrained wrote)")
    if looks_like_path(value):
        raise UserError(
            f"{what}={value}: no such local folder (looked at {path.resolve()}). Give an existing checkpoint folder, "
            f"or a hub id of the form org/name, e.g. {HUB_ID_EXAMPLE}."
        )
    return value


@contextmanager
def hub_errors_explained(value: str, what: str = "model.pretrained") -> Iterator[None]:
    """Turns a failed hub load of a non-local `value` into a `UserError` that says it was taken as a hub id."""
    try:
        yield
    except OSError as error:
        if Path(value).expanduser().is_dir():
            raise
        raise UserError(
            f"{what}={value} is not a local folder (from {Path.cwd()}), so it was loaded as a hub id, which failed: "
            f"{error}. Without internet, download the checkpoint elsewhere and give its local folder."
        ) from error
