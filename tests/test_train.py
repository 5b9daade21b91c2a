"""End-to-end: compose the real Hydra config of every experiment and run src/train.py on it (a few steps)."""

import json

import pytest
import torch

from tests_support import ROOT, compose_config, train_entry

# the image-only and video-only arms are reward_joint with two train_tasks, like the single-task arms with one (their
# composition is tests/test_budgets.py); left out here to keep the default run under 15 minutes on 2 cores
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml") if not p.stem.endswith("_only"))


def _overrides(experiment: str) -> list[str]:
    if experiment == "tiny_base":
        # the skills datamodule reads no world shards (debug=fast sizes those)
        return ["~data.source", "module.vision_steps=2", "data.eval_per_kind=2", "data.num_workers=0"]
    if experiment.startswith("diffusion_dpo"):
        # a random tiny generator stands in for the one experiment=diffusion_pretrain_* exports, and the world's
        # own generation pairs for the filter's (tests/test_pipeline.py runs the loop that makes them)
        task = experiment.removeprefix("diffusion_dpo_")
        pairs = ["data=synthetic", f"data.tasks=[{task}_generation]", "data.modes=[pair]"]
        return ["model.pretrained=null", "module.sample_steps=1", *pairs]
    if experiment.startswith("diffusion_pretrain"):
        return ["module.sample_steps=1"]
    if "grpo" in experiment:
        # a random tiny policy or flow generator stands in for the exported one; the oracle rewards it
        return ["model.pretrained=null", *(["module.sample_steps=2"] if experiment.startswith("flow") else [])]
    if experiment.startswith("vlm_dpo"):
        # a random tiny policy stands in for the one experiment=vlm_policy_* exports, and the world's own pairs for
        # the filter's (tests/test_pipeline.py runs the loop that makes them from the policy's answers)
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
    # a checkpoint must load without unpickling arbitrary objects, or resuming fails (torch's default)
    torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    if "grpo" in experiment:  # online: rewarded by the judge, tested on the oracle's score before and after
        assert metrics["train/judge_calls_total"] > 0
        if experiment.startswith("vlm"):
            assert 0.0 <= metrics["test/oracle_score"] <= 1.0 and "test/oracle_score_reference" in metrics
            assert (tmp_path / "run" / "policy" / "config.json").exists()
        else:
            assert 1.0 <= metrics["test/score"] <= 5.0 and "test/score_reference" in metrics
            assert (tmp_path / "run" / "generator" / "transformer" / "config.json").exists()
        return
    assert "test/loss" in metrics
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


def _run_script(tmp_path, *overrides: str, timeout: float = 240):
    """src/train.py as a user runs it, stdout and stderr sent to a file (as on a cluster)."""
    import subprocess
    import sys

    log = tmp_path / "output.log"
    with log.open("w") as out:
        finished = subprocess.run(
            [sys.executable, str(ROOT / "src" / "train.py"), f"paths.root_dir={tmp_path}", *overrides],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            timeout=timeout,
            check=False,
        )
    runs = sorted((tmp_path / "logs").glob("*/runs/*"))
    assert runs, log.read_text()
    return finished.returncode, log.read_text(), runs[-1]


def _tensorboard(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = []
    for events in run.glob("tensorboard/**/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "tensors": 0})
        accumulator.Reload()
        found.append(accumulator)
    return found


def test_a_redirected_run_logs_progress_quietly_and_marks_itself_completed(tmp_path):
    import numpy as np
    from PIL import Image

    code, output, run = _run_script(
        tmp_path, "experiment=reward_joint", "debug=fast", "callbacks.progress_log.every_n_steps=1"
    )
    assert code == 0, output
    for line in (
        "fit: RewardSFTModule",
        "step 1/4 · loss",
        "samples/s",
        "ETA",
        "validation: started at step 2",
        "validation: done",
        "fit: done at step 4",
        "test: started",
        "test: done",
        "synthetic world",
        "judge exported",
    ):
        assert line in output, line
    for noise in (
        "bos_token_id",
        "eos_token_id",
        "FLOPs",
        "Epoch 0/-2",
        "Tip:",
        "LeafSpec",
        "Traceback",
        "transfer_batch_to_device",
        "Loading weights",
    ):
        assert noise not in output, noise
    assert output.count("test/acc/image_generation_pair") == 1  # one final table, with full names
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    assert not (run / "FAILED").exists()
    # TensorBoard examples show the context and every candidate medium, with the truth and the judge's answer
    accumulators = _tensorboard(run)
    texts = {}
    images = {}
    for accumulator in accumulators:
        for tag in accumulator.Tags()["tensors"]:
            if "/examples/" in tag:
                texts[tag.split("/text_summary")[0]] = accumulator.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
        for tag in accumulator.Tags()["images"]:
            if "/examples/" in tag:
                encoded = accumulator.Images(tag)[-1].encoded_image_string
                import io

                images[tag] = np.asarray(Image.open(io.BytesIO(encoded)))
    assert texts and images
    for tag, text in texts.items():
        assert "truth:" in text and "judge:" in text and "candidate 1:" in text and "candidate 2:" in text, text
        if "generation_pair" in text:  # two candidate media: two rows of equal height and a 2-pixel line
            height = images[tag].shape[0]
            assert (height - 2) % 2 == 0 and "(row 2 of the image)" in text
            assert np.all(images[tag][(height - 2) // 2 : (height + 2) // 2] == 255)
    assert any("generation_pair" in t for t in texts.values())


def _garbage_stream_folder(tmp_path, small_world):
    import shutil

    root = tmp_path / "shards"
    shutil.copytree(small_world, root)
    for shard in (root / "train").glob("image_generation_*.tar"):
        shard.write_bytes(b"not a tar archive" * 200)
    return root


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_a_run_on_a_stream_with_nothing_valid_stops_with_a_message_not_a_hang(workers, tmp_path, small_world):
    root = _garbage_stream_folder(tmp_path, small_world)
    code, output, run = _run_script(
        tmp_path,
        "experiment=reward_joint",
        "data=shards",
        f"data.source.root={root}",
        "data.tasks=[image_generation]",
        f"data.num_workers={workers}",
        "trainer.max_steps=4",
        timeout=120,
    )
    assert code == 1, output
    assert "Traceback" not in output
    if workers < 2:  # one reader (main process or worker) saw the whole stream: it names stream, shards, reason
        assert "stream 'train/image_generation_" in output and "corrupt_shard x4" in output
        assert "image_generation_pair-000000.tar" in output or "image_generation_point-000000.tar" in output
    else:  # shares ended one by one; the epoch guard stops the run with the skip counts
        assert "gave no batch in a whole epoch" in output and "corrupt_shard" in output
    assert "data.tasks" in output  # what to do
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and (run / "FAILED").read_text().startswith(("DataError", "UserError"))


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.pretrained=./no/such/folder", "no such local folder"),
        ("data=shards", "does not exist"),
    ],
)
def test_user_mistakes_get_one_message_without_a_traceback(override, expected, tmp_path):
    extra = ["data.source.root=/no/such/shards"] if override == "data=shards" else ["debug=fast"]
    code, output, run = _run_script(tmp_path, "experiment=reward_joint", override, *extra, timeout=120)
    assert code == 1 and expected in output and "Traceback" not in output, output
    assert (run / "FAILED").exists()


def test_skip_completed_does_not_run_a_completed_run_again(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "done"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"status": "completed"}))
    (run / "metrics.json").write_text(json.dumps({"metrics": {"test/acc/mean": 0.75}}))
    finished = subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), "experiment=reward_joint", f"hydra.run.dir={run}"]
        + [f"paths.root_dir={tmp_path}", "skip_completed=true"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "completed before (skip_completed=true): not run again" in finished.stdout + finished.stderr
    assert not (run / "checkpoints").exists() and not (tmp_path / "data").exists()  # nothing trained, no world made
    assert json.loads((run / "metrics.json").read_text())["metrics"] == {"test/acc/mean": 0.75}
