"""Each reader on a fixture in its benchmark's released layout (tests/benchmark_fixtures.py)."""

import pytest

from benchmark_fixtures import (
    write_genai_bench,
    write_mmrb2,
    write_multimodal_rewardbench,
    write_videogen_rewardbench,
    write_vl_rewardbench,
)
from unified_reward.benchmarks import readers
from unified_reward.benchmarks.items import ItemError
from unified_reward.data.media import VideoSampling
from unified_reward.errors import UserError

SAMPLING = VideoSampling(num_frames=4)


def test_vl_rewardbench_truth_from_human_ranking_and_the_official_groups(tmp_path):
    items, skipped = readers.read_vl_rewardbench(write_vl_rewardbench(tmp_path))
    by_id = {i.id: i for i in items}
    assert [s.id for s in skipped] == ["RLHF-V-7"] and skipped[0].reason == "malformed_field"
    assert by_id["hallucination_pair-1"].truth == "first" and by_id["RLAIF-V-2"].truth == "second"
    groups = {i.id: i.group for i in items}
    assert groups == {
        "hallucination_pair-1": "hallucination",  # POVID: cal.py's fix, which UnifiedReward's scripts lack
        "RLAIF-V-2": "hallucination",
        "wildvision-battle-3": "general",
        "mathverse_4": "reasoning",
        "vlfeedback_5": "general",
        "mmmu_pro_6": "reasoning",
        "RLHF-V-8": "hallucination",
        "mathverse_4#row8": "reasoning",  # the release's second row with that id: an item of its own
    }
    assert by_id["mathverse_4#row8"].prompt == "How many circles?" and by_id["mathverse_4"].prompt == "How many?"
    assert len(items) + len(skipped) == 9  # one item per row
    context, candidates = by_id["hallucination_pair-1"].loaded(SAMPLING)
    assert context.size == (64, 64) and candidates == ("One red circle.", "Two dogs.")
    with pytest.raises(ItemError, match="corrupt_image"):
        by_id["RLHF-V-8"].loaded(SAMPLING)


def test_genai_bench_votes_embedded_images_and_local_videos(tmp_path):
    root = write_genai_bench(tmp_path)
    items, skipped = readers.read_genai_bench(root, "image_generation")
    assert [i.truth for i in items] == ["first", "second", "tie", "both_bad", "first"]
    assert [s.reason for s in skipped] == ["malformed_field"]  # vote_type "sideways"
    _, (left, right) = items[0].loaded(SAMPLING)
    assert left.size == right.size == (64, 64)
    videos, _ = readers.read_genai_bench(root, "video_generation")
    _, (left, right) = videos[0].loaded(SAMPLING)
    assert left.frames.shape == (4, 64, 64, 3)
    with pytest.raises(ItemError, match="missing_media: .*r2.mp4"):
        videos[2].loaded(SAMPLING)
    with pytest.raises(UserError, match="no image_generation/test-\\*.parquet found"):
        readers.read_genai_bench(root, "image_generation", split="test")


def test_videogen_rewardbench_labels_and_paths(tmp_path):
    items, skipped = readers.read_videogen_rewardbench(write_videogen_rewardbench(tmp_path))
    assert skipped == [] and [i.truth for i in items] == ["first", "second", "tie", "first"]
    assert items[3].labels == {"VQ": "tie", "MQ": "first", "TA": "first", "Overall": "first"}
    _, (a, b) = items[0].loaded(SAMPLING)
    assert a.frames.shape == b.frames.shape == (4, 64, 64, 3)


def test_multimodal_rewardbench_categories_split_as_its_script_does(tmp_path):
    items, skipped = readers.read_multimodal_rewardbench(write_multimodal_rewardbench(tmp_path))
    assert [s.id for s in skipped] == ["mmmu_6"]
    assert [(i.group, i.truth) for i in items] == [
        ("open_generation/correctness_task", "first"),
        ("safety/bias", "second"),
        ("safety/toxicity", "first"),
        ("reasoning/math", "second"),
        ("reasoning/coding", "first"),
    ]


def test_a_root_without_the_released_files_says_what_it_looked_for(tmp_path):
    with pytest.raises(UserError, match="no data/test-\\*.parquet or data.json found"):
        readers.read_vl_rewardbench(tmp_path)


def test_mmrb2_text_to_image_pairs_and_the_subsets_without_a_task_counted(tmp_path):
    items, skipped = readers.read_mmrb2(write_mmrb2(tmp_path))
    assert [(i.id, i.task, i.truth, i.group) for i in items] == [
        ("t2i-p0", "image_generation", "first", "t2i"),
        ("t2i-p1", "image_generation", "second", "t2i"),
    ]
    assert items[1].prompt == "two red circles, number 1"
    reasons = sorted((s.id, s.reason) for s in skipped)
    assert reasons == [
        ("edit-p0", "task_not_supported"),
        ("edit-p1", "task_not_supported"),
        ("t2i-p2", "malformed_field"),  # chosen "C"
        ("t2i-p3", "malformed_field"),  # two images in one response
    ]
    _, (a, b) = items[0].loaded(SAMPLING)
    assert a.size == b.size == (64, 64)
