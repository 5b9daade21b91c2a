import math

import pytest
import torch

from unified_reward.data.media import VideoSampling
from unified_reward.data.shards import decode_sample, encode_record
from unified_reward.data.tasks import TASKS
from unified_reward.encoding.chat import encode_chat, pad_batch
from unified_reward.judging.generative import Judge
from unified_reward.judging.queries import JudgeQuery
from unified_reward.judging.shared_prefix import media_spans, read_windows, shared_prefix
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.prompts.templates import DEFAULT_TEMPLATES, render_judge_prompt
from unified_reward.synthetic.vocabulary import world_vocabulary
from unified_reward.synthetic.world import WorldConfig, make_record

TINY = {"hidden_size": 64, "num_hidden_layers": 2}
CANDIDATES = 4


def candidate_set_queries(task: str, seed: int = 4) -> list[JudgeQuery]:
    """What the filter asks about one candidate set of the world: pairs (0, 1), (2, 3) and a point per candidate;
    the candidates come from three of the world's pair records on one prompt (answers, or images / videos)."""
    sampling = VideoSampling(num_frames=4)
    records = [
        decode_sample(encode_record(make_record(WorldConfig(seed=seed), "train", task, "pair", i)), sampling)
        for i in range(2)
    ]
    first = records[0]
    candidates = (records[0].candidates + records[1].candidates)[:CANDIDATES]
    pairs = [JudgeQuery(task, "pair", first.prompt, (candidates[a], candidates[a + 1]), first.context) for a in (0, 2)]
    points = [JudgeQuery(task, "point", first.prompt, (c,), first.context) for c in candidates]
    return pairs + points


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl", "llava_onevision"])
def tiny_family(request):
    torch.manual_seed(0)
    sizes = {} if request.param == "llava_onevision" else {"min_pixels": 3136, "max_pixels": 3136}
    processor = build_processor(request.param, **sizes, tiny_vocabulary=world_vocabulary())
    return build_vlm(request.param, processor, tiny=TINY).eval(), processor


@pytest.mark.parametrize("task", TASKS)
def test_prefix_reuse_reads_what_the_plain_batch_reads(tiny_family, task):
    model, processor = tiny_family
    queries = candidate_set_queries(task)
    for group in (queries[:2], queries[2:]):  # the pairs, then the points
        encoded = _encoded(processor, group)
        windows = [(len(e.input_ids) - 1, 1) for e in encoded]
        prefix = shared_prefix(encoded, processor, keep=[1] * len(encoded))
        assert prefix.tokens > 0
        reused = read_windows(model, processor, encoded, prefix, windows, batch_size=3)
        batch = pad_batch(encoded, processor)
        batch.pop("labels")
        plain = model(**batch, use_cache=False).logits
        for row, (start, _) in enumerate(windows):
            assert plain[row, start].std() > 0.05  # logits that differ, not a flat row
            torch.testing.assert_close(reused[row][0], plain[row, start], atol=1e-5, rtol=1e-5)
    reused = Judge(model, processor, batch_size=3, prefix_reuse=True, min_shared_tokens=1, min_shared_fraction=0).judge(
        queries
    )
    plain = Judge(model, processor, batch_size=3, prefix_reuse=False).judge(queries)
    for a, b in zip(reused, plain, strict=True):
        assert a.probabilities.keys() == b.probabilities.keys()
        assert all(math.isclose(a.probabilities[k], b.probabilities[k], abs_tol=1e-5) for k in a.probabilities)


def _encoded(processor, queries):
    return [
        encode_chat(
            processor,
            render_judge_prompt(DEFAULT_TEMPLATES, q.task, q.mode, q.prompt, q.context, q.candidates, q.scale),
            None,
        )
        for q in queries
    ]


def test_the_shared_prefix_holds_the_shared_context_and_stops_before_candidate_media(tiny_qwen):
    _, processor = tiny_qwen
    image = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    understanding = _encoded(processor, candidate_set_queries("image_understanding")[2:])  # points: one context
    prefix = shared_prefix(understanding, processor, keep=[1] * len(understanding))
    (context_start, context_end), *_ = media_spans(understanding[0].input_ids, image)
    assert prefix.images == 1 and prefix.tokens > context_end
    # candidate images of one size have identical tokens: only the pixels tell them apart
    generation = _encoded(processor, candidate_set_queries("image_generation")[2:])
    prefix = shared_prefix(generation, processor, keep=[1] * len(generation))
    (candidate_start, _), *_ = media_spans(generation[0].input_ids, image)
    assert prefix.images == 0 and prefix.tokens == candidate_start
    # a row is never left without its last prompt token
    same = [understanding[0], understanding[0]]
    assert shared_prefix(same, processor, keep=[1, 1]).tokens == len(understanding[0].input_ids) - 1


def test_prefix_reuse_is_skipped_for_short_prefixes_and_single_queries(tiny_qwen):
    model, processor = tiny_qwen
    queries = candidate_set_queries("image_understanding")
    calls = []
    hook = model.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs), with_kwargs=True)
    try:
        Judge(model, processor, batch_size=8, min_shared_tokens=10_000).judge(queries)
        assert len(calls) == 1  # one plain batch of all six
        calls.clear()
        Judge(model, processor, batch_size=8).judge(queries)
        assert len(calls) == 4  # per group (pairs, points): the prefix once, then its continuations
        assert all(c.get("use_cache") for c in calls)
    finally:
        hook.remove()
