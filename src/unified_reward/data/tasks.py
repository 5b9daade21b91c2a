"""The task table: what the judge is shown for each task and what it judges. Every other module reads a task's facts
from here (never from its name).

A judge-only task is its entry here, its default templates (`prompts/templates.py`), its world records
(`synthetic/world.py`) and its configs; README's "Adding a task" says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["image", "video"]
PromptRole = Literal["caption", "question", "instruction"]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    media: MediaKind  # the kind of every image or video the task shows
    prompt: PromptRole  # what the prompt is: a generation caption, a question about the context, an edit instruction
    context: bool  # a media context beside the prompt: the image or video asked about, the source image edited
    media_candidates: bool  # the candidates are media (generated or edited), else answer texts
    ties: bool  # pair labels and verdicts may be ties (the official understanding data has none)
    criteria: str  # what makes a candidate better: the oracle's labels follow it, the templates ask for it
    modes: tuple[str, ...] = ("pair", "point")

    @property
    def candidate_unit(self) -> str:
        """The word a verdict names a candidate by: `Image 1 is better.`, `Answer 2 is better.`."""
        return self.media if self.media_candidates else "answer"


TASK_TABLE: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "image_generation",
            media="image",
            prompt="caption",
            context=False,
            media_candidates=True,
            ties=True,
            criteria="the caption's objects, count, colour and position shown",
        ),
        TaskSpec(
            "image_understanding",
            media="image",
            prompt="question",
            context=True,
            media_candidates=False,
            ties=False,
            criteria="the asked attributes stated as the image shows them",
        ),
        TaskSpec(
            "video_generation",
            media="video",
            prompt="caption",
            context=False,
            media_candidates=True,
            ties=True,
            criteria="the caption's objects, count, colour and motion shown",
        ),
        TaskSpec(
            "video_understanding",
            media="video",
            prompt="question",
            context=True,
            media_candidates=False,
            ties=False,
            criteria="the asked attributes stated as the video shows them",
        ),
        TaskSpec(
            "image_editing",
            media="image",
            prompt="instruction",
            context=True,
            media_candidates=True,
            ties=True,
            criteria="the instructed change made and everything else of the source image kept",
        ),
    )
}
TASKS: tuple[str, ...] = tuple(TASK_TABLE)
# The paper's four tasks: the main job's judge, the world's default streams, the shipped base's vocabulary.
PAPER_TASKS: tuple[str, ...] = ("image_generation", "image_understanding", "video_generation", "video_understanding")


def task_spec(task: str) -> TaskSpec:
    try:
        return TASK_TABLE[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; tasks are {list(TASKS)}") from None


def media_kind_of(task: str) -> MediaKind:
    return task_spec(task).media


def judges_media(task: str) -> bool:
    """The candidates are images or videos (generation, editing), not answer texts."""
    return task_spec(task).media_candidates


def has_context(task: str) -> bool:
    return task_spec(task).context
