import json

import pytest
import yaml

from tests_support import load_script


def _collect():
    return load_script("experiments/joint_vs_single/collect.py", "collect")


def _run(folder, task_name, seed, metrics):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"task_name": task_name, "seed": seed}))
    (folder / "metrics.json").write_text(json.dumps({"metrics": metrics}))


def test_table_and_plot_from_run_folders(tmp_path):
    collect = _collect()
    for seed, (joint, single) in enumerate([(0.9, 0.8), (0.7, 0.6)]):
        _run(
            tmp_path / f"j{seed}",
            "reward_joint",
            seed,
            {"test/acc/image_generation_pair": joint, "test/mae/image_generation_point": 0.5},
        )
        _run(tmp_path / f"s{seed}", "reward_image_generation", seed, {"test/acc/image_generation_pair": single})
    table = collect.summarize(collect.load_runs([tmp_path]))
    assert table[("image_generation", "joint", "acc")] == pytest.approx([0.9, 0.7])
    assert table[("image_generation", "single", "acc")] == pytest.approx([0.8, 0.6])
    text = collect.markdown(table)
    # sample std of (0.8, 0.6): sqrt((0.1**2 + 0.1**2) / (2 - 1)) = 0.141
    assert "| image_generation | 0.700 ± 0.141 (n=2) | 0.800 ± 0.141 (n=2) |" in text
    collect.plot(table, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000
