"""Run a prediction loop that the Hydra config composes: a LightningModule, a datamodule and a writer, one config per
stage (configs/stage/): the twin of train.py for the steps that make data instead of training on it.

python src/predict.py stage=candidates model.pretrained=<policy export> "data.tasks=[image_understanding]" \
    output=<candidates folder>
python src/predict.py stage=generator_candidates model=t2i_unet_tiny model.pretrained=<generator export> \
    "data.tasks=[image_generation]" output=<candidates folder>
python src/predict.py stage=filter candidates=<candidates folder> judge=<judge export | oracle | random> \
    output=<pairs folder>

Each writes <output>/<split>/ (shards, manifest.json, summary.json) and resumes where a killed run stopped; under DDP
each item is handled once.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without `pip install -e .`

log = logging.getLogger("predict")


def predict(cfg: DictConfig) -> Path:
    stage = cfg.get("stage_name", "this stage")
    if cfg.get("module") is None:
        raise SystemExit("No prediction stage is configured: add stage=candidates, generator_candidates or filter")
    missing = [key for key in cfg.get("required", []) if OmegaConf.select(cfg, key) is None]
    if missing:
        raise SystemExit(f"stage={stage} needs " + " and ".join(f"{key}=<...>" for key in missing))
    if cfg.get("model_needs") and cfg.model_needs not in cfg.model:
        other = "generator_candidates" if "denoiser" in cfg.model else "candidates"
        raise SystemExit(f"stage={stage} needs a model with model.{cfg.model_needs}; this model fits stage={other}")
    from unified_reward.callbacks.progress_bar import with_terminal_progress
    from unified_reward.callbacks.progress_log import ProgressLog
    from unified_reward.runs import instantiate_all

    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = hydra.utils.instantiate(cfg.module)  # fails fast on tasks the model cannot produce
    writer = hydra.utils.instantiate(cfg.writer)
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=instantiate_all(cfg.get("logger")) or False,
        **with_terminal_progress([writer, ProgressLog()]),
    )
    trainer.predict(module, datamodule=datamodule, return_predictions=False)
    # bad input records met by this rank's reader, by reason; media that fail to decode in the module (candidates
    # read with data.keep_encoded) are counted in the summary as skipped/<reason>
    skipped = datamodule.predict_skipped() if hasattr(datamodule, "predict_skipped") else {}
    (writer.folder / f"skipped-r{trainer.global_rank:03d}.json").write_text(json.dumps(skipped, indent=2))
    if skipped:
        log.warning("skipped bad input records: %s", skipped)
    return writer.folder


@hydra.main(version_base="1.3", config_path="../configs", config_name="predict.yaml")
def main(cfg: DictConfig) -> None:
    from unified_reward.quiet import silence_known_noise
    from unified_reward.runs import run_status

    silence_known_noise()
    with run_status(cfg.paths.output_dir):
        output = predict(cfg)
    log.info("written to %s", output)


if __name__ == "__main__":
    main()
