import pytest

from tests_support import compose_config
from unified_reward.budgets import steps_for_examples

TASKS = ["image_generation", "image_understanding", "video_generation", "video_understanding"]


def test_an_arm_on_k_of_n_tasks_runs_k_over_n_of_the_joint_steps():
    # 1200 examples of each of 4 tasks in batches of 16: 4800 / 16 = 300 steps; one task: 1200 / 16 = 75
    assert steps_for_examples(1200, 16, None, TASKS) == 300
    assert steps_for_examples(1200, 16, TASKS[:1], TASKS) == 75
    assert steps_for_examples(1200, 16, TASKS[:2], TASKS) == 150


def test_a_budget_that_is_not_whole_batches_is_refused():
    with pytest.raises(ValueError, match="multiple of 16"):
        steps_for_examples(1000, 16, TASKS[:1], TASKS)
    with pytest.raises(ValueError, match="no budget"):
        steps_for_examples(1200, 16, [], TASKS)


@pytest.mark.parametrize(
    ("experiment", "same_examples_steps", "trained"),
    [
        ("reward_joint", 300, None),
        ("reward_image_generation", 75, ["image_generation"]),
        ("reward_video_understanding", 75, ["video_understanding"]),
        ("reward_image_only", 150, ["image_generation", "image_understanding"]),
        ("reward_video_only", 150, ["video_generation", "video_understanding"]),
    ],
)
def test_every_arm_composes_under_both_budgets(experiment, same_examples_steps, trained, tmp_path):
    for budget, steps in (("same_examples", same_examples_steps), ("same_compute", 300)):
        cfg = compose_config(tmp_path, f"experiment={experiment}", f"budget={budget}")
        assert cfg.trainer.max_steps == steps and cfg.budget.name == budget
        assert (None if cfg.data.train_tasks is None else list(cfg.data.train_tasks)) == trained
        assert list(cfg.data.tasks) == TASKS  # every arm is tested on every task
        assert cfg.trainer.limit_val_batches == 0 and cfg.skip_completed
