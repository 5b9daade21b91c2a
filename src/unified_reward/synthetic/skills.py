"""Generic vision-language skills of the synthetic world: what the tiny base VLM is pretrained on.

Every example is one chat turn in the policy's format (images or videos, then text) and the answer a
base model should give. Never judge data: no verdicts, no scores, no comparison of candidates, so that
reward SFT is what teaches judging. The skills:

- `describe`: "Describe the image." -> "The image shows two red circles on the left."
- `describe_two`: "Describe both images." -> "Image 1 shows ... Image 2 shows ..." (reading several media)
- `question`: a question of the world about some attributes -> the correct answer
- `verify`: "Are the objects red?" -> "Yes." / "No."

Media are fresh scenes rendered per example; videos go through the same mp4 encoding and decoding as
the world's shards, so the base sees what the judge will see. Each example also names, per image, the
class of every attribute, for the vision tower's auxiliary heads (`BasePretrainModule`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from unified_reward.data.media import VideoSampling, decode_media, encode_video
from unified_reward.synthetic.render import render_image, render_video
from unified_reward.synthetic.scene import (
    COUNT_WORDS,
    Scene,
    attributes_of,
    describe,
    noun,
    random_scene,
    read_attributes,
    values_of,
)
from unified_reward.synthetic.world import answer_text, questions_for

SKILLS = ("describe", "describe_two", "question", "verify")
SKILL_WEIGHTS = (0.4, 0.2, 0.2, 0.2)  # describing what is seen is what every later stage leans on most
# the vision tower's auxiliary heads read these attributes of every image and video (`BasePretrainModule`)
PROBE_CLASSES = {kind: {a: len(values_of(a)) for a in attributes_of(kind)} for kind in ("image", "video")}


@dataclass(frozen=True)
class SkillExample:
    skill: str
    kind: str  # image or video
    scenes: tuple[Scene, ...]
    media: tuple[Any, ...]  # PIL images or decoded VideoClips, one per scene
    question: str
    answer: str

    def parts(self) -> list[dict[str, Any]]:
        return [{"type": self.kind, "media": m} for m in self.media] + [{"type": "text", "text": self.question}]

    def check(self, text: str) -> dict[str, bool]:
        """Per attribute of a description: whether `text` states the scene's value (descriptions only)."""
        if self.skill != "describe":
            raise ValueError("only single descriptions are checked attribute by attribute")
        stated = read_attributes(text, self.kind)
        scene = self.scenes[0]
        return {a: stated.get(a) == scene.value(a) for a in attributes_of(self.kind)}


def _verify_question(attribute: str, value) -> str:
    if attribute == "count":
        return f"Are there {COUNT_WORDS[value]} objects?"
    if attribute == "color":
        return f"Are the objects {value}?"
    if attribute == "shape":
        return f"Are the objects {noun(value, 2)}?"
    if attribute == "position":
        return f"Are the objects {'in the middle' if value == 'middle' else 'on the ' + value}?"
    return f"Do the objects move {value}?"


def make_example(rng: np.random.Generator, skill: str, kind: str, *, size: int = 64, frames: int = 8) -> SkillExample:
    count = 2 if skill == "describe_two" else 1
    scenes = tuple(random_scene(kind, rng) for _ in range(count))
    media = tuple(_render(s, rng, size, frames) for s in scenes)
    scene = scenes[0]
    if skill == "describe":
        question, answer = f"Describe the {kind}.", f"The {kind} shows {describe(scene)}."
    elif skill == "describe_two":
        question = f"Describe both {kind}s."
        answer = " ".join(f"{kind.title()} {i + 1} shows {describe(s)}." for i, s in enumerate(scenes))
    elif skill == "question":
        options = questions_for(kind)
        asked, question = options[int(rng.integers(len(options)))]
        answer = answer_text(scene, asked)
    elif skill == "verify":
        attributes = attributes_of(kind)
        attribute = attributes[int(rng.integers(len(attributes)))]
        values = values_of(attribute)
        value = scene.value(attribute) if rng.random() < 0.5 else values[int(rng.integers(len(values)))]
        question = _verify_question(attribute, value)
        answer = "Yes." if value == scene.value(attribute) else "No."
    else:
        raise ValueError(f"unknown skill {skill!r}; skills are {SKILLS}")
    return SkillExample(skill, kind, scenes, media, question, answer)


def _render(scene: Scene, rng: np.random.Generator, size: int, frames: int):
    if scene.kind == "image":
        return Image.fromarray(render_image(scene, rng, size))
    # through mp4 and back, as the world's shards are read
    encoded = encode_video(render_video(scene, rng, size, frames), fps=8.0)
    return decode_media(encoded, VideoSampling(num_frames=frames))


class SkillStream(IterableDataset):
    """Fresh examples forever (training), skills drawn by SKILL_WEIGHTS, images and videos equally often; seeded
    by (seed, rank, worker), so workers and ranks never repeat each other."""

    def __init__(self, seed: int, *, size: int = 64, frames: int = 8, rank: int = 0):
        self.seed, self.size, self.frames, self.rank = seed, size, frames, rank

    def __iter__(self):
        worker = get_worker_info()
        rng = np.random.default_rng([self.seed, self.rank, worker.id if worker else 0])
        while True:
            skill = SKILLS[int(rng.choice(len(SKILLS), p=SKILL_WEIGHTS))]
            kind = ("image", "video")[int(rng.integers(2))]
            yield make_example(rng, skill, kind, size=self.size, frames=self.frames)


def held_out_examples(seed: int, per_kind: int, *, size: int = 64, frames: int = 8) -> list[SkillExample]:
    """A fixed evaluation set: `per_kind` descriptions of images and of videos, from scenes of their own seed."""
    rng = np.random.default_rng([seed, 10_007])
    return [
        make_example(rng, "describe", kind, size=size, frames=frames)
        for kind in ("image", "video")
        for _ in range(per_kind)
    ]


class SkillCollator:
    """Chat examples -> model inputs (answer tokens labelled), plus the images with their attribute classes for
    the vision tower's auxiliary heads."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, examples: list[SkillExample]) -> dict[str, Any]:
        from unified_reward.encoding.chat import encode_chat, pad_batch

        batch = pad_batch([encode_chat(self.processor, e.parts(), e.answer) for e in examples], self.processor)
        batch["examples"] = examples
        for kind in ("image", "video"):
            media = [(m, s) for e in examples if e.kind == kind for m, s in zip(e.media, e.scenes, strict=True)]
            if media:
                batch[f"probe_{kind}"] = self._probe(kind, media)
        return batch

    def _probe(self, kind: str, media: list) -> dict[str, Any]:
        """The tower's inputs for these images or videos, and each one's attribute classes."""
        from unified_reward.encoding.chat import image_patches, video_patches

        encode = image_patches if kind == "image" else video_patches
        patches, grids = zip(*(encode(self.processor, m) for m, _ in media), strict=True)
        targets = {a: torch.tensor([values_of(a).index(s.value(a)) for _, s in media]) for a in PROBE_CLASSES[kind]}
        return {"pixel_values": torch.cat(patches), "grid_thw": torch.tensor(grids), "targets": targets}


def tokens_per_image(processor, size: int = 64) -> int:
    """Visual tokens one `size` px image takes after the processor's resizing (Qwen: merged 2x2 patches)."""
    out = processor.image_processor(images=[Image.new("RGB", (size, size))], return_tensors="pt")
    merge = getattr(processor.image_processor, "merge_size", 1) ** 2
    return int(math.prod(out["image_grid_thw"][0].tolist())) // merge


class SkillDataModule(L.LightningDataModule):
    """Training reads `SkillStream` forever (train by `trainer.max_steps`); validation describes a fixed set of
    held-out images and videos. `collate_fn` is the module's (`train.py` passes it)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        image_size: int = 64,
        num_frames: int = 8,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        eval_per_kind: int = 64,
        num_workers: int = 0,
        collate_fn=None,
    ):
        super().__init__()
        self.seed, self.image_size, self.num_frames = seed, image_size, num_frames
        self.batch_size, self.eval_batch_size, self.eval_per_kind = batch_size, eval_batch_size, eval_per_kind
        self.num_workers = num_workers
        self.collate_fn = collate_fn

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        stream = SkillStream(self.seed, size=self.image_size, frames=self.num_frames, rank=rank)
        return DataLoader(
            stream,
            batch_size=self.batch_size,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        examples = held_out_examples(self.seed, self.eval_per_kind, size=self.image_size, frames=self.num_frames)
        return DataLoader(examples, batch_size=self.eval_batch_size, collate_fn=self.collate_fn)
