import json
import subprocess
import sys

import pytest

from tests_support import ROOT
from unified_reward.data.media import VideoSampling
from unified_reward.data.reading import ShardStream
from unified_reward.synthetic.oracle import score_answer, score_generation
from unified_reward.synthetic.policy_sft import HallucinatingAnswers, MismatchedMedia


def _train_records(source) -> list:
    source.prepare()
    (urls,) = source.streams("train").values()
    return list(ShardStream(urls, name="train", sampling=VideoSampling(num_frames=8)))


@pytest.mark.parametrize("task", ["image_understanding", "video_understanding"])
def test_the_hallucination_share_of_the_sft_targets_is_the_knob(task, tmp_path):
    counts = {"train": 60, "val": 4, "test": 4}
    for share in (0.0, 0.5):
        records = _train_records(
            HallucinatingAnswers(tmp_path, task=task, hallucination=share, records_per_stream=counts)
        )
        assert len(records) == 60
        lies = 0
        for record in records:
            target, rejected = record.candidates
            # the oracle reads the pixels: a flagged target states one asked attribute wrongly, the others are exact
            assert score_answer(record.prompt, record.context, target).hallucinated == record.meta["hallucinated"]
            if not record.meta["hallucinated"]:
                assert score_answer(record.prompt, record.context, target).fraction == 1.0
            assert score_answer(record.prompt, record.context, rejected).fraction == 0.0
            lies += record.meta["hallucinated"]
        assert lies == 0 if share == 0 else 20 <= lies <= 40  # 30 expected of 60 at 0.5


@pytest.mark.parametrize("task", ["image_generation", "video_generation"])
def test_the_mismatch_share_of_the_generator_pairs_is_the_knob(task, tmp_path):
    counts = {"train": 40, "val": 2, "test": 2}
    for share in (0.0, 0.5):
        records = _train_records(MismatchedMedia(tmp_path, task=task, mismatch=share, records_per_stream=counts))
        assert len(records) == 40
        mismatched = 0
        for record in records:
            shown, rejected = record.candidates
            # the oracle reads the pixels: a flagged chosen sample misses exactly one caption attribute
            missed = [a for a, ok in score_generation(record.prompt, shown).satisfied.items() if not ok]
            assert len(missed) == (1 if record.meta["mismatched"] else 0)
            assert not any(score_generation(record.prompt, rejected).satisfied.values())
            mismatched += record.meta["mismatched"]
        assert mismatched == 0 if share == 0 else 10 <= mismatched <= 30  # 20 expected of 40 at 0.5


@pytest.mark.slow
def test_the_hallucination_knob_moves_the_trained_policys_measured_hallucination(tmp_path):
    """The recipe's policy (experiment=vlm_policy_image, 600 steps) SFT'd with no lying targets and with only lying
    ones: the share of its sampled test answers that state an asked attribute wrongly follows the knob."""
    rates = {}
    for share in (0.0, 1.0):
        run = tmp_path / f"share{share}"
        command = [
            sys.executable,
            str(ROOT / "src" / "train.py"),
            "experiment=vlm_policy_image",
            "data=hallucinating_answers",
            f"data.source.hallucination={share}",
            "data.source.records_per_stream={train: 1500, val: 32, test: 100}",
            "module.eval_samples=4",
            "trainer.val_check_interval=600",
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={run}",
            f"callbacks.export.dirname={run / 'export'}",
        ]
        finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert finished.returncode == 0, finished.stderr[-3000:]
        rates[share] = json.loads((run / "metrics.json").read_text())["metrics"]["test/hallucination_sampled"]
    assert rates[1.0] > rates[0.0] + 0.15, rates
