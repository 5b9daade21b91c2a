from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests_support import compose_config, train_entry


def _train_losses(run_dir: Path) -> dict[int, float]:
    losses = {}
    for events in sorted(run_dir.rglob("events.out.tfevents*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "train/loss" in accumulator.Tags()["scalars"]:
            losses.update({e.step: e.value for e in accumulator.Scalars("train/loss")})
    return losses


def test_resume_from_last_checkpoint_continues_with_the_same_losses(tmp_path):
    common = [
        "experiment=reward_image_understanding",
        "debug=fast",
        "test=false",
        "trainer.val_check_interval=1",
        "trainer.limit_val_batches=0",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "data.num_workers=0",
        "~callbacks.export",
    ]
    straight = tmp_path / "straight"
    train_entry().train(compose_config(straight, *common, "trainer.max_steps=6"))
    interrupted = tmp_path / "interrupted"
    train_entry().train(
        compose_config(
            interrupted,
            *common,
            "trainer.max_steps=6",
            "+callbacks.stop._target_=tests_support.StopAfterSteps",
            "+callbacks.stop.steps=3",
        )
    )
    checkpoint = interrupted / "run" / "checkpoints" / "last.ckpt"
    assert checkpoint.exists()
    resumed = tmp_path / "resumed"
    train_entry().train(
        compose_config(
            resumed, *common, "trainer.max_steps=6", f"ckpt_path={checkpoint}", f"paths.data_dir={interrupted / 'data'}"
        )
    )
    expected = _train_losses(straight / "run")
    first_part, second_part = _train_losses(interrupted / "run"), _train_losses(resumed / "run")
    assert sorted(expected) == [0, 1, 2, 3, 4, 5]
    assert sorted(second_part) == [3, 4, 5]
    for step in (0, 1, 2):
        assert first_part[step] == pytest.approx(expected[step], rel=1e-5)
    for step in (3, 4, 5):
        assert second_part[step] == pytest.approx(expected[step], rel=1e-5), (step, second_part, expected)
