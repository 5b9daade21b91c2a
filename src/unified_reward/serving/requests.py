"""The reward server's requests: JSON bodies checked and turned into judge queries, and the answers computed from
one judge call for a whole batch of requests (`answer`: what the server runs, and what its tests compare with).

Native requests (`POST /v1/judge`):

    {"op": "score", "task": "image_generation", "prompt": "...", "candidate": "data:image/png;base64,..."}
    {"op": "score", "task": ..., "prompt": ..., "candidates": [x1, ..., xn], "context": ...}    (-> "scores")
    {"op": "compare", "task": ..., "prompt": ..., "candidates": [a, b], "context": ..., "both_orders": false}
    {"op": "group_rewards", "task": ..., "prompt": ..., "candidates": [x1, ..., xn], "context": ...}

Candidates are media (generation tasks), answer texts (understanding tasks, whose `context` is the image or
video), or edited images (`image_editing`: `prompt` is the edit instruction, `context` the source image); the
task table (`data/tasks.py`) says which. Media are data URLs (`data:image/png;base64,...`,
`data:video/mp4;base64,...`); remote URLs are refused unless `Limits.allow_remote_media`. Every problem is a
`RequestError` with an HTTP status and a message that names the field.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from unified_reward.data.media import MediaDecodeError, VideoSampling, decode_video, video_size
from unified_reward.data.schema import RecordError, check_candidates, check_context
from unified_reward.data.tasks import TASKS, task_spec
from unified_reward.judging.group_rewards import group_pairs, win_rates
from unified_reward.judging.queries import VERDICTS, JudgeQuery, JudgeReadings, average_orders, verdict_probabilities
from unified_reward.prompts.templates import DEFAULT_SCALE

OPS = ("score", "compare", "group_rewards")
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)$", re.DOTALL)


class RequestError(Exception):
    """A request the server refuses: `status` (4xx) and a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """What one request may carry (beyond `max_request_bytes`, which the server checks before reading)."""

    max_request_bytes: int = 64 * 2**20
    max_media: int = 16  # media per request
    max_group: int = 16  # candidates of one group_rewards request
    max_pixels: int = 4096 * 4096  # per image or video frame
    video_frames: int = 8  # frames decoded per video, spread uniformly over it (no other frame is decoded)
    max_text_chars: int = 20_000  # per prompt or answer, and per chat message
    max_scale_points: int = 101  # integer scores of a point scale (its work and cache grow with it): 0-100 at most
    body_timeout_s: float = 30.0  # a request body not received in full by then gets a 408
    allow_remote_media: bool = False  # fetch http(s) URLs (off: no request makes the server reach out)
    remote_timeout_s: float = 10.0


@dataclass
class JudgeRequest:
    op: str
    task: str
    prompt: str
    candidates: list[Any]
    context: Any = None
    both_orders: bool = False
    scale: tuple[float, float] = DEFAULT_SCALE
    single: bool = False  # score of `candidate` (one) rather than of `candidates`
    queries: list[JudgeQuery] = field(default_factory=list)


def check_text(value: Any, name: str, limits: Limits) -> str:
    """A non-empty string within the length limit that encodes as UTF-8 (JSON lets a lone surrogate through)."""
    if not isinstance(value, str) or not value.strip():
        raise RequestError(422, f"field '{name}' must be a non-empty string")
    if len(value) > limits.max_text_chars:
        raise RequestError(413, f"field '{name}' has {len(value)} characters; the limit is {limits.max_text_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        problem = f"{error.reason} at character {error.start}"
        raise RequestError(422, f"field '{name}' is not valid text: {problem}") from None
    return value


def check_scale(value: Any, limits: Limits) -> tuple[float, float]:
    """[low, high]: two finite numbers (not booleans), low < high, at most `max_scale_points` integer scores."""
    if not (isinstance(value, list) and len(value) == 2):
        raise RequestError(422, f"field 'scale' must be [low, high], got {str(value)[:100]}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise RequestError(422, f"field 'scale' must hold two finite numbers, got {str(value)[:100]}")
    low, high = float(value[0]), float(value[1])
    if low >= high:
        raise RequestError(422, f"field 'scale' must have low < high, got {value}")
    if high - low + 1 > limits.max_scale_points:
        raise RequestError(
            422, f"field 'scale' {value} spans more than {limits.max_scale_points} scores (the server's limit)"
        )
    return low, high


def _payload(value: str, name: str, limits: Limits) -> tuple[str, bytes]:
    """(mime type, bytes) of a data URL, or of a fetched URL where that is allowed."""
    match = DATA_URL.match(value)
    if match:
        try:
            return match["mime"], base64.b64decode(match["data"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise RequestError(400, f"field '{name}': the data URL's base64 does not decode ({error})") from None
    if value.startswith(("http://", "https://")):
        if not limits.allow_remote_media:
            raise RequestError(
                400,
                f"field '{name}': remote URLs are not fetched by this server (allow_remote_media=false); "
                "send the media as a data URL (data:image/png;base64,...)",
            )
        try:
            with urllib.request.urlopen(value, timeout=limits.remote_timeout_s) as response:  # noqa: S310 (opt-in)
                data = response.read(limits.max_request_bytes + 1)
                mime = response.headers.get_content_type()
        except OSError as error:
            raise RequestError(400, f"field '{name}': could not fetch {value[:100]} ({error})") from None
        if len(data) > limits.max_request_bytes:
            raise RequestError(413, f"field '{name}': the fetched media exceeds {limits.max_request_bytes} bytes")
        return mime, data
    raise RequestError(422, f"field '{name}' must be a media data URL (data:<image|video>/<type>;base64,...)")


def decode_media_field(value: Any, kind: str, name: str, limits: Limits):
    """An image (PIL, RGB) or a video (`VideoClip`) from a data URL, checked against the limits."""
    if not isinstance(value, str):
        raise RequestError(422, f"field '{name}' must be a {kind} data URL string")
    mime, data = _payload(value, name, limits)
    if not mime.startswith(f"{kind}/"):
        raise RequestError(422, f"field '{name}' must be {kind} media, got {mime}")
    if kind == "image":
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only: the size is checked before any pixel
            width, height = image.size
            if width * height > limits.max_pixels:
                raise RequestError(413, f"field '{name}': {width}x{height} pixels exceed the limit {limits.max_pixels}")
            return image.convert("RGB")
        except RequestError:
            raise
        except Exception as error:  # PIL raises many types for corrupt data
            raise RequestError(400, f"field '{name}': not a decodable image ({type(error).__name__})") from None
    try:
        width, height = video_size(data)  # from the container's headers, before a frame is decoded
        if width * height > limits.max_pixels:
            raise RequestError(413, f"field '{name}': {width}x{height} frames exceed the limit {limits.max_pixels}")
        clip = decode_video(data, VideoSampling(num_frames=limits.video_frames))
    except MediaDecodeError as error:
        raise RequestError(400, f"field '{name}': not a decodable video ({error})") from None
    _, height, width, _ = clip.frames.shape
    if width * height > limits.max_pixels:  # a stream whose frames are not the size its header states
        raise RequestError(413, f"field '{name}': {width}x{height} frames exceed the limit {limits.max_pixels}")
    return clip


def parse_request(body: Any, limits: Limits) -> JudgeRequest:
    """A checked request with its media decoded and its judge queries built; `RequestError` otherwise."""
    if not isinstance(body, dict):
        raise RequestError(422, "the request body must be a JSON object")
    op = body.get("op")
    if op not in OPS:
        raise RequestError(422, f"field 'op' must be one of {list(OPS)}, got {op!r}")
    task = body.get("task")
    if task not in TASKS:
        raise RequestError(422, f"field 'task' must be one of {list(TASKS)}, got {task!r}")
    prompt = check_text(body.get("prompt"), "prompt", limits)
    spec = task_spec(task)
    kind = spec.media
    single = op == "score" and "candidate" in body
    raw = [body["candidate"]] if single else body.get("candidates")
    if not isinstance(raw, list):
        raise RequestError(422, "field 'candidates' must be a list (or 'candidate' one candidate, for score)")
    wanted = {"score": (1, limits.max_group), "compare": (2, 2), "group_rewards": (2, limits.max_group)}[op]
    if not wanted[0] <= len(raw) <= wanted[1]:
        status = 413 if len(raw) > wanted[1] and op != "compare" else 422
        raise RequestError(status, f"'{op}' takes {wanted[0]}-{wanted[1]} candidates, got {len(raw)}")
    media_count = len(raw) * spec.media_candidates + spec.context
    if media_count > limits.max_media:
        raise RequestError(413, f"{media_count} media in one request; the limit is {limits.max_media}")
    name = "candidate" if single else "candidates[{}]"
    if spec.context:  # understanding: the image or video asked about; editing: the source image
        context = decode_media_field(body.get("context"), kind, "context", limits)
    elif body.get("context") is not None:
        raise RequestError(422, f"field 'context' must be absent for {task}")
    else:
        context = None
    if spec.media_candidates:
        candidates = [decode_media_field(c, kind, name.format(i), limits) for i, c in enumerate(raw)]
    else:
        candidates = [check_text(c, name.format(i), limits) for i, c in enumerate(raw)]
    try:
        check_candidates(task, tuple(candidates))
        check_context(task, context)
    except RecordError as error:
        raise RequestError(422, str(error)) from None
    both_orders = body.get("both_orders", False)
    if not isinstance(both_orders, bool):
        raise RequestError(422, "field 'both_orders' must be true or false")
    scale = check_scale(body.get("scale", list(DEFAULT_SCALE)), limits)
    request = JudgeRequest(op, task, prompt, candidates, context, both_orders, scale, single)
    request.queries = _queries(request)
    return request


def _queries(r: JudgeRequest) -> list[JudgeQuery]:
    """Points first (score, group_rewards), then each pair, then (both_orders) each pair swapped."""

    def point(c):
        return JudgeQuery(r.task, "point", r.prompt, (c,), r.context, r.scale)

    def pair(a, b):
        return JudgeQuery(r.task, "pair", r.prompt, (a, b), r.context)

    points = [point(c) for c in r.candidates] if r.op != "compare" else []
    if r.op == "score":
        return points
    pairs = group_pairs(len(r.candidates))
    ordered = [pair(r.candidates[i], r.candidates[j]) for i, j in pairs]
    return points + ordered + ([q.swapped() for q in ordered] if r.both_orders else [])


def _pair_probabilities(judgments, pairs: int, both_orders: bool) -> list[list[float]]:
    """first / second / tie per pair, averaged with the swapped order when it was asked."""
    table = verdict_probabilities(judgments)
    return (average_orders(table[:pairs], table[pairs:]) if both_orders else table).tolist()


def _result(r: JudgeRequest, judgments) -> dict[str, Any]:
    if r.op == "score" and r.single:
        j = judgments[0]
        return {"score": j.expected_score, "probabilities": {f"{k:g}": v for k, v in j.probabilities.items()}}
    if r.op == "score":
        return {"scores": [j.expected_score for j in judgments]}
    n = len(r.candidates)
    points = judgments[:n] if r.op == "group_rewards" else []
    rows = _pair_probabilities(judgments[len(points) :], len(group_pairs(n)), r.both_orders)
    if r.op == "compare":
        first, second, tie = rows[0]
        return {"p_first": first + 0.5 * tie, "probabilities": dict(zip(VERDICTS, rows[0], strict=True))}
    table = torch.tensor(rows)
    rates, expected = win_rates(n, table, table.sum(-1) > 0)  # a pair without a reading counts as a tie
    return {"scores": [j.expected_score for j in points], "win_rates": rates, "expected_win_rates": expected}


def answer(judge: JudgeReadings, requests: Sequence[JudgeRequest]) -> list[dict[str, Any]]:
    """Every request's result from ONE judge call over all their queries (the judge groups those that share a
    prefix: a group's points, its pairs)."""
    queries = [q for r in requests for q in r.queries]
    judgments = judge.judge(queries)
    results, at = [], 0
    for r in requests:
        results.append(_result(r, judgments[at : at + len(r.queries)]))
        at += len(r.queries)
    return results
