import math

import pytest
import torch

from unified_reward.data.tasks import media_kind_of, task_spec
from unified_reward.encoding.chat import encode_chat, pad_batch
from unified_reward.judging.generative import AnswerTrie, Judge
from unified_reward.judging.queries import JudgeQuery
from unified_reward.judging.text_generation import generate_token_ids, rationale_length
from unified_reward.prompts.templates import DEFAULT_TEMPLATES, score_answer


def _distinguishing_prefix(answers, processor):
    """Each answer cut after its first token that differs from every other answer's token at that place."""
    tokenizer = processor.tokenizer
    ids = [tokenizer(a + tokenizer.eos_token, add_special_tokens=False)["input_ids"] for a in answers]
    cuts = []
    for i, tokens in enumerate(ids):
        cut = max(
            next(j for j, (a, b) in enumerate(zip(tokens, other, strict=False)) if a != b)
            for k, other in enumerate(ids)
            if k != i
        )
        cuts.append(tokenizer.decode(tokens[: cut + 1]))
    return cuts


def test_pair_probabilities_equal_teacher_forced_answer_prefixes(tiny_qwen, decoded_records):
    model, processor = tiny_qwen
    judge = Judge(model, processor)
    for record in decoded_records[::2]:  # the pair records of every task
        query = JudgeQuery.of(record)
        reading = judge.answer_probabilities([query])[0]
        answers = DEFAULT_TEMPLATES[record.stream].pair_answers
        verdicts = [v for v in ("first", "second", "tie") if v in answers]  # understanding offers no tie
        assert set(reading) == set(verdicts) and len(verdicts) == (3 if task_spec(record.task).ties else 2)
        prefixes = _distinguishing_prefix([answers[v] for v in verdicts], processor)
        direct = []
        for prefix in prefixes:
            tokens = processor.tokenizer(prefix, add_special_tokens=False)["input_ids"]
            direct.append(_prefix_logprob(model, processor, query, tokens))
        expected = torch.softmax(torch.tensor(direct), 0)
        got = torch.tensor([reading[v] for v in verdicts])
        assert torch.allclose(got, expected, atol=1e-5), (record.stream, got, expected)


def _prefix_logprob(model, processor, query, tokens, rationale=()):
    parts = DEFAULT_TEMPLATES[query.stream].render(
        query.prompt,
        context=query.context,
        candidates=query.candidates,
        media_kind=media_kind_of(query.task),
        scale=query.scale,
    )
    encoded = encode_chat(processor, parts, None)
    encoded.input_ids += list(rationale)
    n = len(encoded.input_ids)
    encoded.input_ids += tokens
    encoded.labels += [-100] * (len(rationale) + len(tokens))
    batch = pad_batch([encoded], processor)
    batch.pop("labels")
    with torch.no_grad():
        logp = torch.log_softmax(model(**batch).logits[0], -1)
    return sum(logp[n - 1 + i, t].item() for i, t in enumerate(tokens))


def test_expected_score_equals_direct_computation(tiny_qwen, decoded_records):
    model, processor = tiny_qwen
    judge = Judge(model, processor)
    record = decoded_records[1]  # image_generation point
    for scale in ((1, 5), (1, 10)):
        query = JudgeQuery.of(record, scale=scale)
        got = judge.expected_scores([query])[0].item()
        values = list(range(scale[0], scale[1] + 1))
        prefixes = _distinguishing_prefix([score_answer(v) for v in values], processor)
        logps = torch.tensor(
            [
                _prefix_logprob(model, processor, query, processor.tokenizer(p, add_special_tokens=False)["input_ids"])
                for p in prefixes
            ]
        )
        expected = float((torch.softmax(logps, 0) * torch.tensor(values, dtype=torch.float)).sum())
        assert got == pytest.approx(expected, abs=1e-4)


def test_batched_reading_equals_one_by_one(tiny_qwen, decoded_records):
    model, processor = tiny_qwen
    judge = Judge(model, processor, batch_size=8)
    queries = [JudgeQuery.of(r) for r in decoded_records]
    together = judge.answer_probabilities(queries)
    alone = [judge.answer_probabilities([q])[0] for q in queries]
    for a, b in zip(together, alone, strict=True):
        assert a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=1e-5) for k in a)


def test_compare_both_orders_and_score_api(tiny_qwen, decoded_records):
    model, processor = tiny_qwen
    judge = Judge(model, processor)
    pair = decoded_records[2]  # image_understanding pair
    a, b = pair.candidates
    forward = judge.compare(pair.task, [pair.prompt], [a], [b], [pair.context])
    backward = judge.compare(pair.task, [pair.prompt], [b], [a], [pair.context])
    both = judge.compare(pair.task, [pair.prompt], [a], [b], [pair.context], both_orders=True)
    assert both.item() == pytest.approx(0.5 * (forward.item() + 1 - backward.item()), abs=1e-5)
    point = decoded_records[1]
    scores = judge.score(point.task, [point.prompt] * 2, [point.candidates[0]] * 2, scale=(1, 5))
    assert scores.shape == (2,) and 1 <= scores[0] <= 5 and scores[0] == pytest.approx(scores[1].item())


def test_trie_rejects_answers_it_cannot_tell_apart():
    with pytest.raises(ValueError, match="prefix"):
        AnswerTrie.build([[1, 2], [1, 2, 3]])
    trie = AnswerTrie.build([[5, 1, 9], [5, 2, 9], [7, 9]])
    assert trie.path == (5,) and trie.exits == ((1, 1), (1, 2), (0, 7))


def test_generate_and_parse_is_explicit_about_invalid_answers(tiny_qwen, decoded_records):
    model, processor = tiny_qwen
    judge = Judge(model, processor)
    queries = [JudgeQuery.of(r) for r in decoded_records[:2]]
    texts = judge.generate(queries, max_new_tokens=4)
    parsed = judge.generate_and_parse(queries, max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert all(p is None or p in ("first", "second", "tie") or isinstance(p, float) for p in parsed)


def test_export_round_trip(tiny_qwen, decoded_records, tmp_path):
    model, processor = tiny_qwen
    judge = Judge(model, processor)
    judge.save_pretrained(tmp_path / "judge")
    loaded = Judge.from_pretrained(tmp_path / "judge")
    queries = [JudgeQuery.of(r) for r in decoded_records[:4]]
    for a, b in zip(judge.answer_probabilities(queries), loaded.answer_probabilities(queries), strict=True):
        assert all(math.isclose(a[k], b[k], abs_tol=1e-5) for k in a)


def test_reasoning_judge_reads_the_verdict_after_its_own_rationale(tiny_qwen, decoded_records):
    """A reasoning judge generates its rationale greedily, then reads the answer trie after it: the probabilities
    equal the teacher-forced computation on prompt + those generated tokens + each answer's deciding prefix."""
    model, processor = tiny_qwen
    judge = Judge(model, processor, reasoning=True, max_reasoning_tokens=12)
    for record in decoded_records[::2]:
        query = JudgeQuery.of(record)
        judgment = judge.judge([query])[0]
        written = generate_token_ids(model, processor, [judge._encode(query)], 12)[0]
        cut = rationale_length(processor.tokenizer, written)
        assert judgment.finished is (cut is not None)
        assert judgment.text == processor.tokenizer.decode(written, skip_special_tokens=True)
        rationale = written if cut is None else written[:cut]
        answers = DEFAULT_TEMPLATES[record.stream].pair_answers
        verdicts = [v for v in ("first", "second", "tie") if v in answers]
        prefixes = _distinguishing_prefix([answers[v] for v in verdicts], processor)
        direct = [
            _prefix_logprob(
                model, processor, query, processor.tokenizer(p, add_special_tokens=False)["input_ids"], rationale
            )
            for p in prefixes
        ]
        expected = torch.softmax(torch.tensor(direct), 0)
        got = torch.tensor([judgment.probabilities[v] for v in verdicts])
        assert torch.allclose(got, expected, atol=1e-5), (record.stream, got, expected)


def test_rationale_length_cuts_where_the_verdict_begins(tiny_qwen):
    _, processor = tiny_qwen
    tokenizer = processor.tokenizer
    rationale = "The image shows two red circles on the left.\nAnswer 1: red yes. 1/1.\nAnswer 2: blue no. 0/1.\n"
    for verdict in ("Answer 1 is better.", "<answer>Answer 1 is better.</answer>"):
        ids = tokenizer(rationale + verdict, add_special_tokens=False)["input_ids"]
        cut = rationale_length(tokenizer, ids)
        expected = rationale if verdict.startswith("Answer") else rationale + "<answer>"
        assert tokenizer.decode(ids[:cut]) == expected
    assert rationale_length(tokenizer, tokenizer("no line break yet", add_special_tokens=False)["input_ids"]) is None


def test_reasoning_flag_survives_export(tiny_qwen, tmp_path):
    model, processor = tiny_qwen
    Judge(model, processor, reasoning=True, max_reasoning_tokens=40).save_pretrained(tmp_path / "judge")
    loaded = Judge.from_pretrained(tmp_path / "judge")
    assert loaded.reasoning and loaded.max_reasoning_tokens == 40


def test_a_folder_that_is_not_a_judge_export_says_what_one_is(tmp_path):
    from unified_reward.errors import UserError

    with pytest.raises(UserError, match=r"not a judge export \(no such folder\).*logs/reward_joint/runs/<time>/judge"):
        Judge.from_pretrained(tmp_path / "missing")
    with pytest.raises(UserError, match=r"not a judge export \(no judge.json in it\)"):
        Judge.from_pretrained(tmp_path)


def test_official_templates_read_on_their_own_scales(tiny_qwen, decoded_records):
    from unified_reward.prompts.templates import load_templates

    model, processor = tiny_qwen
    judge = Judge(model, processor, load_templates("official"))
    image_und, video_gen = JudgeQuery.of(decoded_records[3]), JudgeQuery.of(decoded_records[5])
    assert judge.asked_scale(image_und) == (0, 100) and judge.asked_scale(video_gen) == (1, 10)
    readings = judge.judge([image_und, video_gen])
    assert readings[0].probabilities == {} and readings[0].scale == (0, 100)  # 0-100 has no one-pass reading
    assert sorted(readings[1].probabilities) == [float(s) for s in range(1, 11)]
    assert math.isclose(sum(readings[1].probabilities.values()), 1.0, abs_tol=1e-5)
    expected = judge.expected_scores([image_und, video_gen])
    assert math.isnan(expected[0]) and 1.0 <= expected[1] <= 10.0
