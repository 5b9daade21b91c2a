"""src/evaluate.py end to end: the synthetic benchmark against the main job's own test numbers, the released
layouts with a tiny judge, bad input, resuming, and the protocol options."""

import json
import shutil

import pytest
from hydra import compose, initialize_config_dir

from benchmark_fixtures import (
    write_editreward_bench,
    write_genai_bench,
    write_genai_bench_edit,
    write_mmrb2,
    write_multimodal_rewardbench,
    write_videogen_rewardbench,
    write_vl_rewardbench,
)
from tests_support import ROOT, compose_config, load_script, train_entry

# the world of debug=fast
SMALL_WORLD = ["data.source.records_per_stream={train: 16, val: 8, test: 8}", "+data.source.shard_size=8"]


def _evaluate(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "evaluate.yaml",
            overrides=[f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'eval'}", *overrides],
        )
    return load_script("src/evaluate.py", "evaluate_entry").evaluate(cfg), tmp_path / "eval"


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory, tiny_qwen):
    from unified_reward.judging.generative import Judge

    model, processor = tiny_qwen
    folder = tmp_path_factory.mktemp("judge") / "judge"
    Judge(model, processor, batch_size=8).save_pretrained(folder)
    return folder


def test_the_synthetic_benchmark_gives_the_main_jobs_test_accuracy(tmp_path):
    train = compose_config(
        tmp_path,
        "experiment=reward_joint",
        "debug=fast",
        "trainer.limit_test_batches=1.0",
        "module.test_generate=false",
    )
    metrics = train_entry().train(train)
    results, _ = _evaluate(tmp_path, f"judge={tmp_path / 'run' / 'judge'}", "protocol.order=fixed", *SMALL_WORLD)
    streams = [k.removeprefix("test/acc/") for k in metrics if k.startswith("test/acc/") and k != "test/acc/mean"]
    assert len(streams) == 4 and results["judged"] == 4 * 8
    for stream in streams:
        assert results["metrics"][f"accuracy/{stream}"] == pytest.approx(metrics[f"test/acc/{stream}"]), stream
    assert results["metrics"]["accuracy/mean"] == pytest.approx(metrics["test/acc/mean"])


def test_the_oracle_is_the_ceiling_of_the_synthetic_benchmark(tmp_path):
    """Generated-looking candidates too: their labels are the oracle's reading of the stored pixels; and edits, read
    against their source image and instruction."""
    look = "data.source.generated_look=0.5"
    tasks = "[image_generation,image_understanding,video_generation,video_understanding,image_editing]"
    five = [f"data.tasks={tasks}", f"+data.source.tasks={tasks}"]
    results, folder = _evaluate(tmp_path, "judge=oracle", "protocol.order=both", look, *five, *SMALL_WORLD)
    assert results["metrics"]["accuracy"] == 1.0 and results["checks"]["swap_consistency"] == 1.0
    for stream in ("image_generation_pair", "video_generation_pair"):
        assert results["metrics"][f"accuracy/{stream}/clean"] == results["metrics"][f"accuracy/{stream}/generated"] == 1
    assert results["metrics"]["accuracy/image_editing_pair"] == 1.0
    assert (folder / "results.md").read_text().startswith("# synthetic: 40 items judged")


def test_released_layout_with_bad_items_skipped_named_and_counted(tmp_path, tiny_judge):
    root = write_vl_rewardbench(tmp_path / "vl")
    results, folder = _evaluate(tmp_path, "benchmark=vl_rewardbench", f"benchmark.root={root}", f"judge={tiny_judge}")
    assert results["judged"] == 7 and results["items"] == 9  # an item per row: the id on two rows gives two
    assert results["skipped"] == {"malformed_field": 1, "corrupt_image": 1}
    assert {(s["id"], s["reason"]) for s in results["skipped_items"]} == {
        ("RLHF-V-7", "malformed_field"),
        ("RLHF-V-8", "corrupt_image"),
    }
    saved = json.loads((folder / "results.json").read_text())
    names = ("accuracy", "macro_accuracy", "accuracy/general", "accuracy/hallucination", "accuracy/reasoning")
    for name in (*names, "ours/accuracy_all_items"):
        low, high = saved["intervals_95"][name]
        assert 0.0 <= low <= saved["metrics"][name] <= high <= 1.0, name
    assert saved["protocol"]["order"] == "random" and set(saved["checks"]) == {"invalid_rate", "position_bias"}
    assert list(folder.glob("tensorboard/events.out.tfevents.*"))


def test_strict_stops_at_the_first_bad_item(tmp_path, tiny_judge):
    from unified_reward.reward_benchmarks.items import ItemError

    root = write_vl_rewardbench(tmp_path / "vl")
    with pytest.raises(ItemError, match="item RLHF-V-8: corrupt_image"):
        _evaluate(tmp_path, "benchmark=vl_rewardbench", f"benchmark.root={root}", f"judge={tiny_judge}", "strict=true")


def test_a_killed_evaluation_resumes_with_the_items_it_had_not_judged(tmp_path, tiny_judge, caplog):
    root = write_genai_bench(tmp_path / "genai")
    options = ["benchmark=genai_bench_image", f"benchmark.root={root}", f"judge={tiny_judge}", "batch_size=2"]
    first, folder = _evaluate(tmp_path, *options)
    predictions = folder / "predictions-r000.jsonl"
    lines = predictions.read_text().splitlines()
    predictions.write_text("\n".join(lines[:2]) + "\n")  # as if killed after the first batch
    with caplog.at_level("INFO", logger="evaluate"):
        again, _ = _evaluate(tmp_path, *options, f"output={folder}")
    assert "2 judged before, 3 to judge" in caplog.text
    assert again["metrics"] == first["metrics"] and again["judged"] == 5
    for name in ("accuracy_with_ties", "accuracy_without_ties", "accuracy_4way"):
        assert 0.0 <= again["metrics"][name] <= 1.0


def test_point_judging_in_both_orders_and_the_tie_calibrated_video_metrics(tmp_path, tiny_judge):
    root = write_videogen_rewardbench(tmp_path / "videogen")
    results, _ = _evaluate(
        tmp_path,
        "benchmark=videogen_rewardbench",
        f"benchmark.root={root}",
        f"judge={tiny_judge}",
        "protocol.judging=point",
        "protocol.order=both",
        "protocol.video_frames=4",
    )
    names = ("accuracy_with_ties", "accuracy_without_ties", "accuracy_with_ties_videoalign_code")
    assert set(results["metrics"]) == set(names)  # VQ / MQ / TA need per-dimension judgments: not reported
    assert all(0.0 <= results["metrics"][name] <= 1.0 for name in names)
    assert 0.0 <= results["checks"]["swap_consistency"] <= 1.0


def test_mmrb2_in_both_orders_with_its_other_subsets_counted_as_skipped(tmp_path, tiny_judge):
    root = write_mmrb2(tmp_path / "mmrb2")
    options = ["benchmark=mmrb2", f"benchmark.root={root}", f"judge={tiny_judge}", "protocol.order=both"]
    results, folder = _evaluate(tmp_path, *options)
    assert results["items"] == 8 and results["judged"] == 4  # two text-to-image pairs, two edits
    assert results["skipped"] == {"task_not_supported": 2, "malformed_field": 2}
    rows = [json.loads(line) for line in (folder / "predictions-r000.jsonl").read_text().splitlines()]
    trials = [(p["verdict"], r["truth"], r["group"]) for r in rows for p in r["presentations"]]
    assert len(trials) == 8  # each pair in both orders: two trials

    def pooled(*groups):
        judged = [(v, t) for v, t, g in trials if v is not None and g in groups]
        return sum(v == t for v, t in judged) / len(judged)

    assert results["metrics"]["accuracy"] == pooled("t2i", "edit")
    assert results["metrics"]["accuracy/t2i"] == pooled("t2i") and results["metrics"]["accuracy/edit"] == pooled("edit")


def test_the_editing_benchmarks_in_their_released_layouts(tmp_path, tiny_judge):
    root = write_genai_bench_edit(tmp_path / "genai")
    results, _ = _evaluate(tmp_path, "benchmark=genai_bench_edit", f"benchmark.root={root}", f"judge={tiny_judge}")
    assert results["judged"] == 3 and results["skipped"] == {"missing_media": 1}
    assert {"accuracy_4way", "accuracy_with_ties", "accuracy_with_ties_calibrated"} <= set(results["metrics"])
    root = write_editreward_bench(tmp_path / "editreward")
    options = ["benchmark=editreward_bench", f"benchmark.root={root}", f"judge={tiny_judge}", "output=" + str(tmp_path)]
    results, _ = _evaluate(tmp_path / "second", *options)
    assert results["judged"] == 7 and results["skipped"] == {"malformed_field": 1}
    rows = [json.loads(line) for line in (tmp_path / "predictions-r000.jsonl").read_text().splitlines()]
    right = {r["id"]: r["verdict"] == r["truth"] for r in rows}
    sets = [["e1"], ["e2"], ["e3"], ["t1_0", "t1_1", "t1_2"], ["t2_0"]]  # t2 lacks 2 of its 3 comparisons: wrong
    expected = [all(right[i] for i in s) and (len(s) != 1 or not s[0].startswith("t")) for s in sets]
    assert results["metrics"]["accuracy/overall"] == sum(expected) / len(sets)
    assert results["metrics"]["accuracy/2pair"] == sum(expected[:3]) / 3


def test_a_scalar_head_reward_model_is_evaluated_like_our_judges(tmp_path):
    from judging.test_scalar import tiny

    tiny("hpsv3").save_pretrained(tmp_path / "hpsv3")
    root = write_genai_bench(tmp_path / "genai")
    options = ["benchmark=genai_bench_image", f"benchmark.root={root}", f"judge={tmp_path / 'hpsv3'}"]
    results, _ = _evaluate(tmp_path, *options, "protocol.order=both")
    assert results["judged"] == 5 and 0.0 <= results["metrics"]["accuracy_without_ties"] <= 1.0
    assert results["checks"]["swap_consistency"] == 1.0  # sigmoid(r1 - r2): the same verdict in both orders


def test_a_missing_root_names_the_folder_and_its_layout(tmp_path):
    from unified_reward.errors import UserError

    with pytest.raises(UserError, match="benchmark=vl_rewardbench needs benchmark.root=<folder>: a copy of HF "):
        _evaluate(tmp_path, "benchmark=vl_rewardbench", "judge=random")


def test_media_missing_everywhere_fails_with_what_is_missing(tmp_path, tiny_judge):
    from unified_reward.errors import UserError

    root = write_videogen_rewardbench(tmp_path / "videogen")
    shutil.rmtree(root / "videos")  # the zip not unpacked
    with pytest.raises(UserError, match=r"none of its 4 items could be judged \({'missing_media': 4}\).*videos/"):
        _evaluate(tmp_path, "benchmark=videogen_rewardbench", f"benchmark.root={root}", f"judge={tiny_judge}")


def test_the_multimodal_rewardbench_release_file_alone_is_refused(tmp_path):
    from unified_reward.errors import UserError
    from unified_reward.reward_benchmarks.readers import read_multimodal_rewardbench

    root = write_multimodal_rewardbench(tmp_path / "mm")
    (root / "data" / "all_data.json").rename(root / "data" / "all_data_release.json")
    with pytest.raises(UserError, match="all_data_release.json is there, but it lacks the prompts.*0_download_data"):
        read_multimodal_rewardbench(root)


def test_the_oracle_judges_only_the_synthetic_world(tmp_path):
    from unified_reward.errors import UserError

    root = write_vl_rewardbench(tmp_path / "vl")
    with pytest.raises(UserError, match="judge=oracle reads the synthetic world"):
        _evaluate(tmp_path, "benchmark=vl_rewardbench", f"benchmark.root={root}", "judge=oracle")


def test_generators_samples_judged_against_the_oracle_without_its_ties(tmp_path):
    from benchmark_fixtures import write_generated_samples

    root = write_generated_samples(tmp_path / "generated")
    results, _ = _evaluate(tmp_path, "benchmark=synthetic_generated", f"benchmark.root={root}", "judge=oracle")
    # 2 tasks x 2 scored sets x 2 pairs; the set without scores is skipped and counted, per task
    assert results["judged"] == 8 and results["skipped"] == {"no_oracle_scores": 2}
    for task in ("image_generation", "video_generation"):
        assert results["metrics"][f"accuracy_without_ties/{task}"] == 1.0
        assert results["metrics"][f"accuracy_with_ties/{task}"] == 1.0
        assert 0.0 <= results["metrics"][f"ours/oracle_tie_share/{task}"] < 1.0
