"""src/pipeline.py end to end on a tiny world: every stage runs as its own command, and a second run resumes."""

import json
import subprocess
import sys

import pytest

from tests_support import ROOT

sys.path.insert(0, str(ROOT / "src"))
from pipeline import oracle_agreement, require_pairs  # noqa: E402

PROMPTS = "domain.prompts_per_split={train: 16, val: 8, test: 8}"
SHORT_DPO = [
    "trainer.max_steps=2",
    "trainer.val_check_interval=1",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "data.batch_size=2",
    "data.eval_batch_size=2",
]


def _quoted(items):
    return "[" + ",".join(f"'{item}'" for item in items) + "]"


UNDERSTANDING = {
    "policy": ["debug=fast"],
    # 40 steps: enough to answer in the pair format (a random judge puts all its mass on the tie answer, and
    # the filter rightly keeps nothing), not to judge well
    "judge": ["debug=fast", "trainer.max_steps=40", "trainer.val_check_interval=40"],
    "candidates": ["max_new_tokens=8"],
    "dpo": SHORT_DPO,
}
GENERATION = UNDERSTANDING | {
    "policy": ["debug=fast", "module.sample_steps=1"],
    "candidates": ["sample_steps=2"],
    "dpo": [*SHORT_DPO, "module.sample_steps=1"],
}


def _pipeline(tmp_path, *extra, domain="image_understanding", stages=UNDERSTANDING, judge_kind="single"):
    command = [
        sys.executable,
        str(ROOT / "src" / "pipeline.py"),
        f"domain={domain}",
        f"hydra.run.dir={tmp_path / 'pipeline'}",
        "candidates_per_prompt=4",
        "batch_size=4",
        f"judge_kind={judge_kind}",
        PROMPTS,
        f"overrides.all={_quoted([f'paths.root_dir={tmp_path}'])}",
        *(f"overrides.{stage}={_quoted(items)}" for stage, items in stages.items()),
        *extra,
    ]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)


def test_pipeline_runs_every_stage_then_resumes_without_rerunning(tmp_path):
    first = _pipeline(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "pipeline"
    report = json.loads((out / "pipeline.json").read_text())
    for stage in ("policy", "judge", "dpo"):
        assert (out / stage / "metrics.json").exists()
    assert (out / "policy" / "export" / "config.json").exists() and (out / "judge" / "export" / "judge.json").exists()
    assert report["candidates"]["train"]["sets"] == 16 and report["filter"]["train"]["sets"] == 16
    assert report["filter"]["train"]["pair_judgments"] == 16 * 2 and report["filter"]["train"]["point_judgments"] == 64
    assert 0.0 <= report["policy_score_before"] <= 1.0 and 0.0 <= report["policy_score_after"] <= 1.0
    assert report["policy_score_gain"] == pytest.approx(report["policy_score_after"] - report["policy_score_before"])
    assert report["judge_kind"] == "single" and 0.0 <= report["judge_test_accuracy"] <= 1.0

    again = _pipeline(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (again.stdout + again.stderr).count("done before") == 5  # policy, judge, candidates, filter, dpo
    assert json.loads((out / "pipeline.json").read_text())["policy_score_after"] == report["policy_score_after"]


VIDEO_NOISE_TIES = pytest.mark.xfail(
    reason="the oracle scores every pair of the 2-step video generator's noise samples alike on the test split "
    "(measured: 8 sets, 16 tied pairs, none kept), so the pipeline refuses by design; needs a trained generator",
    strict=False,
)


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["image_generation", pytest.param("video_generation", marks=VIDEO_NOISE_TIES)])
def test_generation_pipeline_samples_filters_and_aligns_a_generator(tmp_path, domain):
    # the oracle judges: a 40-step judge from the tiny base calls every pair of a 2-step generator's noise a tie
    finished = _pipeline(tmp_path, domain=domain, stages=GENERATION, judge_kind="oracle")
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads((tmp_path / "pipeline" / "pipeline.json").read_text())
    assert report["candidates"]["train"]["sets"] == 16 and report["filter"]["train"]["point_judgments"] == 64
    assert report["judge"] == "oracle" and report["oracle_agreement_train"] == 1.0  # the same reading of samples
    assert 1.0 <= report["policy_score_before"] <= 5.0 and 1.0 <= report["policy_score_after"] <= 5.0
    assert (tmp_path / "pipeline" / "dpo" / "export" / "unet" / "config.json").exists()


def test_a_failing_stage_stops_the_pipeline_and_names_it(tmp_path):
    failed = _pipeline(tmp_path, "policy=/nonexistent/policy", "judge=/nonexistent/judge")
    assert failed.returncode != 0
    assert "stage candidates failed" in failed.stderr


def test_a_split_without_kept_pairs_is_refused_with_the_filters_counts():
    with pytest.raises(SystemExit, match=r"kept no pairs in \['val'\].*chosen_not_better"):
        require_pairs({"train": {"kept": 3}, "val": {"kept": 0, "dropped/chosen_not_better": 8}, "test": {"kept": 1}})
    # dropped sets kept as ties: held-out splits need no pair, training does
    require_pairs({"train": {"kept": 3}, "val": {"kept": 0, "sets": 8}, "test": {"kept": 0}}, keep_questions=True)
    with pytest.raises(SystemExit, match=r"kept no pairs in \['train'\]"):
        require_pairs({"train": {"kept": 0, "dropped/all_pairs_tied": 9}, "val": {"kept": 2}}, keep_questions=True)


def test_oracle_agreement_counts_only_pairs_the_oracle_tells_apart():
    assert oracle_agreement({"oracle_prefers/chosen": 3, "oracle_prefers/rejected": 1, "oracle_prefers/tie": 9}) == 0.75
    assert oracle_agreement({"oracle_prefers/tie": 4}) is None
