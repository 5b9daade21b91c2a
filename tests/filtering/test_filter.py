"""The filter end to end (src/predict.py stage=filter): judged pairs, exactly once under DDP and across a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import webdataset as wds

from tests_support import ROOT
from unified_reward.data.schema import CandidateSet
from unified_reward.data.shards import ShardSetWriter, decode_sample
from unified_reward.filtering.selection import select_pair
from unified_reward.synthetic.vocabulary import world_vocabulary
from unified_reward.synthetic.world import WorldConfig, make_record

CANDIDATES = 6


def _candidate_sets(count: int) -> list[CandidateSet]:
    """Questions of the synthetic world, each with 6 answer texts taken from its own and other questions' pairs."""
    world = WorldConfig(seed=9)
    sets = []
    for i in range(count):
        task = "image_understanding" if i % 4 else "video_understanding"
        question = make_record(world, "train", task, "pair", i)
        others = [make_record(world, "train", task, "pair", i + k) for k in (1, 2)]
        answers = tuple(question.candidates) + tuple(a for r in others for a in r.candidates)
        sets.append(
            CandidateSet(
                id=f"set-{i:03d}",
                task=task,
                prompt=question.prompt,
                candidates=answers[:CANDIDATES],
                source="test",
                context=question.context,
                meta={"oracle_scores": [float(j % 3) for j in range(CANDIDATES)]},
            )
        )
    return sets


@pytest.fixture(scope="module")
def filter_inputs(tmp_path_factory):
    """A candidate folder (several shards per stream, one corrupt sample) and the export of a tiny judge
    trained for 40 steps on understanding pairs: enough to answer in the pair format (a random judge puts
    all its mass on the tie answer), not to judge well."""
    from tests_support import compose_config, train_entry

    root = tmp_path_factory.mktemp("filter")
    judge_run = compose_config(
        root / "judge_run",
        "experiment=reward_image_understanding",
        "debug=fast",
        "trainer.max_steps=40",
        "trainer.val_check_interval=40",
        "test=false",
    )
    train_entry().train(judge_run)
    with ShardSetWriter(root / "candidates" / "train", max_count=5) as writer:
        writer.write_all(_candidate_sets(24))
    corrupt = root / "candidates" / "train" / "image_understanding_candidates-000000.tar"
    with wds.TarWriter(str(root / "extra.tar")) as tar:  # a sample with broken JSON, added to one shard
        tar.write({"__key__": "broken", "json": b"{not json"})
    _append_tar(corrupt, root / "extra.tar")
    (root / "judge_run" / "run" / "judge").rename(root / "judge")
    return root


def _append_tar(target: Path, extra: Path) -> None:
    import tarfile

    with tarfile.open(extra) as source:
        members = [(m, source.extractfile(m).read()) for m in source.getmembers()]
    with tarfile.open(target, "a") as tar:
        for member, data in members:
            import io

            tar.addfile(member, io.BytesIO(data))


def _command(inputs: Path, output: Path, *extra: str, judge: str | None = None) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "src" / "predict.py"),
        "stage=filter",
        f"candidates={inputs / 'candidates'}",
        f"judge={judge or inputs / 'judge'}",
        f"output={output}",
        f"paths.root_dir={output.parent}",
        f"hydra.run.dir={output.parent / 'hydra'}",
        "logger=[]",
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _sidecar_items(folder: Path) -> list[str]:
    return [i for p in sorted(folder.glob("*.done.json")) for i in json.loads(p.read_text())["items"]]


def _pair_records(folder: Path) -> list:
    manifest = json.loads((folder / "manifest.json").read_text())
    records = []
    for entry in manifest["streams"].values():
        for shard in entry["shards"]:
            records += [decode_sample(s, None) for s in wds.WebDataset(str(folder / shard), shardshuffle=False)]
    return records


def test_filter_judges_every_set_and_keeps_what_the_selection_says(filter_inputs, tmp_path):
    out = tmp_path / "pairs"
    result = subprocess.run(_command(filter_inputs, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = out / "train"
    summary = json.loads((folder / "summary.json").read_text())
    totals = summary["totals"]
    assert totals["sets"] == 24 and sorted(_sidecar_items(folder)) == [f"set-{i:03d}" for i in range(24)]
    assert totals["pair_judgments"] == 24 * (CANDIDATES // 2) and totals["point_judgments"] == 24 * CANDIDATES
    assert totals["kept"] + sum(v for k, v in totals.items() if k.startswith("dropped/")) == 24
    assert sum(v for k, v in totals.items() if k.startswith("oracle_prefers/")) == totals["kept"]
    assert json.loads((folder / "skipped-r000.json").read_text()) == {"malformed_json": 1}
    records = {r.meta["candidate_set"]: r for r in _pair_records(folder)}
    assert len(records) == totals["kept"] > 0
    sets = {s.id: s for s in _candidate_sets(24)}
    for fact in summary["facts"]:
        judged = fact["judge"]
        selection = select_pair(CANDIDATES, judged["verdicts"], judged["scores"])
        assert fact["counts"]["kept"] == int(selection.kept)
        if selection.kept:
            record = records[fact["id"]]
            assert record.chosen == sets[fact["id"]].candidates[selection.chosen]
            assert record.rejected == sets[fact["id"]].candidates[selection.rejected]
            assert record.label == "first" and record.meta["judge"]["scores"] == judged["scores"]
    # the pairs are what VLMDPOModule's collator reads
    from unified_reward.data.media import VideoSampling
    from unified_reward.data.shards import decode_media
    from unified_reward.encoding.policy_pairs import PolicyPairCollator
    from unified_reward.models.processor import build_processor

    decoded = [
        type(r)(**{**r.__dict__, "context": decode_media(r.context, VideoSampling(num_frames=4))})
        for r in records.values()
    ]
    batch = PolicyPairCollator(
        build_processor("qwen2_vl", min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    )(decoded)
    assert len(batch["records"]) == len(decoded)


def test_a_killed_run_resumes_with_every_set_exactly_once(filter_inputs, tmp_path):
    out = tmp_path / "pairs"
    folder = out / "train"
    command = _command(filter_inputs, out, "batch_size=1", "flush_every=1")
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(folder.glob("*.done.json"))) < 3:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = len(list(folder.glob("*.done.json")))
    assert 3 <= committed < 24, "the run must be killed part way"
    assert not (folder / "manifest.json").exists()

    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    items = _sidecar_items(folder)
    assert sorted(items) == [f"set-{i:03d}" for i in range(24)]  # none lost, none twice
    kept = [r.meta["candidate_set"] for r in _pair_records(folder)]
    assert len(kept) == len(set(kept)) == json.loads((folder / "summary.json").read_text())["totals"]["kept"]
    assert not list(folder.glob(".staging-*"))


def test_two_ddp_processes_judge_every_set_once(filter_inputs, tmp_path):
    out = tmp_path / "pairs"
    command = _command(filter_inputs, out, "strategy=ddp", "trainer.devices=2", "flush_every=4")
    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = out / "train"
    per_rank = Counter(p.name.split("-")[1] for p in folder.glob("*.done.json"))
    assert set(per_rank) == {"r000", "r001"}  # both ranks judged
    assert sorted(_sidecar_items(folder)) == [f"set-{i:03d}" for i in range(24)]
    kept = [r.meta["candidate_set"] for r in _pair_records(folder)]
    assert len(kept) == len(set(kept)) == json.loads((folder / "summary.json").read_text())["totals"]["kept"]


def test_oracle_and_random_judges_make_pairs_through_the_same_filter(filter_inputs, tmp_path):
    from unified_reward.data.media import VideoSampling
    from unified_reward.data.shards import decode_media
    from unified_reward.synthetic import oracle

    kept = {}
    for name, judge in (("oracle", "oracle"), ("random", "random"), ("random-again", "random")):
        out = tmp_path / name
        result = subprocess.run(
            _command(filter_inputs, out, judge=judge), env=_env(), capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        kept[name] = {r.meta["candidate_set"]: (r.chosen, r.rejected) for r in _pair_records(out / "train")}
    assert kept["oracle"] and kept["random"] == kept["random-again"]  # the random judge repeats from its seed
    sets = {s.id: s for s in _candidate_sets(24)}
    for set_id, (chosen, rejected) in kept["oracle"].items():  # the oracle's pairs are right by the oracle
        context = decode_media(sets[set_id].context, VideoSampling(num_frames=8))
        prompt = sets[set_id].prompt
        assert oracle.score_answer(prompt, context, chosen).score > oracle.score_answer(prompt, context, rejected).score


def test_keep_questions_writes_a_dropped_set_as_a_tie_that_dpo_skips():
    from unified_reward.data.media import VideoSampling
    from unified_reward.data.shards import encode_record
    from unified_reward.filtering.filter import PreferenceFilter
    from unified_reward.synthetic.oracle_judge import OracleJudge

    question = decode_sample(
        encode_record(make_record(WorldConfig(seed=9), "test", "image_understanding", "pair", 0)), VideoSampling()
    )
    same = question.candidates[0]
    dropped = CandidateSet("q", "image_understanding", question.prompt, (same,) * 4, "test", question.context)
    for keep in (False, True):
        (outcome,) = PreferenceFilter(OracleJudge(), keep_questions=keep).predict_step([dropped], 0)
        assert outcome.facts["counts"]["kept"] == 0  # every pair tied: nothing to prefer
        if not keep:
            assert outcome.record is None
        else:
            assert outcome.record.label == "tie" and outcome.record.prompt == question.prompt
            assert outcome.record.meta["dropped"] == "all_pairs_tied"
