import dataclasses
import time
from collections import Counter

import numpy as np
import pytest
import torch

from unified_reward.data.media import VideoSampling, decode_media
from unified_reward.data.schema import MODES
from unified_reward.data.shards import encode_record, read_manifest
from unified_reward.data.tasks import PAPER_TASKS, TASKS, judges_media, media_kind_of, task_spec
from unified_reward.synthetic import oracle
from unified_reward.synthetic.edits import apply_instruction
from unified_reward.synthetic.scene import Scene, read_attributes, reading_word, values_of
from unified_reward.synthetic.world import (
    QUESTIONS,
    WorldConfig,
    answer_text,
    ensure_world,
    make_record,
    plan_record,
)

CONFIG = WorldConfig(seed=0)


def test_records_are_deterministic_from_the_seed():
    for task in TASKS:
        a, b = make_record(CONFIG, "train", task, "pair", 5), make_record(CONFIG, "train", task, "pair", 5)
        assert encode_record(a) == encode_record(b)
    other = make_record(WorldConfig(seed=1), "train", "image_generation", "pair", 5)
    assert encode_record(other) != encode_record(make_record(CONFIG, "train", "image_generation", "pair", 5))


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", MODES)
def test_oracle_reproduces_every_constructed_label_from_pixels(task, mode):
    sampling = VideoSampling(num_frames=8)
    for index in range(40):
        record = make_record(CONFIG, "test", task, mode, index)
        if task_spec(task).prompt == "instruction":
            source = decode_media(record.context, sampling)
            seen = [
                oracle.score_edit(record.prompt, source, decode_media(c, sampling)).score for c in record.candidates
            ]
        elif judges_media(task):
            seen = [oracle.score_generation(record.prompt, decode_media(c, sampling)).score for c in record.candidates]
        else:
            context = decode_media(record.context, sampling)
            seen = [oracle.score_answer(record.prompt, context, c).score for c in record.candidates]
        assert seen == pytest.approx(record.meta["scores"]), (record.id, record.prompt)


def test_every_question_asks_what_the_oracle_reads_from_it():
    for asked, texts in QUESTIONS.items():
        kind = "video" if "motion" in asked else "image"
        for text in texts:
            assert oracle.asked_attributes(text, kind) == asked, text


def test_answers_state_exactly_the_asked_attributes():
    scene = Scene("image", count=2, color="red", shape="circle", position="left")
    for asked in QUESTIONS:
        if "motion" in asked:
            continue
        stated = read_attributes(answer_text(scene, asked), "image")
        assert stated == {a: scene.value(a) for a in asked}, (asked, answer_text(scene, asked))


def _plans(split, task, mode, n):
    return [plan_record(CONFIG, split, task, mode, i) for i in range(n)]


def _texts(plan):
    if judges_media(plan.task):
        return {"prompt": plan.prompt}
    return {"prompt": plan.prompt, **{f"answer{i}": a for i, a in enumerate(plan.answers)}}


def _features(plans, vocabulary):
    rows = torch.zeros(len(plans), len(vocabulary))
    for r, plan in enumerate(plans):
        for slot, text in _texts(plan).items():
            words = text.lower().replace(".", " ").replace(",", " ").split()
            for gram in words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]:
                index = vocabulary.get(f"{slot}:{gram}")
                if index is not None:
                    rows[r, index] = 1.0
    return rows


def _text_only_judge(task, mode, leak=lambda plan: plan):
    """Fit a bag-of-words/bigram model on the texts alone; return its held-out accuracy or R^2."""
    train = [leak(p) for p in _plans("train", task, mode, 6000)]
    test = [leak(p) for p in _plans("test", task, mode, 3000)]
    vocabulary = {}
    for plan in train:
        for slot, text in _texts(plan).items():
            words = text.lower().replace(".", " ").replace(",", " ").split()
            for gram in words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]:
                vocabulary.setdefault(f"{slot}:{gram}", len(vocabulary))
    x_train, x_test = _features(train, vocabulary), _features(test, vocabulary)
    torch.manual_seed(0)
    if mode == "pair":
        classes = ["first", "second", "tie"]
        y_train = torch.tensor([classes.index(p.label) for p in train])
        y_test = torch.tensor([classes.index(p.label) for p in test])
        model = torch.nn.Linear(x_train.shape[1], 3)
        loss_fn = torch.nn.functional.cross_entropy
    else:
        y_train = torch.tensor([p.scores[0] for p in train])
        y_test = torch.tensor([p.scores[0] for p in test])
        model = torch.nn.Linear(x_train.shape[1], 1)
        loss_fn = lambda out, y: torch.nn.functional.mse_loss(out.squeeze(-1), y)  # noqa: E731
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(300):
        optimizer.zero_grad()
        loss_fn(model(x_train), y_train).backward()
        optimizer.step()
    with torch.no_grad():
        out = model(x_test)
        if mode == "pair":
            majority = Counter(y_train.tolist()).most_common(1)[0][0]
            return (out.argmax(-1) == y_test).float().mean().item(), (y_test == majority).float().mean().item()
        r2 = 1 - ((out.squeeze(-1) - y_test) ** 2).mean() / ((y_test - y_train.mean()) ** 2).mean()
        return r2.item(), 0.0


@pytest.mark.parametrize("task", TASKS)
def test_a_text_only_judge_is_at_chance(task):
    accuracy, majority_rate = _text_only_judge(task, "pair")
    assert abs(accuracy - majority_rate) < 0.03, (accuracy, majority_rate)
    r2, _ = _text_only_judge(task, "point")
    assert r2 < 0.01, r2


def test_the_text_only_judge_finds_a_leak_when_there_is_one():
    """Control: the same judge is not blind; with a label-dependent word in the caption it wins."""

    def leak(plan):
        hint = " sharp" if plan.label == "first" and plan.scene.count != 1 else ""
        return dataclasses.replace(plan, prompt=plan.prompt + hint)

    accuracy, majority_rate = _text_only_judge("image_generation", "pair", leak)
    assert accuracy > majority_rate + 0.1, (accuracy, majority_rate)


@pytest.mark.parametrize("task", TASKS)
def test_pair_labels_are_balanced(task):
    labels = Counter(p.label for p in _plans("train", task, "pair", 4000))
    assert abs(labels["first"] - labels["second"]) / 4000 < 0.04
    assert labels["tie"] / 4000 == pytest.approx(0.1 if task_spec(task).ties else 0.0, abs=0.02)


def test_point_scores_span_the_scale():
    generation = Counter(p.scores[0] for p in _plans("train", "image_generation", "point", 600))
    understanding = Counter(p.scores[0] for p in _plans("train", "video_understanding", "point", 600))
    assert set(generation) == {3.0, 4.0, 5.0}
    assert {1.0, 5.0} <= set(understanding) and len(understanding) >= 5


def test_default_world_is_generated_quickly(tmp_path):
    config = WorldConfig(seed=1, records_per_stream={"train": 250, "val": 0, "test": 0})
    started = time.perf_counter()
    folder = ensure_world(config, tmp_path, workers=2)
    seconds = time.perf_counter() - started
    counts = {s: e["records"] for s, e in read_manifest(folder / "train")["streams"].items()}
    assert counts == {f"{t}_{m}": 250 for t in config.tasks for m in MODES}
    # 2000 records with media: the full default (1500 per stream + val/test) scales linearly from this
    assert seconds < 30, seconds


def _checked(line: str) -> tuple[str, list[tuple[str, str, bool]], int, int]:
    """`Image 1: two is two yes, red is blue no. 1/2.` -> ("Image 1", [("two", "two", True), ...], 1, 2)."""
    name, rest = line.split(": ", 1)
    items, tally = rest.rsplit(". ", 1)
    hits, total = (int(n) for n in tally.rstrip(".").split("/"))
    checks = []
    for item in items.split(", "):
        value, is_, truth, verdict = item.split(" ")
        assert is_ == "is" and verdict in ("yes", "no"), item
        checks.append((value, truth, verdict == "yes"))
    return name, checks, hits, total


def _read(media, sampling):
    """What the oracle reads from stored media, as it reads a generator's sample (small ones upsampled first)."""
    decoded = decode_media(media, sampling)
    if media.kind == "video":
        return oracle.perceive(oracle.generated_sample_media(decoded.frames))
    return oracle.perceive(oracle.generated_sample_media(np.asarray(decoded.convert("RGB"))))


# only generation candidates can look generated
RATIONALE_CASES = [
    (t, m, look) for t in TASKS for m in MODES for look in (0.0, 1.0) if not look or task_spec(t).prompt == "caption"
]


@pytest.mark.parametrize("task, mode, look", RATIONALE_CASES)
def test_rationale_agrees_with_the_oracle_and_its_tallies_give_the_label(task, mode, look):
    """The judge's reasoning (`module.train_rationale`): what each image or video shows is what the oracle reads
    from its pixels; each check's value is what the candidate shows (generation) or states (understanding), its
    yes/no is the oracle's agreement with the caption or the media; and the tallies give the record's label. Media
    that look generated may show fewer attributes than a scene has (`no objects`, no clear colour): the rationale
    then states only what the oracle read, and its checks say `no` for what it did not."""
    sampling = VideoSampling(num_frames=8)
    kind = media_kind_of(task)
    config = dataclasses.replace(CONFIG, generated_look=look)
    for index in range(12):
        record = make_record(config, "train", task, mode, index)
        lines = record.rationale.split("\n")
        media = record.candidates if judges_media(task) else (record.context,)
        seen = [_read(m, sampling) for m in media]
        if task_spec(task).prompt == "instruction":  # what the source shows, then the source with the change made
            source = _read(record.context, sampling)
            shows = read_attributes(lines[0].removeprefix("The source image shows "), kind)
            assert shows == source, (lines[0], source)
            wanted = apply_instruction(record.prompt, source)
            assert read_attributes(lines[1].removeprefix("The edit asks for "), kind) == wanted, (lines[1], wanted)
            lines = lines[2:]
        elif judges_media(task):  # the caption restated first: the values every check's true value is copied from
            restated = lines[0].removeprefix("The caption asks for ").removesuffix(".")
            assert restated in record.prompt and restated != lines[0], (lines[0], record.prompt)
            assert read_attributes(restated, kind) == read_attributes(record.prompt, kind)
            lines = lines[1:]
        observations, checks = lines[: len(media)], lines[len(media) : len(media) + len(record.candidates)]
        for line, perceived in zip(observations, seen, strict=True):
            stated = read_attributes(line.split(" shows ", 1)[1], kind)
            assert stated == {a: perceived[a] for a in stated}, (line, perceived)
            readable = {a for a, v in perceived.items() if v is not None and v != "still" and v in values_of(a)}
            assert set(stated) == (readable if perceived["count"] else set()), (line, perceived)
            assert look or len(stated) == 4
        assert len(checks) == len(record.candidates)
        tallies = []
        for i, line in enumerate(checks):
            _, items, hits, total = _checked(line)
            if task_spec(task).prompt == "instruction":  # what the edit shows, checked against what was asked
                truth, shown = wanted, seen[i]
            elif judges_media(task):  # what the candidate shows, checked against the caption
                truth, shown = read_attributes(record.prompt, kind), seen[i]
            else:  # what the answer states, checked against what the media show
                truth, shown = seen[0], read_attributes(record.candidates[i], kind)
            asked = list(truth) if judges_media(task) else list(shown)

            def word(values, attribute):
                return reading_word(attribute, values[attribute])

            assert [(v, t) for v, t, _ in items] == [(word(shown, a), word(truth, a)) for a in asked], line
            assert [ok for _, _, ok in items] == [shown[a] == truth[a] for a in asked], line
            assert hits == sum(ok for _, _, ok in items) and total == len(items)
            tallies.append(1 + 4 * hits / total)
        if mode == "pair":
            assert record.label == (
                "tie" if tallies[0] == tallies[1] else "first" if tallies[0] > tallies[1] else "second"
            )
            # the last line compares the two counts of agreeing values, as the verdict does
            first, second = (_checked(line)[2] for line in checks)
            relation = {"first": "more than", "second": "less than", "tie": "the same as"}[record.label]
            assert lines[-1] == f"{first} is {relation} {second}." and len(lines) == len(media) + 3
        else:
            assert record.label.score == pytest.approx(tallies[0]) and len(lines) == len(media) + 1


# The texts, labels and metadata of record 0 of every stream (seed 0), by world version. A change to what the world
# generates must bump WORLD_VERSION (or every cached world of the old version is silently reused) and add its digest.
# 6: the same texts; the videos are encoded without macroblock-tree rate control (reproducible bytes).
# 7: a pair's rationale ends by comparing the two tallies (`3 is less than 4.`).
# 8: a generation rationale first restates the caption (`The caption asks for two red circles on the left.`).
# 9: a share of the generation records look generated (`generated_look`, 0 here: these records are unchanged).
# The paper's four tasks; image editing, added at 9 without changing them, has its own digests.
EDITING_TEXT_DIGESTS = {9: "efddf3f18b08aa80e6dc2b1bfeb8799fce9e6a90"}
TEXT_DIGESTS = {
    5: "a3c424eae3f3451ba70bd9b775a5bb5aa9977672",
    6: "a3c424eae3f3451ba70bd9b775a5bb5aa9977672",
    7: "53874eeaa1e4c1902cdabec61a7dcc9d3191f132",
    8: "b0bef062cdc6999092c9a8ef7a06373e8b340360",
    9: "b0bef062cdc6999092c9a8ef7a06373e8b340360",
}


def test_a_change_to_the_generated_texts_bumps_the_world_version():
    import hashlib

    from unified_reward.synthetic.world import WORLD_VERSION

    for tasks, digests in ((PAPER_TASKS, TEXT_DIGESTS), (("image_editing",), EDITING_TEXT_DIGESTS)):
        digest = hashlib.sha1()
        for task in tasks:
            for mode in MODES:
                record = make_record(CONFIG, "train", task, mode, 0)
                for part in (record.prompt, record.rationale or "", repr(record.label), repr(record.meta)):
                    digest.update(part.encode())
        assert digests.get(WORLD_VERSION) == digest.hexdigest(), (
            f"the world's texts of {tasks} changed: bump WORLD_VERSION (now {WORLD_VERSION}) and record the new "
            f"digest {digest.hexdigest()}"
        )


def test_the_main_jobs_generation_budget_holds_the_longest_answer(tmp_path):
    """A reasoning judge that runs out of tokens before its verdict gives an invalid answer: the main job's
    budget must hold the world's longest rationale, the longest verdict line and the end-of-turn token."""
    from transformers import AutoTokenizer

    from tests_support import ROOT, compose_config

    tokenizer = AutoTokenizer.from_pretrained(ROOT / "checkpoints" / "tiny_qwen2_vl_base")
    for experiment, tasks in (("reward_joint", PAPER_TASKS), ("reward_joint_edit", TASKS)):
        budget = compose_config(tmp_path, f"experiment={experiment}").module.generate_max_new_tokens
        longest = _longest_answer(tokenizer, tasks)
        assert longest > 80  # the measurement reads real rationales
        assert longest <= budget, f"{experiment}: the longest answer takes {longest} tokens, it generates {budget}"


def _longest_answer(tokenizer, tasks) -> int:
    from unified_reward.prompts.templates import pair_answer_wordings
    from unified_reward.synthetic.world import reasoning

    longest = 0
    for seed in (0, 1):
        for task in tasks:
            verdict = max(pair_answer_wordings(media_kind_of(task)).values(), key=len)
            rationales = [reasoning(plan_record(WorldConfig(seed=seed), "train", task, "pair", i)) for i in range(150)]
            if task_spec(task).prompt == "caption":  # what the oracle read from media that look generated
                look = WorldConfig(seed=seed, generated_look=1.0)
                rationales += [make_record(look, "train", task, "pair", i).rationale for i in range(40)]
            for rationale in rationales:
                longest = max(longest, len(tokenizer(f"{rationale}\n{verdict}")["input_ids"]) + 1)
    return longest
