"""The judge's prompt templates (task x mode) and answer formats: the one place they live.

A template's `instruction` holds `{prompt}`, `{answer1}`/`{answer2}` (understanding), `{low}`/`{high}`
(point scale) and the media markers `<context>`, `<candidate1>`, `<candidate2>`, where images or
videos go (editing: the source image is the context, the edited images the candidates). Pair answers are
the sentences the official checkpoints emit (`Image 1 is better.`,
`Answer 2 is better.`, `Both videos are equally good.`); point answers end in `Final Score: X`.
Replace the wording for a checkpoint trained on other templates with `load_templates(path)` (a JSON
or YAML file mapping `<task>_<mode>` to `{instruction, pair_answers, scale}`); `load_templates("official")` is the
official checkpoints' own prompts (UnifiedReward's `inference_qwen` scripts) with their answer wordings and
scales (image generation 1-5, image understanding 0-100, video generation 1-10, video understanding 1-5), and
UnifiedReward-Edit's pairwise rank (`Edited image 1 is better`; its pointwise prompts answer a JSON list of two 0-25
scores, which the score trie does not read, so editing's point template stays ours).
A template with a `scale` asks on that scale whatever scale a record's label is on (labels are rescaled).
Pair answers offer a tie only where the prompt allows one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unified_reward.data.schema import MODES, stream_name
from unified_reward.data.tasks import TASKS, media_kind_of, task_spec

MEDIA_MARKER = re.compile(r"<(context|candidate1|candidate2)>")
SCORE_PREFIX = "Final Score: "
DEFAULT_SCALE = (1.0, 5.0)  # the point scale asked for when a record or query names none


OFFICIAL = "official"
OFFICIAL_TEMPLATES_FILE = Path(__file__).with_name("official_templates.json")


@dataclass(frozen=True)
class JudgeTemplate:
    instruction: str
    pair_answers: dict[str, str] = field(default_factory=dict)  # verdict -> answer text (pair mode)
    scale: tuple[float, float] | None = None  # a point template that names its scale in its text asks on it

    def asked_scale(self, requested: tuple[float, float] | None) -> tuple[float, float]:
        """The scale a point question is asked on: the template's own, else the one requested."""
        return self.scale or requested or DEFAULT_SCALE

    def render(
        self,
        prompt: str,
        *,
        context: Any = None,
        candidates: tuple[Any, ...] = (),
        media_kind: str = "image",
        scale: tuple[float, float] = (1, 5),
    ) -> list[dict[str, Any]]:
        """Chat content parts: `{"type": "text", "text": ...}` and `{"type": "image"|"video", "media": ...}`."""
        texts = {f"answer{i + 1}": c for i, c in enumerate(candidates) if isinstance(c, str)}
        filled = self.instruction.format(prompt=prompt, low=_number(scale[0]), high=_number(scale[1]), **texts)
        media = {"context": context} | {f"candidate{i + 1}": c for i, c in enumerate(candidates)}
        parts: list[dict[str, Any]] = []
        for i, piece in enumerate(MEDIA_MARKER.split(filled)):
            if i % 2 == 0:
                if piece:
                    parts.append({"type": "text", "text": piece})
            else:
                if media.get(piece) is None:
                    raise ValueError(f"template needs <{piece}> but none was given")
                parts.append({"type": media_kind, "media": media[piece]})
        return parts


def render_judge_prompt(
    templates: dict[str, JudgeTemplate],
    task: str,
    mode: str,
    prompt: str,
    context: Any,
    candidates: tuple[Any, ...],
    scale: tuple[float, float],
) -> list[dict[str, Any]]:
    """The chat parts that ask the judge about one (task, mode) item: used for training and judging alike."""
    template = templates[stream_name(task, mode)]
    return template.render(
        prompt,
        context=context,
        candidates=candidates,
        media_kind=media_kind_of(task),
        scale=template.asked_scale(scale),
    )


def rescale(value: float, source: tuple[float, float], target: tuple[float, float]) -> float:
    """`value` on the `source` scale, mapped linearly onto `target` (a label on 1-5 asked on 0-100, ...)."""
    if tuple(source) == tuple(target):
        return value
    return target[0] + (value - source[0]) * (target[1] - target[0]) / (source[1] - source[0])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def score_answer(score: float) -> str:
    """`Final Score: 4`, `Final Score: 3.5`, `Final Score: 2.33` (at most 2 decimals)."""
    return SCORE_PREFIX + (str(int(score)) if float(score).is_integer() else f"{round(score, 2):g}")


def pair_answer_wordings(unit: str) -> dict[str, str]:
    """Our verdict sentences for `unit` (image, video, answer), the tie included."""
    return {
        "first": f"{unit.title()} 1 is better.",
        "second": f"{unit.title()} 2 is better.",
        "tie": f"Both {unit}s are equally good.",
    }


_GENERATION_PAIR = (
    "You will see two {kind}s generated from the same caption. Judge which {kind} follows the caption more "
    "faithfully (objects, counts, colours, {where}) and has better quality.\n"
    "Caption: {{prompt}}\n{Kind} 1: <candidate1>\n{Kind} 2: <candidate2>\n"
    "Reply with one of: '{Kind} 1 is better.', '{Kind} 2 is better.', 'Both {kind}s are equally good.'"
)
_GENERATION_POINT = (
    "You will see {a_kind} generated from a caption. Rate how faithfully it follows the caption (objects, "
    "counts, colours, {where}) and its quality, from {{low}} to {{high}}.\n"
    "Caption: {{prompt}}\n{Kind}: <candidate1>\nEnd your reply with 'Final Score: X'."
)
_EDITING_PAIR = (
    "You will see a source image, an edit instruction and two edited images. Judge which edited image carries out "
    "the instruction more faithfully while keeping everything else of the source image (objects, counts, colours, "
    "positions).\nSource image: <context>\nInstruction: {prompt}\nImage 1: <candidate1>\nImage 2: <candidate2>\n"
    "Reply with one of: 'Image 1 is better.', 'Image 2 is better.', 'Both images are equally good.'"
)
_EDITING_POINT = (
    "You will see a source image, an edit instruction and an edited image. Rate how faithfully the edit carries out "
    "the instruction while keeping everything else of the source image (objects, counts, colours, positions), from "
    "{low} to {high}.\nSource image: <context>\nInstruction: {prompt}\nImage: <candidate1>\n"
    "End your reply with 'Final Score: X'."
)
_UNDERSTANDING_PAIR = (
    "Here is {a_kind}, a question about it and two answers. Judge which answer is more accurate, complete and "
    "relevant to the {kind}.\n{Kind}: <context>\nQuestion: {{prompt}}\nAnswer 1: {{answer1}}\nAnswer 2: {{answer2}}\n"
    "Reply with one of: 'Answer 1 is better.', 'Answer 2 is better.'"
)
_UNDERSTANDING_POINT = (
    "Here is {a_kind}, a question about it and an answer. Rate the answer's accuracy, completeness and relevance "
    "to the {kind} from {{low}} to {{high}}.\n{Kind}: <context>\nQuestion: {{prompt}}\nAnswer: {{answer1}}\n"
    "End your reply with 'Final Score: X'."
)


def _default_template(task: str, mode: str) -> JudgeTemplate:
    spec = task_spec(task)
    kind = spec.media
    fill = {
        "kind": kind,
        "Kind": kind.title(),
        "a_kind": ("an " if kind[0] in "aeiou" else "a ") + kind,
        "where": "positions" if kind == "image" else "motion",
    }
    if spec.prompt == "instruction":
        text = _EDITING_PAIR if mode == "pair" else _EDITING_POINT
        answers = pair_answer_wordings(kind) if mode == "pair" else {}
    elif spec.prompt == "caption":
        text = (_GENERATION_PAIR if mode == "pair" else _GENERATION_POINT).format(**fill)
        answers = pair_answer_wordings(kind) if mode == "pair" else {}
    else:  # the understanding prompts ask for one of two answers: no tie (the official data has none)
        text = (_UNDERSTANDING_PAIR if mode == "pair" else _UNDERSTANDING_POINT).format(**fill)
        answers = {k: v for k, v in pair_answer_wordings("answer").items() if k != "tie"} if mode == "pair" else {}
    return JudgeTemplate(text, answers)


DEFAULT_TEMPLATES: dict[str, JudgeTemplate] = {
    stream_name(task, mode): _default_template(task, mode) for task in TASKS for mode in MODES
}


def load_templates(path: str | Path | None) -> dict[str, JudgeTemplate]:
    """The default templates, with those named in `path` (JSON or YAML) replaced; `"official"` for the official
    checkpoints' own."""
    templates = dict(DEFAULT_TEMPLATES)
    if path is None:
        return templates
    path = OFFICIAL_TEMPLATES_FILE if str(path) == OFFICIAL else Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        entries = yaml.safe_load(text)
    else:
        entries = json.loads(text)
    for name, entry in entries.items():
        if name not in templates:
            raise ValueError(f"{path}: unknown template {name!r}; names are {sorted(templates)}")
        if "instruction" not in entry:
            raise ValueError(f"{path}: template {name!r} has no 'instruction'")
        answers = entry.get("pair_answers", templates[name].pair_answers)
        if name.endswith("_pair") and set(answers) - {"first", "second", "tie"}:
            raise ValueError(f"{path}: pair_answers of {name!r} must map first/second/tie to answer texts")
        scale = entry.get("scale")
        if scale is not None and (len(scale) != 2 or not scale[0] < scale[1]):
            raise ValueError(f"{path}: scale of {name!r} must be [low, high] with low < high, got {scale}")
        templates[name] = JudgeTemplate(entry["instruction"], dict(answers), tuple(scale) if scale else None)
    return templates


def save_templates(templates: dict[str, JudgeTemplate], path: str | Path) -> None:
    payload = {
        name: {"instruction": t.instruction, "pair_answers": t.pair_answers}
        | ({"scale": list(t.scale)} if t.scale else {})
        for name, t in templates.items()
    }
    Path(path).write_text(json.dumps(payload, indent=2))


def render_policy_prompt(task: str, question: str, context: Any) -> list[dict[str, Any]]:
    """What a VLM policy (the model being aligned, not the judge) is asked: its image or video, then the question."""
    if task_spec(task).prompt != "question":
        raise ValueError(f"a VLM policy answers understanding questions; {task} has no question to answer")
    return [{"type": media_kind_of(task), "media": context}, {"type": "text", "text": question}]
