import base64
import io
import math

import numpy as np
import pytest
from PIL import Image

from serving_support import body, image, tiny_judge
from unified_reward.data.media import encode_video
from unified_reward.judging.group_rewards import win_rates
from unified_reward.serving.client import media_data_url
from unified_reward.serving.requests import Limits, RequestError, answer, parse_request

LIMITS = Limits()


@pytest.fixture(scope="module")
def judge():
    return tiny_judge()


def test_requests_become_the_judge_queries_they_ask_for():
    assert [q.mode for q in parse_request(body("score"), LIMITS).queries] == ["point"]
    assert [q.mode for q in parse_request(body("compare", both_orders=True), LIMITS).queries] == ["pair", "pair"]
    group = parse_request(body("group_rewards"), LIMITS)
    assert [q.mode for q in group.queries] == ["point"] * 3 + ["pair"] * 3  # every candidate, every pair
    understanding = parse_request(
        {
            "op": "compare",
            "task": "video_understanding",
            "prompt": "how many?",
            "candidates": ["two", "three"],
            "context": media_data_url(np.zeros((4, 32, 32, 3), dtype=np.uint8)),
        },
        LIMITS,
    )
    assert understanding.context.frames.shape[1:] == (32, 32, 3) and understanding.candidates == ["two", "three"]


def _edit(op: str, **fields):
    """A valid image-editing request: the instruction, the source image as context, edited images as candidates."""
    count = {"score": 1, "compare": 2, "group_rewards": 3}[op]
    return {
        "op": op,
        "task": "image_editing",
        "prompt": "make the circles blue",
        "candidates": [media_data_url(image(i)) for i in range(count)],
        "context": media_data_url(image(9)),
    } | fields


def test_an_edit_request_judges_the_edits_against_the_source_image(judge):
    request = parse_request(_edit("group_rewards"), LIMITS)
    assert [q.mode for q in request.queries] == ["point"] * 3 + ["pair"] * 3
    assert all(q.task == "image_editing" and q.context is request.context for q in request.queries)
    assert request.context.size == (32, 32) and all(c.size == (32, 32) for c in request.candidates)
    (result,) = answer(judge, [request])
    direct = judge.judge(request.queries)
    assert np.allclose(result["scores"], [j.expected_score for j in direct[:3]], atol=1e-6)
    assert len(result["win_rates"]) == 3 and math.isclose(sum(result["win_rates"]), 1.5)  # 3 pairs, a win or 2 halves


def _png_bytes(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("request_body", "status", "names"),
    [
        (["not", "an", "object"], 422, "JSON object"),
        (body("score") | {"op": "rank"}, 422, "field 'op'"),
        (body("score", task="audio_generation"), 422, "field 'task'"),
        (body("score", prompt=""), 422, "field 'prompt'"),
        (body("compare", candidates=[]), 422, "'compare' takes 2-2 candidates"),
        (body("group_rewards", candidates=[media_data_url(image(0))] * 17), 413, "2-16 candidates"),
        (body("score", candidate="data:image/png;base64,not base64!"), 400, "base64 does not decode"),
        (
            body("score", candidate="data:image/png;base64," + base64.b64encode(b"\x89PNG garbage").decode()),
            400,
            "not a decodable image",
        ),
        (
            body("score", candidate="data:video/mp4;base64," + base64.b64encode(b"not a video").decode()),
            422,
            "must be image media",
        ),
        (body("score", candidate="https://example.com/a.png"), 400, "remote URLs are not fetched"),
        (body("score", candidate="two red circles"), 422, "data URL"),
        (body("score", context=media_data_url(image(1))), 422, "field 'context' must be absent"),
        (body("score", scale=[5, 1]), 422, "low < high"),
        (body("score", scale=[1, float("inf")]), 422, "two finite numbers"),  # JSON's 1e400
        (body("score", scale=[float("nan"), 5]), 422, "two finite numbers"),  # JSON's NaN
        (body("score", scale=[True, 5]), 422, "two finite numbers"),
        (body("score", scale=[1, 200_000]), 422, "spans more than 101 scores"),
        (body("score", scale="1-5"), 422, "must be [low, high]"),
        (body("score", prompt="two red \ud800 circles"), 422, "field 'prompt' is not valid text"),
        (
            body("group_rewards", task="image_understanding", candidates=["red", "bl\udfffue"], context=None)
            | {"context": media_data_url(image(1))},
            422,
            "field 'candidates[1]' is not valid text",
        ),
        (body("compare", both_orders="yes"), 422, "both_orders"),
        (_edit("compare", context=None), 422, "field 'context' must be a image data URL"),
        (_edit("compare", candidates=["bluer", "redder"]), 422, "field 'candidates[0]' must be a media data URL"),
        (_edit("group_rewards", candidates=[media_data_url(image(0))] * 16), 413, "17 media in one request"),
        (
            body("score", candidate="data:image/png;base64," + base64.b64encode(_png_bytes((5000, 4000))).decode()),
            413,
            "exceed the limit",
        ),
    ],
)
def test_bad_requests_get_a_4xx_that_names_the_problem(request_body, status, names):
    with pytest.raises(RequestError) as error:
        parse_request(request_body, LIMITS)
    assert error.value.status == status and names in error.value.message


def test_a_corrupt_video_is_refused_with_its_field():
    bad = {
        "op": "score",
        "task": "video_generation",
        "prompt": "a ball",
        "candidates": ["data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42 broken").decode()],
    }
    with pytest.raises(RequestError) as error:
        parse_request(bad, LIMITS)
    assert error.value.status == 400 and "field 'candidates[0]': not a decodable video" in error.value.message


def _video_url(width: int, height: int) -> str:
    frames = np.zeros((2, height, width, 3), np.uint8)
    return "data:video/mp4;base64," + base64.b64encode(encode_video(frames).data).decode()


def test_a_video_too_large_is_refused_from_its_header_before_a_frame_is_decoded(monkeypatch):
    import unified_reward.serving.requests as requests

    def decode_video(*_):
        raise AssertionError("a frame was decoded before the size was checked")

    monkeypatch.setattr(requests, "decode_video", decode_video)
    bad = {"op": "score", "task": "video_generation", "prompt": "a ball", "candidate": _video_url(128, 64)}
    with pytest.raises(RequestError) as error:
        parse_request(bad, Limits(max_pixels=64 * 64))
    assert error.value.status == 413 and "128x64 frames exceed the limit 4096" in error.value.message


MEMORY_PROBE = """
import resource, sys
from unified_reward.data.media import VideoSampling, decode_video
from unified_reward.serving.requests import Limits, RequestError, parse_request
url = open(sys.argv[1]).read()
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = peak()
try:
    parse_request({"op": "score", "task": "video_generation", "prompt": "a ball", "candidate": url}, Limits())
except RequestError as error:
    print(error.status, peak() - start)
import base64
decode_video(base64.b64decode(url.split(",", 1)[1]), VideoSampling(num_frames=8))
print(peak() - start)
"""


@pytest.mark.slow
def test_an_8192x4096_video_is_refused_without_its_frames_in_memory(tmp_path):
    """The reported case: an mp4 of a few KiB whose frames are 8192x4096 made the server's memory grow by 2.2 GiB
    before its 413. Measured in a fresh process: refusing it, then (the control) decoding its frames."""
    import subprocess
    import sys

    (tmp_path / "url").write_text(_video_url(8192, 4096))
    run = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "url")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    (status, refused), (decoded,) = (line.split() for line in run.stdout.splitlines())
    assert status == "413"
    assert int(refused) < 200 * 2**20 < 500 * 2**20 < int(decoded), (int(refused) >> 20, int(decoded) >> 20)


def test_answers_equal_the_judge_api(judge):
    prompt = "two red circles"
    images = [image(i) for i in range(3)]
    requests = [
        parse_request(body("score", candidate=media_data_url(images[0])), LIMITS),
        parse_request(body("compare", both_orders=True), LIMITS),
        parse_request(body("group_rewards", candidates=[media_data_url(x) for x in images]), LIMITS),
    ]
    score, compare, group = answer(judge, requests)
    decoded = [r.candidates for r in requests]  # what the server judged (PNG round trip of the same pixels)
    assert math.isclose(score["score"], judge.score("image_generation", [prompt], decoded[0])[0].item(), abs_tol=1e-5)
    expected = judge.compare("image_generation", [prompt], [decoded[1][0]], [decoded[1][1]], both_orders=True)
    assert math.isclose(compare["p_first"], expected.item(), abs_tol=1e-5)
    points = judge.score("image_generation", [prompt] * 3, decoded[2])
    assert np.allclose(group["scores"], points.numpy(), atol=1e-5)
    pairs = [(0, 1), (0, 2), (1, 2)]
    rows = judge.pair_probabilities(
        [
            parse_request(
                body("compare", candidates=[media_data_url(images[i]), media_data_url(images[j])]), LIMITS
            ).queries[0]
            for i, j in pairs
        ]
    )
    assert np.allclose(group["win_rates"], win_rates(3, rows)[0])
    assert np.allclose(group["expected_win_rates"], win_rates(3, rows)[1], atol=1e-5)
