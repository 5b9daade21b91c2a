"""A small client of the reward server (standard library only), and rewards for RL loops built on it:

    client = JudgeClient("http://127.0.0.1:8000", token=None)
    client.score("image_generation", "two red circles", image)            # expected score, continuous
    client.compare("image_generation", caption, image_a, image_b)         # P(first better), ties half
    client.group_rewards("image_generation", caption, images)             # scores and Pref-GRPO win rates

    GRPOTrainer(..., reward_funcs=[trl_reward(client, task="image_understanding")])   # TRL, VLM policies
    rewards = diffusion_group_rewards(client, caption, images)            # a diffusion GRPO loop's group
    rewards = diffusion_group_rewards(client, instruction, edits, task="image_editing", source=image)  # an editor's

A failed request raises `ServerError` with the server's status and message; no reward is ever made up.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unified_reward.data.media import encode_video
from unified_reward.data.schema import VideoClip
from unified_reward.data.tasks import task_spec
from unified_reward.judging.queries import VERDICTS, JudgeQuery, JudgeReadings, Judgment


class ServerError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"reward server answered {status}: {message}")
        self.status = status
        self.message = message


def media_data_url(media: Any) -> str:
    """A data URL of an image (PIL, uint8 (H, W, 3) array, or a `Path`), a video (`VideoClip`, uint8 (T, H, W, 3)
    array, or the `Path` of an .mp4); a string (an answer text, a data URL) is passed as it is."""
    if isinstance(media, str):
        return media
    if isinstance(media, Path):
        path = Path(media)
        mime = "video/mp4" if path.suffix.lower() in (".mp4", ".webm", ".mov", ".avi") else "image/png"
        if mime == "image/png" and path.suffix.lower() in (".jpg", ".jpeg"):
            mime = "image/jpeg"
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    if isinstance(media, VideoClip) or (isinstance(media, np.ndarray) and media.ndim == 4):
        frames = media.frames if isinstance(media, VideoClip) else media
        return f"data:video/mp4;base64,{base64.b64encode(encode_video(frames).data).decode()}"
    image = Image.fromarray(media) if isinstance(media, np.ndarray) else media
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


class JudgeClient:
    def __init__(self, url: str = "http://127.0.0.1:8000", *, token: str | None = None, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            payload = error.read().decode(errors="replace")
            try:
                decoded = json.loads(payload)
                message = decoded.get("error") or decoded.get("detail") or payload
            except json.JSONDecodeError:
                message = payload
            raise ServerError(error.code, str(message)) from None

    def judge(self, op: str, task: str, prompt: str, candidates: Sequence[Any], context: Any = None, **options):
        body = {"op": op, "task": task, "prompt": prompt, **options}
        body["candidates"] = [media_data_url(c) for c in candidates]
        if context is not None:
            body["context"] = media_data_url(context)
        return self.post("/v1/judge", body)

    def score(self, task: str, prompt: str, candidate: Any, context: Any = None, *, scale=(1, 5)) -> float:
        return self.judge("score", task, prompt, [candidate], context, scale=list(scale))["scores"][0]

    def compare(self, task: str, prompt: str, first: Any, second: Any, context: Any = None, *, both_orders=False):
        return self.judge("compare", task, prompt, [first, second], context, both_orders=both_orders)["p_first"]

    def group_rewards(self, task: str, prompt: str, candidates: Sequence[Any], context: Any = None, **options):
        """{"scores": [...], "win_rates": [...], "expected_win_rates": [...]} for the group."""
        return self.judge("group_rewards", task, prompt, list(candidates), context, **options)


def _text_of(message: Any) -> str:
    """The text of a TRL prompt or completion: a string, or a conversation whose last message holds it."""
    if isinstance(message, str):
        return message
    content = message[-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(part["text"] for part in content if part.get("type") == "text")


def trl_reward(
    client: JudgeClient, *, task: str = "image_understanding", media_column: str = "image", reward: str = "score"
):
    """A reward function for TRL's `GRPOTrainer(reward_funcs=...)` for a VLM policy: each completion is the answer
    to its prompt's question about the dataset's `media_column` (TRL passes dataset columns as keyword arguments).
    `reward="score"`: the judge's expected score; `"win_rate"`: Pref-GRPO's win rate of the completion within the
    completions of the same prompt (TRL's group of `num_generations`)."""
    if reward not in ("score", "win_rate"):
        raise ValueError(f"reward must be 'score' or 'win_rate', got {reward!r}")
    if task_spec(task).prompt != "question":
        raise ValueError(
            f"trl_reward judges a VLM policy's text answers; {task}'s candidates are media: use diffusion_group_rewards"
        )

    def reward_function(prompts, completions, **kwargs) -> list[float]:
        media = kwargs.get(media_column)
        if media is None:
            raise KeyError(f"the dataset has no column {media_column!r} to judge the completions against")
        questions = [_text_of(p) for p in prompts]
        answers = [_text_of(c) for c in completions]
        rewards: list[float | None] = [None] * len(answers)
        groups: dict[str, list[int]] = {}
        for i, question in enumerate(questions):
            groups.setdefault(question, []).append(i)
        for question, rows in groups.items():
            context = media[rows[0]]
            context = context[0] if isinstance(context, list) else context  # TRL's "images" columns hold lists
            group = [answers[i] for i in rows]
            if reward == "score" or len(rows) < 2:
                values = client.judge("score", task, question, group, context)["scores"]
            else:
                values = client.group_rewards(task, question, group, context)["win_rates"]
            for i, value in zip(rows, values, strict=True):
                rewards[i] = float(value)
        return rewards

    reward_function.__name__ = f"unified_reward_{reward}"  # TRL logs each reward function under its name
    return reward_function


def diffusion_group_rewards(
    client: JudgeClient,
    prompt: str,
    samples: Sequence[Any],
    *,
    task: str = "image_generation",
    reward: str = "win_rate",
    source: Any = None,
) -> list[float]:
    """The rewards of one group of samples of one prompt for a diffusion GRPO loop (Flow-GRPO, Pref-GRPO): Pref-GRPO's
    win rates (`reward="win_rate"`) or the judge's expected scores (`"score"`). For an editing model
    (`task="image_editing"`) `prompt` is the instruction and `source` the image edited. Normalising the rewards into
    advantages is the loop's business."""
    result = client.group_rewards(task, prompt, samples, source)
    return result["win_rates" if reward == "win_rate" else "scores"]


class ServedJudge(JudgeReadings):
    """The judge behind the project's server (`src/serve.py`) as an in-process judge (`JudgeReadings`): a pair's
    verdict probabilities from `compare`, a point's expected score from `score`; one request per judgment. What an
    online RL loop (`VLMGRPOModule` with `judge=http://...`) needs when the judge runs on other machines."""

    def __init__(self, client: JudgeClient):
        self.client = client

    def judge(self, queries: Sequence[JudgeQuery], *, with_text: bool = False) -> list[Judgment]:
        judgments = []
        for q in queries:
            if q.mode == "pair":
                result = self.client.judge("compare", q.task, q.prompt, list(q.candidates), q.context)
                judgments.append(Judgment({v: float(result["probabilities"][v]) for v in VERDICTS}))
            else:
                (score,) = self.client.judge(
                    "score", q.task, q.prompt, list(q.candidates), q.context, scale=list(q.scale)
                )["scores"]
                judgments.append(Judgment({} if score is None else {float(score): 1.0}, scale=q.scale))
        return judgments
