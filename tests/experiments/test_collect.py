import json
import math

import pytest
import yaml

from tests_support import load_script


def _collect():
    return load_script("experiments/joint_vs_single/collect.py", "collect")


def _run(folder, arm, budget, seed, metrics):
    (folder / ".hydra").mkdir(parents=True)
    config = {"task_name": arm, "seed": seed, "budget": {"name": budget}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.json").write_text(json.dumps({"metrics": metrics}))


def test_sign_test_is_the_exact_binomial_tail():
    collect = _collect()
    # 5 of 5 positive: 2 * (1/2)^5; 4 of 5: 2 * (C(5,4) + C(5,5)) / 32; ties are dropped
    assert collect.sign_test([0.1] * 5) == pytest.approx(2 / 32)
    assert collect.sign_test([0.1, 0.2, 0.1, 0.3, -0.1]) == pytest.approx(2 * (5 + 1) / 32)
    assert collect.sign_test([0.1, 0.0, 0.0]) == pytest.approx(1.0)  # one sign: p = 2 * 1/2
    assert collect.sign_test([0.0, 0.0]) == 1.0


def test_tables_paired_differences_and_plots_from_run_folders(tmp_path):
    collect = _collect()
    joint = [0.9, 0.8, 0.7]
    single = [0.6, 0.7, 0.5]  # joint - single: 0.3, 0.1, 0.2
    for seed in range(3):
        _run(
            tmp_path / f"j{seed}",
            "reward_joint",
            "same_examples",
            seed,
            {"test/acc/image_generation_pair": joint[seed], "test/acc/video_generation_pair": 0.5},
        )
        metrics = {"test/acc/image_generation_pair": single[seed], "test/acc/video_generation_pair": 0.4}
        _run(tmp_path / f"s{seed}", "reward_image_generation", "same_examples", seed, metrics)
        _run(tmp_path / f"c{seed}", "reward_image_generation", "same_compute", seed, metrics)
    _run(tmp_path / "other", "reward_base", "none", 0, {"test/acc/image_generation_pair": 1.0})  # not an arm
    table = collect.by_seed(collect.load_runs([tmp_path]))
    assert table[("same_examples", "reward_joint", "acc", "image_generation")] == {0: 0.9, 1: 0.8, 2: 0.7}
    # same_compute has no joint run of its own: it takes the same_examples ones (the same 300 steps)
    assert table[("same_compute", "reward_joint", "acc", "image_generation")] == {0: 0.9, 1: 0.8, 2: 0.7}

    (row,) = [r for t, arm, r in collect.comparisons(table, "same_examples") if arm == "reward_image_generation"]
    assert row["mean"] == pytest.approx(0.2) and row["n"] == 3
    assert row["stderr"] == pytest.approx(0.1 / math.sqrt(3))  # sample std of (0.3, 0.1, 0.2) is 0.1
    assert row["p"] == pytest.approx(2 / 8)
    assert 0.1 - 1e-9 <= row["ci"][0] <= 0.2 <= row["ci"][1] <= 0.3 + 1e-9  # within the smallest and largest
    # the video-generation cell of the image-generation arm is transfer: shown, never compared
    assert all(task == "image_generation" for task, _, _ in collect.comparisons(table, "same_examples"))

    text = collect.markdown(table)
    assert "| image_generation | **0.600 ± 0.100 (n=3)** | - | 0.400 ± 0.000 (n=3) | - |" in text
    assert "| image_generation | image_generation | +0.200 | 0.058 | 0.250 |" in text
    assert "### Budget `same_compute`" in text
    collect.heat_map(table, tmp_path / "transfer.png")
    collect.plot(table, tmp_path / "plot.png")
    assert (tmp_path / "transfer.png").stat().st_size > 1000 and (tmp_path / "plot.png").stat().st_size > 1000
