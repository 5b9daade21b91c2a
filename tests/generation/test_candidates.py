import json
import os
import subprocess
import sys

import numpy as np
import torch
import webdataset as wds
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from tests_support import ROOT
from unified_reward.data.media import VideoSampling, decode_media, encode_video
from unified_reward.data.schema import PreferenceRecord
from unified_reward.data.shards import decode_candidate_set


def _candidate_stage(tmp_path, *overrides: str, stage: str = "candidates") -> subprocess.CompletedProcess:
    """`src/predict.py stage=<stage>` on a small synthetic world, writing to tmp_path/candidates."""
    command = [
        sys.executable,
        str(ROOT / "src" / "predict.py"),
        f"stage={stage}",
        *overrides,
        f"output={tmp_path / 'candidates'}",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        "logger=[]",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _candidate_sets(folder) -> list:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [
        decode_candidate_set(sample, None)
        for entry in manifest["streams"].values()
        for shard in entry["shards"]
        for sample in wds.WebDataset(str(folder / shard), shardshuffle=False)
    ]


def test_candidate_stage_samples_n_answers_per_question_with_oracle_scores(tmp_path):
    result = _candidate_stage(
        tmp_path,
        "model.pretrained=null",  # a random tiny policy: its answers are noise, the mechanics are real
        "data.tasks=[image_understanding,video_understanding]",
        "data.modes=[pair]",
        "data.source.records_per_stream={train: 6, val: 2, test: 2}",
        "+data.source.shard_size=3",
        "candidates_per_prompt=4",
        "max_new_tokens=6",
        "flush_every=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "candidates" / "train"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["streams"]) == {"image_understanding_candidates", "video_understanding_candidates"}
    sets = _candidate_sets(folder)
    assert len(sets) == 12 and len({s.id for s in sets}) == 12
    for candidate_set in sets:
        assert len(candidate_set.candidates) == 4 and candidate_set.context is not None
        scores = candidate_set.meta["oracle_scores"]
        assert len(scores) == 4 and all(0.0 <= x <= 1.0 for x in scores)
    assert json.loads((folder / "summary.json").read_text())["totals"]["sets"] == 12


def test_candidate_stage_samples_n_images_per_caption_with_distinct_seeds(tmp_path):
    result = _candidate_stage(
        tmp_path,
        "model=t2i_unet_tiny",  # a random tiny generator: noise images, real sampling and oracle
        "data.tasks=[image_generation]",
        "data.modes=[pair]",
        "data.source.records_per_stream={train: 4, val: 2, test: 2}",
        "+data.source.shard_size=2",
        "candidates_per_prompt=3",
        "sample_steps=2",
        stage="generator_candidates",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sets = _candidate_sets(tmp_path / "candidates" / "train")
    assert len(sets) == 4
    for candidate_set in sets:
        assert candidate_set.task == "image_generation" and len(candidate_set.candidates) == 3
        assert len(set(candidate_set.meta["seeds"])) == 3 and len({c.data for c in candidate_set.candidates}) == 3
        assert all(1.0 <= x <= 5.0 for x in candidate_set.meta["oracle_scores"])


def test_video_candidates_are_stored_as_sampled_so_the_oracle_reads_what_it_scored(tmp_path):
    """The evaluator (the world's oracle in the stage) scores the sampled pixels; the stored candidate must decode to
    exactly those: H.264 at crf 18 changed the oracle's reading of half of a trained tiny generator's videos."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "predict.yaml",
            overrides=[
                "stage=generator_candidates",
                "model=t2v_animatediff_tiny",
                "sample_steps=2",
                "candidates_per_prompt=2",
                "data.tasks=[video_generation]",
            ],
        )
    scored = []
    torch.manual_seed(0)
    module = instantiate(cfg.module, evaluator=lambda caption, pixels: scored.append(pixels) or 1.0)
    blank = encode_video(np.zeros((8, 32, 32, 3), np.uint8))
    record = PreferenceRecord.preference_pair(
        id="caption-0",
        task="video_generation",
        prompt="one red circle moving left",
        chosen=blank,
        rejected=blank,
        source="test",
    )
    (outcome,) = module.predict_step([record], 0)
    stored = outcome.record.candidates
    assert len(stored) == len(scored) == 2
    for video, pixels in zip(stored, scored, strict=True):
        np.testing.assert_array_equal(decode_media(video, VideoSampling(num_frames=8)).frames, pixels)


def test_candidate_stage_refuses_tasks_the_model_cannot_produce(tmp_path):
    result = _candidate_stage(tmp_path, "data.tasks=[image_generation]")  # the default model is a VLM policy
    assert result.returncode != 0 and "a VLM policy answers questions" in result.stderr


def test_each_stage_refuses_the_other_kind_of_model_and_says_which_stage_fits(tmp_path):
    result = _candidate_stage(tmp_path, "model=t2i_unet_tiny", "data.tasks=[image_generation]")
    assert result.returncode != 0 and "this model fits stage=generator_candidates" in result.stderr
    result = _candidate_stage(tmp_path, "data.tasks=[image_understanding]", stage="generator_candidates")
    assert result.returncode != 0 and "this model fits stage=candidates" in result.stderr


def test_the_filter_stage_names_what_it_is_missing(tmp_path):
    result = _candidate_stage(tmp_path, stage="filter")
    assert result.returncode != 0 and "stage=filter needs candidates=<...> and judge=<...>" in result.stderr
