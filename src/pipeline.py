"""The loop closed on one domain: policy -> judge -> candidates -> filter -> DPO, and what it did to the policy.

python src/pipeline.py domain=image_understanding
python src/pipeline.py -m domain=image_understanding,image_generation judge_kind=random,single,joint,oracle seed=1,2,3

Each stage is the command a user would run by hand (src/train.py or src/predict.py), run in <output>/<stage>
and printed before it starts. A stage whose result exists is skipped, so a killed pipeline resumes (the filter
stages also resume inside a split). `<output>/pipeline.json` holds the oracle's score of the policy before and
after DPO, the judge's test accuracy on the domain, and how the filter's pairs agree with the oracle.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

SRC = Path(__file__).resolve().parent
SPLITS = ("train", "val", "test")
log = logging.getLogger("pipeline")


def _run(stage: str, script: str, overrides: list[str]) -> None:
    command = [sys.executable, str(SRC / script), *overrides]
    log.info("stage %s: %s", stage, " ".join(command[1:]))
    finished = subprocess.run(command, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"stage {stage} failed (exit {finished.returncode}): {' '.join(command[1:])}")


def _train_stage(cfg: DictConfig, stage: str, experiment: str, out: Path, extra: list[str]) -> dict[str, float]:
    """A src/train.py run in <out>/<stage> exporting to <out>/<stage>/export; its test metrics."""
    run_dir = out / stage
    if not (run_dir / "metrics.json").exists():
        _run(
            stage,
            "train.py",
            [
                f"experiment={experiment}",
                f"seed={cfg.seed}",
                f"hydra.run.dir={run_dir}",
                f"callbacks.export.dirname={run_dir / 'export'}",
                *extra,
                *cfg.overrides.all,
                *cfg.overrides[stage],
            ],
        )
    else:
        log.info("stage %s: done before (%s)", stage, run_dir / "metrics.json")
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def _predict_stage(cfg: DictConfig, stage: str, kind: str, out: Path, extra: list[str]) -> dict[str, dict]:
    """src/predict.py stage=<kind> over the three splits into <out>/<stage>/<split>; each split's summary totals."""
    folder = out / stage
    if not all((folder / split / "summary.json").exists() for split in SPLITS):
        _run(
            stage,
            "predict.py",
            [
                "-m",
                f"stage={kind}",
                f"split={','.join(SPLITS)}",
                f"output={folder}",
                f"seed={cfg.seed}",
                f"batch_size={cfg.batch_size}",
                f"hydra.sweep.dir={out / 'logs' / stage}",
                *extra,
                *cfg.overrides.all,
                *cfg.overrides[stage],
            ],
        )
    else:
        log.info("stage %s: done before (%s)", stage, folder)
    return {split: json.loads((folder / split / "summary.json").read_text())["totals"] for split in SPLITS}


def require_pairs(totals: dict[str, dict], keep_questions: bool = False) -> None:
    """DPO needs pairs to train on, and in every split unless the dropped sets were kept as ties
    (`keep_questions`: held-out prompts the policy is still tested on); a filter that kept too few says why (its
    drop counts), not a data loader."""
    needed = ("train",) if keep_questions else tuple(totals)
    empty = {split: t for split, t in totals.items() if split in needed and not t.get("kept")}
    if empty:
        raise SystemExit(f"the filter kept no pairs in {sorted(empty)}; its counts: {json.dumps(empty)}")


def oracle_agreement(totals: dict[str, int]) -> float | None:
    """Of the kept pairs whose candidates the oracle tells apart, the share where it prefers the chosen one."""
    chosen, rejected = totals.get("oracle_prefers/chosen", 0), totals.get("oracle_prefers/rejected", 0)
    return chosen / (chosen + rejected) if chosen + rejected else None


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.output).resolve()
    domain = cfg.domain
    task = domain.task
    prompt_records = [f"data.tasks=[{task}]", "data.modes=[pair]"]
    prompts = domain.prompts_per_split
    if prompts:
        counts = ", ".join(f"{split}: {prompts[split]}" for split in SPLITS)
        prompt_records.append(f"data.source.records_per_stream={{{counts}}}")

    policy = cfg.policy or str(out / "policy" / "export")
    if not cfg.policy:
        deficit = []
        # this share of the SFT targets hallucinate (understanding) or do not match their caption (generation)
        if cfg.deficit is not None:
            if task.endswith("understanding"):
                deficit = ["data=hallucinating_answers", f"data.source.hallucination={cfg.deficit}"]
            else:
                deficit = ["data=mismatched_media", f"data.tasks=[{task}]", f"data.source.mismatch={cfg.deficit}"]
        _train_stage(cfg, "policy", domain.policy_experiment, out, deficit)
    judge, judge_metrics = cfg.judge, {}
    if not judge and cfg.judge_kind in ("oracle", "random"):  # the ceiling and the floor: nothing to train
        judge = cfg.judge_kind
    elif not judge:
        if cfg.judge_kind not in ("joint", "single"):
            raise SystemExit(f"judge_kind must be joint, single, oracle or random, got {cfg.judge_kind!r}")
        experiment = "reward_joint" if cfg.judge_kind == "joint" else f"reward_{task}"
        judge_metrics = _train_stage(cfg, "judge", experiment, out, [])
        judge = str(out / "judge" / "export")
    if cfg.candidates:  # another run's candidate sets of the same policy: judges compared on the same samples
        folder = Path(cfg.candidates)
        candidates = {split: json.loads((folder / split / "summary.json").read_text())["totals"] for split in SPLITS}
    else:
        folder = out / "candidates"
        candidates = _predict_stage(
            cfg,
            "candidates",
            domain.candidate_stage,
            out,
            [
                f"model={domain.candidate_model}",
                f"model.pretrained={policy}",
                *prompt_records,
                f"candidates_per_prompt={cfg.candidates_per_prompt}",
            ],
        )
    # every judge's DPO run is tested on all held-out questions or captions, not only on the sets that judge kept
    pairs = _predict_stage(
        cfg,
        "filter",
        "filter",
        out,
        [f"candidates={folder}", f"judge={judge}", f"both_orders={cfg.both_orders}", "keep_questions=true"],
    )
    require_pairs(pairs, keep_questions=True)
    dpo = _train_stage(
        cfg,
        "dpo",
        domain.dpo_experiment,
        out,
        ["data=shards", f"data.source.root={out / 'filter'}", f"model.pretrained={policy}", *domain.dpo_overrides],
    )
    before, after = dpo.get(domain.before), dpo.get(domain.after)
    report = {
        "domain": task,
        "judge_kind": cfg.judge_kind,  # with judge=<export>: what that export is (joint, single)
        "seed": cfg.seed,
        "deficit": cfg.deficit,
        "judge": judge,
        "policy": policy,
        "judge_test_accuracy": judge_metrics.get(f"test/acc/{task}_pair"),
        "candidates": candidates,
        "filter": pairs,
        "oracle_agreement_train": oracle_agreement(pairs["train"]),
        "policy_score_before": before,
        "policy_score_after": after,
        "policy_score_gain": None if before is None or after is None else after - before,
        "policy_metrics": {
            k: v for k, v in dpo.items() if k.startswith(("test/oracle", "test/hallucination", "test/score"))
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    (out / "pipeline.json").write_text(json.dumps(report, indent=2))
    log.info(
        "%s (%s judge): kept %s of %s train sets, oracle agreement %s; policy %s -> %s",
        task,
        report["judge_kind"],
        pairs["train"].get("kept"),
        pairs["train"].get("sets"),
        report["oracle_agreement_train"],
        before,
        after,
    )
    return report


@hydra.main(version_base="1.3", config_path="../configs", config_name="pipeline.yaml")
def main(cfg: DictConfig) -> float | None:
    from unified_reward.runs import run_status

    with run_status(cfg.output):
        return run(cfg)["policy_score_gain"]


if __name__ == "__main__":
    main()
