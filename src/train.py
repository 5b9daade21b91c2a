"""Train (and test) whatever the Hydra config composes: a datamodule, a LightningModule, a trainer.

python src/train.py experiment=reward_joint
python src/train.py -m experiment=reward_joint,reward_image_generation seed=1,2,3
python src/train.py experiment=reward_joint ckpt_path=logs/reward_joint/runs/<time>/checkpoints/last.ckpt
python src/train.py -m hydra.sweep.dir=<fixed folder> skip_completed=true ...   (a rerun continues a killed multirun)

A run writes logs/<task_name>/runs/<time>/: train.log, status.json (running / completed / failed), FAILED when it
failed, metrics.json, checkpoints/, tensorboard/ and the export.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without `pip install -e .`
import unified_reward  # noqa: E402, F401  (registers the configs' resolvers, also for --cfg job --resolve)

log = logging.getLogger("train")


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in sorted(metrics.items())}


def _print_table(title: str, metrics: dict[str, float]) -> None:
    if not metrics:
        return
    width = max(len(name) for name in metrics)
    print(f"\n{title}")
    for name, value in metrics.items():
        print(f"  {name:<{width}}  {value:.4f}")


def train(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("module") is None:
        raise SystemExit(
            "No LightningModule is configured. Pick an experiment, e.g. `python src/train.py experiment=reward_joint`, "
            "or a module group, e.g. `module=reward_sft`."
        )
    from unified_reward.callbacks.empty_epoch_guard import EmptyEpochGuard
    from unified_reward.callbacks.progress_bar import with_terminal_progress
    from unified_reward.runs import instantiate_all
    from unified_reward.strategies import check_compatibility

    check_compatibility(cfg.trainer, cfg.get("model"))
    L.seed_everything(cfg.seed, workers=True)
    module = hydra.utils.instantiate(cfg.module)
    # the module's own collator (its processor, layout and skip counters), handed over at construction
    collate = getattr(module, "collate", None)
    datamodule = hydra.utils.instantiate(cfg.data, **({"collate_fn": collate} if callable(collate) else {}))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=instantiate_all(cfg.get("logger")) or False,
        **with_terminal_progress([*instantiate_all(cfg.get("callbacks")), EmptyEpochGuard()]),
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, float] = {}
    if cfg.train:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics.update(_scalar_metrics(trainer.callback_metrics))
    if cfg.test:
        ckpt_path = None if cfg.train else cfg.get("ckpt_path")
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)  # one table: ours, below
        test_metrics = _scalar_metrics({k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
        metrics.update(test_metrics)
        if trainer.is_global_zero:
            _print_table("test metrics", test_metrics)
    skipped = datamodule.skipped() if hasattr(datamodule, "skipped") else {}
    if trainer.is_global_zero:
        output_dir = Path(cfg.paths.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps({"metrics": metrics, "skipped": skipped}, indent=2))
        log.info("metrics written to %s", output_dir / "metrics.json")
    return metrics


@hydra.main(version_base="1.3", config_path="../configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    from unified_reward.quiet import silence_known_noise
    from unified_reward.runs import completed_metrics, run_status

    silence_known_noise()
    metrics = completed_metrics(cfg.paths.output_dir) if cfg.get("skip_completed") else None
    if metrics is not None:
        log.info("%s completed before (skip_completed=true): not run again", cfg.paths.output_dir)
    else:
        with run_status(cfg.paths.output_dir):
            metrics = train(cfg)
    objective = cfg.get("objective")
    return metrics.get(objective) if objective else None


if __name__ == "__main__":
    main()
