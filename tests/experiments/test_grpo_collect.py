import json

from tests_support import load_script


def _offline(root, judge, seed, gain, calls=(5, 10)):
    folder = root / "image_understanding" / f"seed{seed}" / judge
    folder.mkdir(parents=True)
    report = {
        "judge_kind": judge,
        "seed": seed,
        "filter": {"train": {"pair_judgments": calls[0], "point_judgments": calls[1]}},
        "policy_metrics": {"test/oracle_score_sampled_gain": gain, "test/oracle_score_gain": gain / 2},
    }
    (folder / "pipeline.json").write_text(json.dumps(report))


def _online(root, judge, reward, seed, gain, finished=True):
    folder = root / f"seed{seed}" / f"{judge}-{reward}"
    folder.mkdir(parents=True)
    metrics = {"train/judge_calls_total": 12.0}
    if finished:
        metrics |= {"test/oracle_score": 0.5, "test/oracle_score_sampled_gain": gain, "test/oracle_score_gain": 0.0}
    (folder / "metrics.json").write_text(json.dumps({"metrics": metrics}))


def test_offline_and_online_rows_side_by_side(tmp_path):
    collect = load_script("experiments/grpo/collect.py", "grpo_collect")
    offline, online = tmp_path / "offline", tmp_path / "online"
    _offline(offline, "oracle", 1, 0.10)
    _offline(offline, "oracle", 2, 0.12)
    _online(online, "oracle", "win_rate", 1, 0.07)
    _online(online, "oracle", "win_rate", 2, 0.09)
    _online(online, "joint", "score", 1, -0.1)
    _online(online, "joint", "win_rate", 1, 0.3, finished=False)  # killed before its test: not a row
    rows = collect.offline_rows(offline) | collect.online_rows(online)
    assert sorted(rows) == [("joint", "GRPO score"), ("oracle", "GRPO win_rate"), ("oracle", "offline DPO")]
    text = collect.table(rows)
    lines = [line for line in text.splitlines()[2:]]
    assert [line.split(" | ")[:2] for line in lines] == [
        ["| joint", "GRPO score"],
        ["| oracle", "offline DPO"],
        ["| oracle", "GRPO win_rate"],
    ]
    # judge calls 15 per offline run; sampled gain mean ± sample std of (0.10, 0.12)
    assert "| oracle | offline DPO | 1,2 | 15 ± 0 (n=2) |" in text and "0.110 ± 0.014 (n=2)" in text
    seeds = collect.per_seed(rows, "test/oracle_score_sampled_gain", "test/oracle_score_sampled_gain")
    assert "| oracle | GRPO win_rate | +0.070 | +0.090 |" in seeds and "| joint | GRPO score | -0.100 | - |" in seeds
