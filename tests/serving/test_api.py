"""The LitServe APIs in process (no HTTP): a request that fails inside the judge fails alone, the rest of its batch
is answered; a point scale the judge cannot read is refused before it is judged."""

import pytest

from serving_support import body, image, tiny_judge
from unified_reward.serving.api import JudgeAPI
from unified_reward.serving.client import media_data_url
from unified_reward.serving.requests import Limits, RequestError, answer, parse_request


@pytest.fixture(scope="module")
def judge():
    return tiny_judge()


class FailsOnPrompt:
    """The real tiny judge, made to raise on queries with one prompt (a fault no validation can foresee)."""

    def __init__(self, judge, prompt: str, error: Exception):
        self.inner, self.prompt, self.error = judge, prompt, error
        self.calls = 0

    def judge(self, queries):
        self.calls += 1
        if any(q.prompt == self.prompt for q in queries):
            raise self.error
        return self.inner.judge(queries)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def api_over(judge) -> JudgeAPI:
    api = JudgeAPI(lambda device: judge, Limits(), max_batch_size=8)
    api.setup("cpu")
    return api


@pytest.mark.parametrize(("error", "status"), [(ValueError("bad pixels"), 422), (RuntimeError("CUDA error"), 500)])
def test_a_request_that_fails_in_the_judge_fails_alone(judge, error, status):
    faulty = FailsOnPrompt(judge, "the poisoned prompt", error)
    api = api_over(faulty)
    requests = [body("score"), body("compare", prompt="the poisoned prompt"), body("group_rewards"), {"op": "x"}]
    decoded = [api.decode_request(r) for r in requests]
    outputs = api.predict(decoded)
    assert outputs[0] == answer(judge, [parse_request(requests[0], Limits())])[0]
    assert outputs[2] == answer(judge, [parse_request(requests[2], Limits())])[0]
    assert isinstance(outputs[1], RequestError) and outputs[1].status == status
    assert type(error).__name__ in outputs[1].message
    assert isinstance(outputs[3], RequestError) and outputs[3].status == 422 and "field 'op'" in outputs[3].message
    assert api.encode_response(outputs[1]).status_code == status


def test_a_scale_the_judge_cannot_read_is_refused_and_one_it_reads_is_answered(judge):
    api = api_over(judge)
    refused = api.decode_request(body("score", scale=[0, 100]))
    assert isinstance(refused, RequestError) and refused.status == 422
    assert "cannot read a score on 0-100" in refused.message
    for scale in ([1, 5], [1, 10], [0, 9]):
        result = api.predict([api.decode_request(body("score", scale=scale))])[0]
        assert scale[0] <= result["score"] <= scale[1], (scale, result)


def test_the_answer_tries_kept_are_bounded(judge):
    from unified_reward.judging.generative import MAX_CACHED_TRIES

    for low in range(2 * MAX_CACHED_TRIES):
        parsed = parse_request(body("score", candidate=media_data_url(image(0)), scale=[low, low + 4]), Limits())
        judge.reads_scale(parsed.queries[0])
    assert len(judge._tries) == MAX_CACHED_TRIES
