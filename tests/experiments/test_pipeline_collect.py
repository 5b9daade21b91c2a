import json

import pytest

from tests_support import load_script


def _collect():
    return load_script("experiments/pipeline/collect.py", "pipeline_collect")


def _report(folder, judge_kind, seed, before, after, agreement):
    folder.mkdir(parents=True)
    report = {
        "domain": "image_understanding",
        "judge_kind": judge_kind,
        "seed": seed,
        "policy_score_before": before,
        "policy_score_after": after,
        "policy_score_gain": None if after is None else after - before,
        "oracle_agreement_train": agreement,
    }
    (folder / "pipeline.json").write_text(json.dumps(report))


def test_table_and_plot_from_pipeline_reports(tmp_path):
    collect = _collect()
    _report(tmp_path / "m" / "0", "joint", 1, 0.50, 0.60, 0.7)
    _report(tmp_path / "m" / "1", "joint", 2, 0.50, 0.40, 0.5)
    _report(tmp_path / "m" / "2", "single", 1, 0.50, None, None)  # a run that measured no after-score
    table = collect.summarize(collect.load_reports([tmp_path]))
    assert table[("image_understanding", "joint", "gain")] == pytest.approx([0.1, -0.1])
    assert table[("image_understanding", "single", "before")] == [0.5]
    assert ("image_understanding", "single", "gain") not in table
    text = collect.markdown(table)
    # sample std of (0.6, 0.4) and of (0.1, -0.1): sqrt(2 * 0.1**2 / (2 - 1)) = 0.141
    assert "| image_understanding | joint | 0.500 ± 0.000 (n=2) | 0.500 ± 0.141 (n=2) | 0.000 ± 0.141 (n=2) |" in text
    assert "| image_understanding | single | 0.500 (n=1) | - | - | - |" in text
    collect.plot(table, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_sampled_scores_and_hallucination_columns_and_the_judge_order(tmp_path):
    collect = _collect()
    for i, judge in enumerate(("oracle", "random")):
        folder = tmp_path / str(i)
        _report(folder, judge, 1, 0.6, 0.7, 0.9)
        report = json.loads((folder / "pipeline.json").read_text())
        report["policy_metrics"] = {
            "test/oracle_score_sampled_gain": 0.05,
            "test/hallucination_sampled_reference": 0.3,
            "test/hallucination_sampled": 0.2,
            "test/oracle_score_stderr": 0.02,
        }
        (folder / "pipeline.json").write_text(json.dumps(report))
    text = collect.markdown(collect.summarize(collect.load_reports([tmp_path])))
    assert "gain (4 sampled answers per question)" in text and "hallucinating, before" in text
    rows = [line for line in text.splitlines() if line.startswith("| image_understanding")]
    assert [row.split(" | ")[1] for row in rows] == ["random", "oracle"]  # the floor first, the ceiling last
    assert "| 0.050 (n=1) | 0.300 (n=1) | 0.200 (n=1) | 0.020 (n=1) |" in rows[0]
