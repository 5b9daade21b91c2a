"""Helpers shared by the end-to-end tests: compose the real Hydra config and load src/train.py."""

import importlib.util
from pathlib import Path

import lightning as L
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str, name: str):
    """A script of the repository (not a package module) loaded as a module, e.g. "src/train.py"."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_entry():
    return load_script("src/train.py", "train_entry")


def compose_config(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            "train.yaml",
            overrides=[f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}", *overrides],
        )


class StopAfterSteps(L.Callback):
    """Ends training abruptly after `steps` optimizer steps: an interruption that keeps the run's own
    max_steps and learning-rate schedule (unlike launching with a smaller max_steps)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True
