"""The reward server on LitServe: `JudgeAPI` (native JSON, dynamically batched: all requests of a batch are judged in
one call, so a group's pairs and points share their prefix) and `ChatAPI` (OpenAI chat completions, for clients
written for a vLLM server of the official checkpoints: the judge writes its answer greedily), and the ASGI
middlewares in front of both (`TokenMiddleware`, `BodyTimeoutMiddleware`).

A bad request never fails the batch it arrived in: `decode_request` checks everything a request carries and turns a
problem into a `RequestError`, which `encode_response` answers with its 4xx and message while the rest of the batch
is judged; should a batch still fail in the judge, each of its requests is judged alone, so only the one that
fails is answered with an error.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import litserve as ls
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from unified_reward.data.media import MediaDecodeError
from unified_reward.data.schema import RecordError
from unified_reward.encoding.chat import encode_chat
from unified_reward.judging.text_generation import generate_texts
from unified_reward.serving.requests import (
    JudgeRequest,
    Limits,
    RequestError,
    answer,
    check_text,
    decode_media_field,
    parse_request,
)

log = logging.getLogger(__name__)
OPEN_PATHS = ("/health",)  # what a load balancer may ask without the token
_DATA_ERRORS = (ValueError, TypeError, OverflowError, RecordError, MediaDecodeError)  # what a request's content causes


async def _json_error(send: Send, status: int, message: str) -> None:
    body = JSONResponse(status_code=status, content={"error": message}).body
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class TokenMiddleware:
    """With a token set, every path but `OPEN_PATHS` needs `Authorization: Bearer <token>` (compared in constant
    time): the judge's endpoints, LitServe's `/info` (which shows the configuration) and any other route."""

    def __init__(self, app: ASGIApp, token: str | None = None):
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if not secrets.compare_digest(given, self.expected):
            await _json_error(send, 401, "a valid 'Authorization: Bearer <token>' header is required")
            return
        await self.app(scope, receive, send)


class BodyTimeoutMiddleware:
    """A request whose body has not arrived in full within `seconds` of its headers gets a 408, so a client that
    sends part of a body and stalls holds nothing for long."""

    def __init__(self, app: ASGIApp, seconds: float = 30.0):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:  # the body is in: what follows is the wait for a disconnect, which has no deadline
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.0))
            except TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.seconds:g} s") from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


class JudgeAPI(ls.LitAPI):
    def __init__(self, load_judge, limits: Limits, **litapi):
        super().__init__(**litapi)
        self.load_judge = load_judge  # called in the worker process: the judge is built where it runs
        self.limits = limits

    def setup(self, device: str) -> None:
        self.judge = self.load_judge(device)

    def decode_request(self, request: dict) -> Any:
        try:
            parsed = parse_request(request, self.limits)
            self._check_readable(parsed)
            return parsed
        except RequestError as error:
            return error

    def _check_readable(self, request: JudgeRequest) -> None:
        """A point scale the judge cannot read gives no score: refused, not answered with `null`."""
        reads_scale = getattr(self.judge, "reads_scale", None)
        if reads_scale is None:  # a judge that scores on any scale (random, named scorers)
            return
        for query in request.queries:
            if not reads_scale(query):
                low, high = self.judge.asked_scale(query)
                raise RequestError(
                    422,
                    f"this judge cannot read a score on {low:g}-{high:g} in one pass (its score answers share "
                    f"token prefixes); ask on a scale it reads, e.g. [1, 5] or [1, 10]",
                )

    def batch(self, inputs: list) -> list:
        return inputs

    def predict(self, requests: Any) -> Any:
        single = not isinstance(requests, list)  # max_batch_size=1: LitServe passes the request itself
        batch = [requests] if single else requests
        valid = [r for r in batch if not isinstance(r, RequestError)]
        results = iter(self._answer(valid) if valid else [])
        outputs = [r if isinstance(r, RequestError) else next(results) for r in batch]
        return outputs[0] if single else outputs

    def _answer(self, requests: list[JudgeRequest]) -> list:
        try:
            return answer(self.judge, requests)
        except Exception as error:
            if len(requests) == 1:
                return [self._failed(requests[0], error)]
            log.warning("a batch of %d requests failed in the judge; judging each alone", len(requests))
            return [self._answer([r])[0] for r in requests]

    def _failed(self, request: JudgeRequest, error: Exception) -> RequestError:
        """The answer to one request that failed in the judge: a 422 where its content caused it, else a 500."""
        if isinstance(error, _DATA_ERRORS):
            log.warning("a %s request failed in the judge", request.op, exc_info=error)
            return RequestError(422, f"this request could not be judged ({type(error).__name__}: {str(error)[:200]})")
        log.error("a %s request failed in the judge", request.op, exc_info=error)
        return RequestError(500, f"the judge failed on this request ({type(error).__name__})")

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output: Any) -> Any:
        if isinstance(output, RequestError):
            return JSONResponse(status_code=output.status, content={"error": output.message})
        return output


def chat_parts(messages: list, limits: Limits) -> list[dict[str, Any]]:
    """Our chat content parts from OpenAI messages: exactly one user message, its text and its media (images or
    videos, as data URLs in `image_url` parts: LitServe's OpenAI schema has no video part)."""
    users = [m for m in messages if m.role == "user"]
    if len(users) != 1 or len(messages) != 1:
        raise RequestError(422, "the judge takes exactly one user message (its prompt, as the official clients send)")
    content = users[0].content
    if isinstance(content, str):
        return [{"type": "text", "text": check_text(content, "messages[0].content", limits)}]
    parts: list[dict[str, Any]] = []
    media = 0
    for index, part in enumerate(content or []):
        if part.type == "text":
            parts.append({"type": "text", "text": check_text(part.text, f"messages[0].content[{index}].text", limits)})
        elif part.type == "image_url":
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            kind = "video" if url.startswith("data:video/") else "image"
            media += 1
            if media > limits.max_media:
                raise RequestError(413, f"more than {limits.max_media} media in one request")
            value = decode_media_field(url, kind, f"messages[0].content[{index}]", limits)
            parts.append({"type": kind, "media": value})
        else:
            raise RequestError(422, f"messages[0].content[{index}]: unsupported part type {part.type!r}")
    if not parts:
        raise RequestError(422, "the user message is empty")
    text_chars = sum(len(p["text"]) for p in parts if p["type"] == "text")
    if text_chars > limits.max_text_chars:
        limit = limits.max_text_chars
        raise RequestError(413, f"the message has {text_chars} characters of text; the limit is {limit}")
    return parts


def new_token_budget(request, server_max: int) -> int:
    """The tokens the judge may write: the request's `max_completion_tokens` or `max_tokens` (a positive integer),
    capped by the server's own budget."""
    for name in ("max_completion_tokens", "max_tokens"):
        asked = getattr(request, name, None)
        if asked is None:
            continue
        if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
            raise RequestError(422, f"field '{name}' must be a positive integer, got {asked!r}")
        return min(asked, server_max)
    return server_max


class ChatAPI(ls.LitAPI):
    """`/v1/chat/completions`: the judge's greedy answer to the user message, as a vLLM server would give it (the
    client parses `Final Score: X` or `Image 1 is better` from it). Temperature and sampling options are ignored."""

    def __init__(self, load_judge, limits: Limits, *, max_new_tokens: int = 512, **litapi):
        super().__init__(spec=ls.OpenAISpec(), **litapi)
        self.load_judge = load_judge
        self.limits = limits
        self.max_new_tokens = max_new_tokens

    def setup(self, device: str) -> None:
        from unified_reward.judging.generative import Judge

        self.judge = self.load_judge(device)
        if not isinstance(self.judge, Judge):
            raise ValueError("the chat endpoint needs a judge that writes text (a judge export or checkpoint)")

    def decode_request(self, request, context_kwargs=None):
        try:
            return chat_parts(request.messages, self.limits), new_token_budget(request, self.max_new_tokens)
        except RequestError as error:
            raise HTTPException(error.status, error.message) from None

    def predict(self, request):
        parts, max_new_tokens = request
        encoded = encode_chat(self.judge.processor, parts, None, max_length=self.judge.max_length)
        yield generate_texts(self.judge.model, self.judge.processor, [encoded], max_new_tokens)[0]
