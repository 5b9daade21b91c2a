"""The reward server on loopback: its answers equal the in-process judge's, bad requests get 4xx while it keeps
serving, 16 concurrent clients, a client killed mid-request, a clean restart. Bounded: one tiny judge, tens of
requests."""

import base64
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from serving_support import image
from unified_reward.encoding.chat import encode_chat
from unified_reward.judging.generative import Judge
from unified_reward.judging.group_rewards import GroupRewards
from unified_reward.judging.text_generation import generate_texts
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.serving.client import (
    JudgeClient,
    ServedJudge,
    ServerError,
    diffusion_group_rewards,
    media_data_url,
    trl_reward,
)
from unified_reward.serving.process import ServerProcess
from unified_reward.serving.requests import Limits, answer, parse_request
from unified_reward.synthetic.vocabulary import world_vocabulary

TOKEN = "test-token"
MAX_BYTES = 2_000_000
CHAT_TOKENS = 12
BODY_TIMEOUT = 3


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    torch.manual_seed(0)
    processor = build_processor("qwen2_vl", min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    model = build_vlm("qwen2_vl", processor, tiny={"hidden_size": 64, "num_hidden_layers": 2}).eval()
    folder = tmp_path_factory.mktemp("serve") / "judge"
    Judge(model, processor).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(export, tmp_path_factory):
    run = tmp_path_factory.mktemp("serve-run")
    process = ServerProcess(
        f"judge={export}",
        f"token={TOKEN}",
        f"limits.max_request_bytes={MAX_BYTES}",
        f"limits.body_timeout_s={BODY_TIMEOUT}",
        f"chat_max_new_tokens={CHAT_TOKENS}",
        "batch_size=16",
        f"hydra.run.dir={run}",
        log=run / "server.log",
    )
    with process:
        yield process


@pytest.fixture(scope="module")
def reference(export):
    return Judge.from_pretrained(export, batch_size=16)


def expected(reference, body):
    return answer(reference, [parse_request(body, Limits())])[0]


def close(a, b, tol=1e-4):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
    return abs(a - b) <= tol


def bodies():
    """Valid requests of every op, generation and understanding."""
    images = [media_data_url(image(i)) for i in range(4)]
    return [
        {"op": "score", "task": "image_generation", "prompt": "two red circles", "candidate": images[0]},
        {
            "op": "compare",
            "task": "image_generation",
            "prompt": "a blue square",
            "candidates": images[:2],
            "both_orders": True,
        },
        {"op": "group_rewards", "task": "image_generation", "prompt": "a green star", "candidates": images},
        {
            "op": "group_rewards",
            "task": "image_understanding",
            "prompt": "What colour is the circle?",
            "candidates": ["red", "blue", "green"],
            "context": images[3],
        },
    ]


def test_every_endpoint_answers_what_the_in_process_judge_answers(server, reference):
    client = JudgeClient(server.url, token=TOKEN)
    for body in bodies():
        assert close(client.post("/v1/judge", body), expected(reference, body))
    assert close(
        client.score("image_generation", "two red circles", image(0)), expected(reference, bodies()[0])["score"]
    )


def test_chat_completions_answer_the_official_clients_request_as_the_judge_writes(server, reference):
    """The payload UnifiedReward's own vLLM client (vllm_qwen/vllm_request.py) sends: one user message with a JPEG
    data URL and the prompt, `do_sample` and `max_tokens` 4096 (capped by the server's chat_max_new_tokens)."""
    buffer = io.BytesIO()
    image(5).save(buffer, format="JPEG", quality=95)
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    text = "Rate the image from 1 to 5. End with 'Final Score: X'."
    message = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
    }
    payload = {"model": "UnifiedReward", "messages": [message], "do_sample": False, "max_tokens": 4096}
    response = JudgeClient(server.url, token=TOKEN).post("/v1/chat/completions", payload)
    decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    parts = [{"type": "image", "media": decoded}, {"type": "text", "text": text}]
    encoded = encode_chat(reference.processor, parts, None)
    written = generate_texts(reference.model, reference.processor, [encoded], CHAT_TOKENS)[0]
    assert response["choices"][0]["message"]["content"] == written
    with pytest.raises(ServerError) as error:
        JudgeClient(server.url, token=TOKEN).post("/v1/chat/completions", {"messages": [message, message]})
    assert error.value.status == 422 and "exactly one user message" in error.value.message


def raw_post(url, data: bytes, token=TOKEN):
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/v1/judge", data, headers), timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_bad_requests_get_4xx_and_the_server_keeps_serving(server, reference):
    status, text = raw_post(server.url, b'{"op": "score", "task": ')
    assert status == 422 and "JSON decode error" in text
    assert raw_post(server.url, json.dumps(bodies()[0]).encode(), token=None)[0] == 401
    assert raw_post(server.url, json.dumps(bodies()[0]).encode(), token="wrong")[0] == 401
    assert raw_post(server.url, b'{"pad": "' + b"x" * MAX_BYTES + b'"}')[0] == 413
    status, text = raw_post(server.url, json.dumps(bodies()[0] | {"candidate": "data:image/png;base64,AAAA"}).encode())
    assert status == 400 and "not a decodable image" in text
    status, text = raw_post(server.url, json.dumps(bodies()[0] | {"task": "image_captioning"}).encode())
    assert status == 422 and "field 'task'" in text
    assert close(JudgeClient(server.url, token=TOKEN).post("/v1/judge", bodies()[1]), expected(reference, bodies()[1]))


def bad_bodies():
    """Requests that parse as JSON and must each get a 4xx that says why (the reported ones first: they used to
    pass validation and fail their whole batch with a 500, or buy unbounded work)."""
    score, compare, group = bodies()[0], bodies()[1], bodies()[2]
    return [
        (score | {"scale": [1, float("inf")]}, "two finite numbers"),  # sent as Infinity (1e400 reads so)
        (score | {"scale": [float("nan"), 5]}, "two finite numbers"),
        (score | {"scale": [True, 5]}, "two finite numbers"),
        (score | {"scale": [1, 200000]}, "spans more than"),
        (score | {"scale": [1, 100]}, "cannot read a score on 1-100"),
        (score | {"prompt": "two red \ud800 circles"}, "not valid text"),
        (compare | {"prompt": "x" * 30_000}, "the limit is 20000"),
        (score | {"candidate": "data:image/png;base64,!!"}, "base64"),
        (group | {"candidates": []}, "2-16 candidates"),
        ({"op": "score"}, "field 'task'"),
    ]


def rss_mib(server) -> float:
    return server.memory_bytes() / 2**20


def test_sixteen_clients_for_twenty_seconds_with_a_fifth_of_the_requests_bad(server, reference):
    """No 5xx, every valid answer equals the in-process judge's for its own request (each request is tagged by
    its index into the table of bodies and checked against that body's answer), every bad request a 4xx with its
    reason, and the server's memory flat."""
    valid, bad = bodies(), bad_bodies()
    wanted = [expected(reference, b) for b in valid]
    client = JudgeClient(server.url, token=TOKEN, timeout=60)
    for b in valid:  # warm: the first answers of each shape build caches that later ones reuse
        client.post("/v1/judge", b)
    memory_before = rss_mib(server)
    deadline = time.monotonic() + 20  # the full-length version: benchmarks/bench_serve_load.py

    def one_client(index: int):
        rng = np.random.default_rng(index)
        outcomes = []
        while time.monotonic() < deadline:
            is_bad = rng.random() < 0.2
            tag = int(rng.integers(len(bad) if is_bad else len(valid)))
            started = time.perf_counter()
            try:
                result = client.post("/v1/judge", bad[tag][0] if is_bad else valid[tag])
                outcome = "bad answered" if is_bad else "ok" if close(result, wanted[tag]) else "wrong answer"
            except ServerError as error:
                if is_bad:
                    outcome = "ok" if 400 <= error.status < 500 and bad[tag][1] in error.message else error.message
                else:
                    outcome = f"valid refused {error.status}: {error.message}"
            outcomes.append((is_bad, outcome, time.perf_counter() - started))
        return outcomes

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        outcomes = [o for result in pool.map(one_client, range(16)) for o in result]
    elapsed = time.perf_counter() - started
    memory_after = rss_mib(server)
    latencies = sorted(seconds for *_, seconds in outcomes)
    p50, p95 = (latencies[int(q * (len(latencies) - 1))] * 1000 for q in (0.5, 0.95))
    print(
        f"{len(outcomes)} requests ({sum(b for b, *_ in outcomes)} bad) from 16 clients in {elapsed:.1f} s: "
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms; server memory {memory_before:.0f} -> {memory_after:.0f} MiB"
    )
    failures = Counter(outcome for _, outcome, _ in outcomes if outcome != "ok")
    assert not failures, failures
    assert sum(b for b, *_ in outcomes) >= 10 and len(outcomes) - sum(b for b, *_ in outcomes) >= 40
    assert memory_after - memory_before < 100, (memory_before, memory_after)


def test_info_needs_the_token_and_health_does_not(server):
    def status(path, token):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(server.url + path, headers=headers), timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as error:
            return error.code

    assert status("/info", None) == 401 and status("/info", "wrong") == 401 and status("/info", TOKEN) == 200
    assert status("/health", None) == 200
    assert status("/v1/chat/completions", None) == 401


def _rest_of_response(connection, received: bytes) -> bytes:
    """The whole HTTP response whose first bytes are `received`: the server may send the head and the body in
    separate packets, and one recv returns what has arrived."""
    while b"\r\n\r\n" not in received and (chunk := connection.recv(4096)):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length and (chunk := connection.recv(4096)):
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_body_that_stops_arriving_gets_a_408_in_time(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        started = time.monotonic()
        head = (
            f"POST /v1/judge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        connection.sendall(head.encode() + b'{"op": "score", ')
        reply = connection.recv(4096)
        waited = time.monotonic() - started
        reply = _rest_of_response(connection, reply).decode()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive within 3 s" in reply, reply
    assert BODY_TIMEOUT - 0.5 < waited < BODY_TIMEOUT + 10


def test_chat_completions_refuse_unbounded_text_and_bad_token_budgets(server):
    client = JudgeClient(server.url, token=TOKEN, timeout=30)
    cases = [
        ({"messages": [{"role": "user", "content": "x" * 100_000}]}, 413, "the limit is 20000"),
        ({"messages": [{"role": "user", "content": "Rate it."}], "max_tokens": -1}, 422, "positive integer"),
        ({"messages": [{"role": "user", "content": "Rate it."}], "max_tokens": 0}, 422, "positive integer"),
    ]
    for payload, status, reason in cases:
        started = time.monotonic()
        with pytest.raises(ServerError) as error:
            client.post("/v1/chat/completions", payload)
        assert error.value.status == status and reason in error.value.message, error.value
        assert time.monotonic() - started < 10


KILLED_CLIENT = """
import json, sys, urllib.request
body = json.loads(sys.stdin.read())
request = urllib.request.Request(sys.argv[1] + "/v1/judge", json.dumps(body).encode(),
                                 {"Content-Type": "application/json", "Authorization": "Bearer " + sys.argv[2]})
urllib.request.urlopen(request, timeout=120).read()
"""


def test_a_client_killed_mid_request_does_not_disturb_the_others(server, reference):
    heavy = {
        "op": "group_rewards",
        "task": "image_generation",
        "prompt": "many shapes",
        "candidates": [media_data_url(image(10 + i)) for i in range(16)],
    }  # 16 points + 120 pairs
    victim = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, server.url, TOKEN], stdin=subprocess.PIPE)
    victim.stdin.write(json.dumps(heavy).encode())
    victim.stdin.close()
    time.sleep(0.5)
    victim.kill()
    victim.wait()
    client = JudgeClient(server.url, token=TOKEN)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda b: client.post("/v1/judge", b), bodies()))
    assert all(close(r, expected(reference, b)) for r, b in zip(results, bodies(), strict=True))
    with urllib.request.urlopen(server.url + "/health", timeout=10) as response:
        assert response.status == 200


def test_rewards_for_trl_grpo_and_a_diffusion_grpo_loop(server, reference):
    client = JudgeClient(server.url, token=TOKEN)
    question = "What colour is the circle?"
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    answers = ["red", "blue", "green", "two circles"]
    completions = [[{"role": "assistant", "content": a}] for a in answers]
    picture = image(7)
    # the keyword arguments GRPOTrainer._calculate_rewards passes: dataset columns repeated per completion, and more
    calls = {
        "prompts": [prompt] * 4,
        "completions": completions,
        "completion_ids": [[1]] * 4,
        "image": [picture] * 4,
        "trainer_state": None,
        "log_extra": None,
        "log_metric": None,
    }
    context = media_data_url(picture)
    group = {
        "op": "group_rewards",
        "task": "image_understanding",
        "prompt": question,
        "candidates": answers,
        "context": context,
    }
    wanted = expected(reference, group)
    assert close(trl_reward(client, task="image_understanding")(**calls), wanted["scores"])
    assert close(trl_reward(client, task="image_understanding", reward="win_rate")(**calls), wanted["win_rates"])
    samples = [image(20 + i) for i in range(3)]
    group = {
        "op": "group_rewards",
        "task": "image_generation",
        "prompt": "a red star",
        "candidates": [media_data_url(s) for s in samples],
    }
    assert close(diffusion_group_rewards(client, "a red star", samples), expected(reference, group)["win_rates"])
    # an editing model's group: the instruction, the source image edited, the edits
    edit = {"op": "group_rewards", "task": "image_editing", "prompt": "make it blue", "context": context} | {
        "candidates": [media_data_url(s) for s in samples]
    }
    edited = diffusion_group_rewards(client, "make it blue", samples, task="image_editing", source=picture)
    assert close(edited, expected(reference, edit)["win_rates"])
    with pytest.raises(ValueError, match="use diffusion_group_rewards"):  # TRL's completions are texts
        trl_reward(client, task="image_editing")


def test_a_grpo_loop_rewarded_by_url_gets_what_the_judge_in_process_gives(server, reference):
    served = ServedJudge(JudgeClient(server.url, token=TOKEN))
    groups = [["red", "blue", "two circles"]]
    args = ("image_understanding", ["What colour is the circle?"], [image(7)], groups)
    for reward in ("score", "win_rate"):
        remote = GroupRewards(served, reward=reward)(*args)
        local = GroupRewards(reference, reward=reward)(*args)
        assert torch.allclose(remote.rewards, local.rewards, atol=1e-4), reward
        assert remote.metrics()["judge/calls"] == local.metrics()["judge/calls"]


def test_the_server_restarts_cleanly_on_its_port(server, reference, tmp_path):
    assert server.stop() is not None
    again = ServerProcess(*server.overrides[:-1], port=server.port, log=tmp_path / "restart.log")
    with again:
        assert close(
            JudgeClient(again.url, token=TOKEN).post("/v1/judge", bodies()[0]), expected(reference, bodies()[0])
        )
    assert again.process.returncode is not None


def test_a_judge_without_text_cannot_serve_chat_completions(tmp_path):
    from unified_reward.serving.process import SERVE

    finished = subprocess.run(
        [sys.executable, str(SERVE), "judge=random", f"hydra.run.dir={tmp_path}"], capture_output=True, text=True
    )
    assert finished.returncode == 1
    assert "judge=random writes no text for /v1/chat/completions; add chat=false" in finished.stdout + finished.stderr
