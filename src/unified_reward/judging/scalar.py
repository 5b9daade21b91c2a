"""Judges that give one number per candidate: scalar-head reward models (HPSv3, Skywork-VL-Reward, EditReward),
behind our judge interface (`judging.queries.JudgeReadings`), so that `evaluate.py` and `serve.py` take other people's
judges as they take ours.

A scalar-head model is a VLM whose last hidden state, at one token, goes through a small head:

- `hpsv3`: Qwen2-VL; an MLP (hidden -> 1024 -> 16 -> 2: the reward's mean and log sigma; the mean is the score) at
  the `<|Reward|>` token the user text ends with (HPSv3's `rm_head`);
- `skywork_vl_reward`: Qwen2.5-VL; a linear value head (hidden -> 1, trl's `ValueHead`: `v_head.summary`) at the
  last token of the chat, the candidate answer written as the assistant turn;
- `edit_reward`: Qwen2.5-VL; two MLP heads (`rm_heads.head_0`, `head_1`), each asked with its own instruction
  (instruction following, visual quality), their means averaged.

A pair's verdict is the Bradley-Terry probability of its two rewards, P(first) = sigmoid(r1 - r2) (these models
are trained on it), never a tie; a point is the raw reward, on the model's own scale.

A scalar judge is a folder with `scalar_judge.json` (`{"kind": ..., "family": ..., "instructions": [...],
"processor": <hub id or folder>}`) beside the model's weights; the head's weights are read from whichever
`*.safetensors` of the folder holds keys under the head's name (`rm_head.`, `rm_heads.`, `v_head.`), as the
released checkpoints store them (in the model file, or in a `value_head.safetensors` of their own). `instructions`
hold the user text per head with `{prompt}` for the caption or question; a released model is read at its own
numbers only with its own instruction text (e.g. HPSv3's rubric), which the file must then give.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unified_reward.data.tasks import task_spec
from unified_reward.encoding.chat import encode_chat, pad_batch
from unified_reward.errors import UserError
from unified_reward.judging.queries import JudgeQuery, JudgeReadings, Judgment

REWARD_TOKEN = "<|Reward|>"
HEAD_PREFIXES = ("rm_head.", "rm_heads.", "v_head.")


@dataclass(frozen=True)
class ScalarHeadSpec:
    """How a scalar-head model reads its number (module docstring)."""

    head: str  # mlp (mean, log sigma: the mean read) | value (one number)
    heads: int = 1  # more than one: each asked with its own instruction, their numbers averaged
    reward_token: str | None = REWARD_TOKEN  # read where this token is; None: at the last token
    instructions: tuple[str, ...] = ("{prompt}\nPlease rate it: " + REWARD_TOKEN,)
    answer_as_assistant: bool = False  # understanding: the candidate answer as the assistant turn

    def __post_init__(self):
        if self.head not in ("mlp", "value"):
            raise ValueError(f"head must be mlp or value, got {self.head!r}")
        if len(self.instructions) != self.heads:
            raise ValueError(f"{self.heads} heads need {self.heads} instructions, got {len(self.instructions)}")
        if self.reward_token and not all(self.reward_token in i for i in self.instructions):
            raise ValueError(f"every instruction must hold the reward token {self.reward_token}")


SPECS = {
    "hpsv3": ScalarHeadSpec("mlp"),
    "skywork_vl_reward": ScalarHeadSpec(
        "value", reward_token=None, instructions=("{prompt}",), answer_as_assistant=True
    ),
    "edit_reward": ScalarHeadSpec(
        "mlp",
        heads=2,
        instructions=(
            "{prompt}\nHow well does the edit follow the instruction? " + REWARD_TOKEN,
            "{prompt}\nHow good is the edited image? " + REWARD_TOKEN,
        ),
    ),
}


def _mlp(hidden: int) -> nn.Sequential:
    """hidden -> 1024 -> 16 -> 2, as HPSv3's and EditReward's heads (their state-dict indices 0, 3, 5)."""
    return nn.Sequential(
        nn.Linear(hidden, 1024), nn.ReLU(), nn.Dropout(0.05), nn.Linear(1024, 16), nn.ReLU(), nn.Linear(16, 2)
    )


class ValueHead(nn.Module):
    """trl's value head: dropout, then `summary` (hidden -> 1)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dropout = nn.Dropout(0.1)
        self.summary = nn.Linear(hidden, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(self.dropout(hidden))


class ScalarRewardModel(nn.Module):
    """A VLM and its reward head(s): `forward` gives one number per row for head `head`."""

    def __init__(self, vlm: nn.Module, spec: ScalarHeadSpec):
        super().__init__()
        self.vlm, self.spec = vlm, spec
        config = vlm.config
        hidden = getattr(getattr(config, "text_config", None), "hidden_size", None) or config.hidden_size
        if spec.head == "value":
            self.v_head = ValueHead(hidden)
        elif spec.heads == 1:
            self.rm_head = _mlp(hidden)
        else:
            self.rm_heads = nn.ModuleDict({f"head_{i}": _mlp(hidden) for i in range(spec.heads)})

    def head_module(self, index: int) -> nn.Module:
        if self.spec.head == "value":
            return self.v_head
        return self.rm_head if self.spec.heads == 1 else self.rm_heads[f"head_{index}"]

    def forward(self, inputs: dict[str, torch.Tensor], positions: torch.Tensor, head: int = 0) -> torch.Tensor:
        # the decoder alone: its last (normed) hidden state is all a head reads, no vocabulary logits are needed
        hidden = self.vlm.model(**inputs, use_cache=False).last_hidden_state
        picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), positions]
        module = self.head_module(head)
        out = module(picked.to(next(module.parameters()).dtype))
        return out[:, 0]  # the mean (mlp) or the one number (value)


def add_reward_token(vlm: nn.Module, processor) -> None:
    """The `<|Reward|>` special token in the tokenizer and a row for it in the embeddings (as HPSv3 and EditReward
    build their models before training)."""
    processor.tokenizer.add_special_tokens({"additional_special_tokens": [REWARD_TOKEN]})
    vlm.resize_token_embeddings(len(processor.tokenizer))


class ScalarJudge(JudgeReadings):
    def __init__(self, model: ScalarRewardModel, processor, *, batch_size: int = 8, max_length: int | None = None):
        self.model, self.processor = model, processor
        self.spec = model.spec
        self.batch_size, self.max_length = batch_size, max_length
        token = self.spec.reward_token
        self.reward_token_id = processor.tokenizer.convert_tokens_to_ids(token) if token else None
        if token and self.reward_token_id == processor.tokenizer.unk_token_id:
            raise UserError(f"the tokenizer has no {token} token: add it (and resize the embeddings) first")

    def _encode(self, task: str, prompt: str, candidate: Any, context: Any, head: int):
        text = self.spec.instructions[head].format(prompt=prompt)
        shown = task_spec(task)
        if shown.media_candidates:  # editing: the source image first, then the edited one
            media, answer = [context, candidate] if shown.context else [candidate], None
        else:
            media = [context]
            answer = candidate if self.spec.answer_as_assistant else None
            if answer is None:
                text = f"{text}\n{candidate}"
        parts = [{"type": shown.media, "media": m} for m in media] + [{"type": "text", "text": text}]
        return encode_chat(self.processor, parts, answer, max_length=self.max_length)

    def _positions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.reward_token_id is None:  # right padding: the last real token of each row
            return batch["attention_mask"].sum(dim=1) - 1
        found = batch["input_ids"] == self.reward_token_id
        counts = found.sum(dim=1)
        if not bool((counts == 1).all()):
            raise ValueError(f"each row needs exactly one {self.spec.reward_token} token, found {counts.tolist()}")
        return found.int().argmax(dim=1)

    @torch.no_grad()
    def rewards(self, items: Sequence[tuple[str, str, Any, Any]]) -> list[float]:
        """The reward of each (task, prompt, candidate, context), averaged over the heads."""
        device = next(self.model.parameters()).device
        totals = [0.0] * len(items)
        for head in range(self.spec.heads):
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                batch = pad_batch([self._encode(*item, head) for item in chunk], self.processor)
                batch.pop("labels")
                batch = {k: v.to(device) for k, v in batch.items()}
                values = self.model(batch, self._positions(batch), head).float().cpu().tolist()
                for offset, value in enumerate(values):
                    totals[start + offset] += value / self.spec.heads
        return totals

    def judge(self, queries: Sequence[JudgeQuery], *, with_text: bool = False) -> list[Judgment]:
        items, owners = [], []
        for index, query in enumerate(queries):
            for candidate in query.candidates:
                items.append((query.task, query.prompt, candidate, query.context))
                owners.append(index)
        values = self.rewards(items)
        per_query: list[list[float]] = [[] for _ in queries]
        for owner, value in zip(owners, values, strict=True):
            per_query[owner].append(value)
        judgments = []
        for query, rewards in zip(queries, per_query, strict=True):
            if query.mode == "pair":
                first = 1.0 / (1.0 + math.exp(-(rewards[0] - rewards[1])))
                judgments.append(Judgment({"first": first, "second": 1.0 - first, "tie": 0.0}))
            else:
                judgments.append(Judgment({rewards[0]: 1.0}))
        return judgments

    def save_pretrained(self, path: str | Path) -> None:
        """The VLM and processor as transformers saves them, the head(s) in `head.safetensors`, and
        `scalar_judge.json`."""
        from safetensors.torch import save_file

        from unified_reward.models.export import save_vlm

        path = Path(path)
        save_vlm(self.model.vlm, self.processor, path, None)
        heads = {k: v.contiguous() for k, v in self.model.state_dict().items() if k.startswith(HEAD_PREFIXES)}
        save_file(heads, str(path / "head.safetensors"))
        info = {"family": self.processor.family, **asdict(self.spec)}
        (path / "scalar_judge.json").write_text(json.dumps(info, indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype: str = "float32", **kwargs) -> ScalarJudge:
        from safetensors import safe_open

        from unified_reward.models.builders import build_vlm
        from unified_reward.models.processor import build_processor

        path = Path(path).expanduser()
        info = json.loads((path / "scalar_judge.json").read_text())
        kind = info.pop("kind", None)
        family = info.pop("family")
        processor_from = info.pop("processor", None) or str(path)
        fields = asdict(SPECS[kind]) if kind else {}
        fields.update({k: v for k, v in info.items() if k in ScalarHeadSpec.__dataclass_fields__})
        spec = ScalarHeadSpec(**{**fields, "instructions": tuple(fields["instructions"])})
        processor = build_processor(family, processor_from)
        vlm = build_vlm(family, processor, pretrained=str(path), dtype=dtype)
        model = ScalarRewardModel(vlm, spec)
        heads: dict[str, torch.Tensor] = {}
        for file in sorted(path.glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as weights:
                names = [k for k in weights.keys() if k.startswith(HEAD_PREFIXES)]  # noqa: SIM118 (not a dict)
                heads.update({k: weights.get_tensor(k) for k in names})
        wanted = {k for k in model.state_dict() if k.startswith(HEAD_PREFIXES)}
        if set(heads) != wanted:
            raise UserError(
                f"judge={path}: the head's weights are not all there: missing {sorted(wanted - set(heads))[:4]}, "
                f"unexpected {sorted(set(heads) - wanted)[:4]} (in the folder's *.safetensors)"
            )
        model.load_state_dict(heads, strict=False)
        return cls(model.eval(), processor, **kwargs)
