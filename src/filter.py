"""Preference-data construction: sample candidates from a policy, then filter them with the judge.

python src/filter.py stage=candidates model.pretrained=<policy export> "data.tasks=[image_understanding]" \
    output=<candidates folder>
python src/filter.py stage=filter candidates=<candidates folder> judge=<judge export | oracle | random> \
    output=<pairs folder>
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig
from torch.utils.data import ChainDataset, DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without `pip install -e .`

log = logging.getLogger("filter")


def candidate_loader(folder: str, split: str, batch_size: int, counter) -> DataLoader:
    """One pass over every `<task>_candidates` stream of a candidate folder, split across ranks; bad samples
    are skipped and counted in `counter` (a `reading.SkipCounter`)."""
    from unified_reward.data.datamodule import keep_records
    from unified_reward.data.reading import ShardStream
    from unified_reward.data.shards import decode_candidate_set
    from unified_reward.data.sources import ShardFolder

    streams = {k: v for k, v in ShardFolder(folder).streams(split).items() if k.endswith("_candidates")}
    if not streams:
        from unified_reward.errors import UserError

        raise UserError(
            f"candidates={folder}: {split}/ holds no candidate-set streams (<task>_candidates); it is made by "
            "`python src/filter.py stage=candidates ... output=<folder>`"
        )
    readers = [  # media stay encoded: the filter decodes them for the judge and writes the stored bytes
        ShardStream(urls, name=name, sampling=None, decode=decode_candidate_set, counter=counter)
        for name, urls in streams.items()
    ]
    return DataLoader(ChainDataset(readers), batch_size=batch_size, collate_fn=keep_records)


def _candidate_module(cfg: DictConfig, tasks) -> L.LightningModule:
    """A VLM policy's answers (model=qwen2_vl_tiny, ...) or a generator's samples (model=t2i_unet_tiny, ...)."""
    generator = "denoiser" in cfg.model
    wrong = [t for t in tasks if t.endswith("_generation") != generator]
    if wrong:
        kind = "a generator samples captions" if generator else "a VLM policy answers questions"
        raise SystemExit(
            f"stage=candidates with model={cfg.model.get('kind', 'vlm')}: {kind}, but data.tasks has {wrong}"
        )
    if generator:
        from unified_reward.generation.candidates import GeneratedCandidates

        return GeneratedCandidates(
            hydra.utils.instantiate(cfg.model.denoiser),
            hydra.utils.instantiate(cfg.model.caption_encoder),
            hydra.utils.instantiate(cfg.model.objective),
            sample_size=cfg.model.sample_size,
            num_frames=cfg.model.num_frames,
            latent_codec=hydra.utils.instantiate(cfg.model.latent_codec),
            candidates=cfg.candidates_per_prompt,
            sample_steps=cfg.sample_steps,
            guidance_scale=cfg.guidance_scale,
            evaluator=hydra.utils.instantiate(cfg.sample_evaluator),
        )
    from unified_reward.generation.candidates import AnswerCandidates

    return AnswerCandidates(
        hydra.utils.instantiate(cfg.model.processor),
        hydra.utils.instantiate(cfg.model.backbone),
        candidates=cfg.candidates_per_prompt,
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        evaluator=hydra.utils.instantiate(cfg.answer_evaluator),
        seed=cfg.seed,
    )


def run(cfg: DictConfig) -> Path:
    from unified_reward.data.reading import SkipCounter
    from unified_reward.filtering.writer import ResumableShardWriter

    L.seed_everything(cfg.seed, workers=True)
    output = Path(cfg.output) / cfg.split
    writer = ResumableShardWriter(output, flush_every=cfg.flush_every)
    loggers = [hydra.utils.instantiate(e) for e in (cfg.get("logger") or {}).values() if e and "_target_" in e]
    from unified_reward.callbacks.progress_bar import with_terminal_progress
    from unified_reward.callbacks.progress_log import ProgressLog

    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers or False, **with_terminal_progress([writer, ProgressLog()])
    )
    if cfg.stage == "candidates":
        datamodule = hydra.utils.instantiate(cfg.data)
        module = _candidate_module(cfg, datamodule.tasks)  # fails fast on tasks the model cannot produce
        datamodule.prepare_data()
        datamodule.eval_batch_size = cfg.batch_size
        loader = datamodule.pass_dataloader(cfg.split)
    elif cfg.stage == "filter":
        if not cfg.candidates or not cfg.judge:
            raise SystemExit(
                "stage=filter needs candidates=<folder from stage=candidates> and judge=<export, oracle or random>"
            )
        from unified_reward.filtering.filter import PreferenceFilter
        from unified_reward.judges import load_judge

        judge = load_judge(cfg.judge, seed=cfg.seed, batch_size=cfg.batch_size, named=cfg.named_judges)
        from unified_reward.data.media import VideoSampling

        module = PreferenceFilter(
            judge,
            both_orders=cfg.both_orders,
            sampling=VideoSampling(num_frames=cfg.video_frames),
            keep_questions=cfg.keep_questions,
        )
        skipped = SkipCounter()
        loader = candidate_loader(cfg.candidates, cfg.split, cfg.batch_size, skipped)
    else:
        raise SystemExit(f"stage must be candidates or filter, got {cfg.stage!r}")
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    if cfg.stage == "filter":
        # bad candidate records met by this rank, by reason (the summary counts what was judged)
        counts = skipped.as_dict()
        (output / f"skipped-r{trainer.global_rank:03d}.json").write_text(json.dumps(counts, indent=2))
        if counts:
            log.warning("skipped bad candidate records: %s", counts)
    return output


@hydra.main(version_base="1.3", config_path="../configs", config_name="filter.yaml")
def main(cfg: DictConfig) -> None:
    from unified_reward.quiet import silence_known_noise
    from unified_reward.runs import run_status

    silence_known_noise()
    with run_status(cfg.paths.output_dir):
        output = run(cfg)
    log.info("written to %s", output)


if __name__ == "__main__":
    main()
