import json

import yaml

from tests_support import load_script
from unified_reward.data.tasks import PAPER_TASKS


def _run(folder, world, seed, pair, spearman, invalid=0.0, seconds=600.0):
    (folder / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "data": {"source": {"seed": world}}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {}
    for task, accuracy, rho in zip(PAPER_TASKS, pair, spearman, strict=True):
        metrics[f"test/acc/{task}_pair"] = accuracy
        metrics[f"test/spearman/{task}_point"] = rho
        metrics[f"test/invalid/{task}_pair"] = invalid
    (folder / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    (folder / "status.json").write_text(json.dumps({"status": "completed", "seconds": seconds}))


def test_rows_spread_and_target_counts(tmp_path):
    table = load_script("experiments/judge_learnability/main_job_table.py", "main_job_table")
    _run(tmp_path / "a", 0, 0, [0.96, 1.0, 0.94, 1.0], [0.9] * 4)  # meets every target
    _run(tmp_path / "b", 0, 1, [0.99, 1.0, 0.91, 1.0], [0.9] * 4)  # mean 0.975, but a task below 0.92
    _run(tmp_path / "c", 1, 0, [1.0] * 4, [0.9, 0.9, 0.84, 0.9], invalid=0.005)  # Spearman and invalid fail
    folders = sorted(p for p in tmp_path.iterdir())
    runs = [table.load_run(folder) for folder in folders]
    assert [table.meets(run) for run in runs] == [
        {"mean": True, "task": True, "spearman": True, "invalid": True},
        {"mean": True, "task": False, "spearman": True, "invalid": True},
        {"mean": True, "task": True, "spearman": False, "invalid": False},
    ]
    text = table.markdown(runs)
    assert "| 0 | 0 | 0.960 / 1.000 / 0.940 / 1.000 | 0.975 |" in text
    assert text.count("| yes |") == 1
    # world 0, image generation: 0.96 and 0.99, sample std sqrt(2 * 0.015**2) = 0.021
    assert "| world 0 (2 runs) | | 0.975 ± 0.021 (n=2) /" in text
    assert "mean >= 0.95 3; every task >= 0.92 2; every Spearman >= 0.85 2; no invalid answer 2." in text
    assert runs[0]["minutes"] == 10.0
