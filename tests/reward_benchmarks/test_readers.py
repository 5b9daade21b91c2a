"""Each reader on a fixture in its benchmark's released layout (tests/benchmark_fixtures.py)."""

import pytest

from benchmark_fixtures import (
    write_editreward_bench,
    write_genai_bench,
    write_genai_bench_edit,
    write_mmrb2,
    write_multimodal_rewardbench,
    write_videogen_rewardbench,
    write_vl_rewardbench,
)
from unified_reward.data.media import VideoSampling
from unified_reward.errors import UserError
from unified_reward.reward_benchmarks import readers
from unified_reward.reward_benchmarks.items import ItemError

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


def test_mmrb2_text_to_image_and_edit_pairs_and_the_subsets_without_a_task_counted(tmp_path):
    items, skipped = readers.read_mmrb2(write_mmrb2(tmp_path))
    assert [(i.id, i.task, i.truth, i.group) for i in items] == [
        ("t2i-p0", "image_generation", "first", "t2i"),
        ("t2i-p1", "image_generation", "second", "t2i"),
        ("edit-p0", "image_editing", "first", "edit"),
        ("edit-p1", "image_editing", "second", "edit"),
    ]
    assert items[1].prompt == "two red circles, number 1" and items[1].context is None
    assert items[3].context.path.endswith("images/edit_1_s.png")  # the source image, from the prompt's content
    context, (a, b) = items[3].loaded(SAMPLING)
    assert context.size == a.size == b.size == (64, 64)
    reasons = sorted((s.id, s.reason) for s in skipped)
    assert reasons == [
        ("edit-p2", "task_not_supported"),  # an edit of two source images
        ("interleaved-p0", "task_not_supported"),
        ("t2i-p2", "malformed_field"),  # chosen "C"
        ("t2i-p3", "malformed_field"),  # two images in one response
    ]


def test_genai_bench_edit_source_image_instruction_and_votes(tmp_path):
    items, skipped = readers.read_genai_bench(write_genai_bench_edit(tmp_path), "image_edition")
    assert [(s.id, s.reason) for s in skipped] == [("3", "missing_media")]  # no right_output_image: counted
    assert [(i.task, i.truth) for i in items] == [
        ("image_editing", "first"),
        ("image_editing", "second"),
        ("image_editing", "tie"),
    ]
    assert items[0].prompt == "make the circles blue 0" and items[0].id == "image_edition-0"
    source, (left, right) = items[0].loaded(SAMPLING)
    assert source.size == left.size == right.size == (64, 64)
    with pytest.raises(UserError, match="config 'image_editing' is not read"):
        readers.read_genai_bench(tmp_path, "image_editing")


def test_editreward_bench_pairs_sets_and_rankings_by_comparison(tmp_path):
    items, skipped = readers.read_editreward_bench(write_editreward_bench(tmp_path))
    assert [(s.id, s.reason) for s in skipped] == [("e4", "malformed_field")]  # A>Q: not the pair compared
    found = [(i.id, i.truth, i.group, i.labels["set"]) for i in items]
    assert found == [
        ("e1", "first", "2pair", "2pair/e1"),
        ("e2", "second", "2pair", "2pair/e2"),
        ("e3", "tie", "2pair", "2pair/e3"),
        ("t1_0", "first", "3pair", "3pair/t1"),
        ("t1_1", "second", "3pair", "3pair/t1"),  # AvsC ranked C>A: candidate_2 (C) wins
        ("t1_2", "first", "3pair", "3pair/t1"),
        ("t2_0", "second", "3pair", "3pair/t2"),
    ]
    assert all(i.task == "image_editing" and i.context is not None for i in items)
    source, _ = items[0].loaded(SAMPLING)
    assert source.size == (64, 64)
    _, (a, b) = items[0].loaded(SAMPLING)
    assert a.size == b.size == (64, 64)
