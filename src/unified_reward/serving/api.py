"""The reward server on LitServe: `JudgeAPI` (native JSON, dynamically batched: all requests of a batch are judged in
one call, so a group's pairs and points share their prefix) and `ChatAPI` (OpenAI chat completions, for clients
written for a vLLM server of the official checkpoints: the judge writes its answer greedily).

A bad request never fails the batch it arrived in: `decode_request` turns it into a `RequestError`, which
`encode_response` answers with its 4xx and message while the rest of the batch is judged.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import litserve as ls
from fastapi import Depends, HTTPException
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from unified_reward.encoding.chat import encode_chat
from unified_reward.serving.requests import Limits, RequestError, answer, decode_media_field, parse_request
from unified_reward.text_generation import generate_texts

log = logging.getLogger(__name__)
_BEARER = Depends(HTTPBearer(auto_error=False))  # FastAPI reads the header; a missing one gives None


class _Auth:
    """An optional bearer token (`Authorization: Bearer <token>`), compared in constant time."""

    token: str | None = None

    def authorize(self, credentials: HTTPAuthorizationCredentials | None = _BEARER) -> None:
        if self.token is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials, self.token):
            raise HTTPException(401, "a valid 'Authorization: Bearer <token>' header is required")


class JudgeAPI(_Auth, ls.LitAPI):
    def __init__(self, load_judge, limits: Limits, *, token: str | None = None, **litapi):
        super().__init__(**litapi)
        self.load_judge = load_judge  # called in the worker process: the judge is built where it runs
        self.limits = limits
        self.token = token

    def setup(self, device: str) -> None:
        self.judge = self.load_judge(device)

    def decode_request(self, request: dict) -> Any:
        try:
            return parse_request(request, self.limits)
        except RequestError as error:
            return error

    def batch(self, inputs: list) -> list:
        return inputs

    def predict(self, requests: Any) -> Any:
        single = not isinstance(requests, list)  # max_batch_size=1: LitServe passes the request itself
        batch = [requests] if single else requests
        valid = [r for r in batch if not isinstance(r, RequestError)]
        results = iter(answer(self.judge, valid) if valid else [])
        outputs = [r if isinstance(r, RequestError) else next(results) for r in batch]
        return outputs[0] if single else outputs

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
        return [{"type": "text", "text": content}]
    parts: list[dict[str, Any]] = []
    media = 0
    for index, part in enumerate(content or []):
        if part.type == "text":
            parts.append({"type": "text", "text": part.text})
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
    return parts


class ChatAPI(_Auth, ls.LitAPI):
    """`/v1/chat/completions`: the judge's greedy answer to the user message, as a vLLM server would give it (the
    client parses `Final Score: X` or `Image 1 is better` from it). Temperature and sampling options are ignored."""

    def __init__(self, load_judge, limits: Limits, *, token: str | None = None, max_new_tokens: int = 512, **litapi):
        super().__init__(spec=ls.OpenAISpec(), **litapi)
        self.load_judge = load_judge
        self.limits = limits
        self.token = token
        self.max_new_tokens = max_new_tokens

    def setup(self, device: str) -> None:
        self.judge = self.load_judge(device)
        if not hasattr(self.judge, "processor"):
            raise ValueError("the chat endpoint needs a judge that writes text (a judge export or checkpoint)")

    def decode_request(self, request, context_kwargs=None):
        try:
            parts = chat_parts(request.messages, self.limits)
        except RequestError as error:
            raise HTTPException(error.status, error.message) from None
        asked = request.max_completion_tokens or request.max_tokens or self.max_new_tokens
        return parts, min(asked, self.max_new_tokens)

    def predict(self, request):
        parts, max_new_tokens = request
        encoded = encode_chat(self.judge.processor, parts, None, max_length=self.judge.max_length)
        yield generate_texts(self.judge.model, self.judge.processor, [encoded], max_new_tokens)[0]
