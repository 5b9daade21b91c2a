"""End-to-end: compose the real Hydra config of every experiment and run src/train.py on it (a few steps)."""

import json

import pytest
import torch

from tests_support import ROOT, compose_config, train_entry

EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))


def _overrides(experiment: str) -> list[str]:
    if experiment == "tiny_base":
        # the skills datamodule reads no world shards (debug=fast sizes those)
        return ["~data.source", "module.vision_steps=2", "data.eval_per_kind=2", "data.num_workers=0"]
    if experiment.startswith("diffusion_dpo"):
        # a random tiny generator stands in for the one experiment=diffusion_pretrain_* exports; the oracle scores
        # most of its noise alike, and 4 samples per caption (not 2) leave every split some untied pairs
        return ["model.pretrained=null", "module.sample_steps=1", "data.source.candidates=4"]
    if experiment.startswith("diffusion_pretrain"):
        return ["module.sample_steps=1"]
    if experiment.startswith("vlm_dpo"):
        # a random tiny policy stands in for the one experiment=vlm_policy_* exports; its sampled answers are
        # noise the oracle scores 0 (all ties), so the smoke run reads the world's own pairs
        # (tests/generation/test_policy_answer_pairs.py covers the on-policy pairs)
        task = experiment.removeprefix("vlm_dpo_")
        return ["model.pretrained=null", "data=synthetic", f"data.tasks=[{task}_understanding]", "data.modes=[pair]"]
    return []


def _tensorboard_images(run) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in run.glob("tensorboard/**/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["images"])
    return tags


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_a_few_steps(experiment, tmp_path):
    cfg = compose_config(tmp_path, f"experiment={experiment}", "debug=fast", *_overrides(experiment))
    metrics = train_entry().train(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(metrics, nan_ok=True)
    if experiment == "tiny_base":  # the recipe of the shipped base: trains, validates what it sees, exports
        assert 0.0 <= metrics["val/perception/min"] <= 1.0
        exported = tmp_path / "run" / "base"
        assert (exported / "model.safetensors").exists() and "Measured perception" in (
            exported / "README.md"
        ).read_text()
        return
    assert "test/loss" in metrics
    # a checkpoint must load without unpickling arbitrary objects, or resuming fails (torch's default)
    torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    if experiment.startswith("reward"):
        assert any(k.startswith("test/acc/") for k in metrics)
        assert (tmp_path / "run" / "judge" / "judge.json").exists()
    elif experiment.startswith("vlm"):
        assert 0.0 <= metrics["test/oracle_score"] <= 1.0 and metrics["test/answered"] > 0
        if experiment.startswith("vlm_dpo"):
            assert "test/oracle_score_reference" in metrics and "test/rewards/accuracies" in metrics
        exported = tmp_path / "models" / cfg.task_name if "policy" in experiment else tmp_path / "run" / "policy"
        assert (exported / "config.json").exists() and (exported / "tokenizer_config.json").exists()
    else:
        assert 1.0 <= metrics["test/score"] <= 5.0 and metrics["test/score_count"] > 0
        if experiment.startswith("diffusion_dpo"):
            assert "test/score_reference" in metrics and "test/implicit_accuracy" in metrics
        assert _tensorboard_images(tmp_path / "run") >= {"samples"}
        exported = tmp_path / "models" / cfg.task_name if "pretrain" in experiment else tmp_path / "run" / "generator"
        assert (exported / "unet" / "config.json").exists()


def test_train_without_a_module_says_what_to_do(tmp_path):
    cfg = compose_config(tmp_path)
    with pytest.raises(SystemExit, match="experiment=reward_joint"):
        train_entry().train(cfg)


@pytest.mark.parametrize(
    "overrides, source",
    [
        (["experiment=reward_joint", "data=shards", "data.source.root=/somewhere"], "ShardFolder"),
        (["experiment=reward_joint", "data=urls", "data.source.urls={train: {x_pair: a.tar}}"], "ShardURLs"),
        (["experiment=diffusion_dpo_image", "data=shards", "data.source.root=/somewhere"], "ShardFolder"),
        (["experiment=vlm_dpo_image", "data=shards", "data.source.root=/somewhere"], "ShardFolder"),
    ],
)
def test_real_data_sources_compose_and_build(overrides, source, tmp_path):
    import hydra

    cfg = compose_config(tmp_path, *overrides)
    assert type(hydra.utils.instantiate(cfg.data.source)).__name__ == source
    if "dpo" in overrides[0]:  # a DPO experiment reads only the pair streams of its task, whatever the source
        assert list(cfg.data.modes) == ["pair"] and len(cfg.data.tasks) == 1
