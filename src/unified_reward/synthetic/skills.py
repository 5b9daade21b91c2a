"""Generic vision-language skills of the synthetic world: what the tiny base VLM is pretrained on.

Every example is one chat turn in the policy's format (images or videos, then text) and the answer a
base model should give. Never judge data: no verdicts, no scores, no comparison of candidates, so that
reward SFT is what teaches judging. The skills:

- `describe`: "Describe the image." -> "The image shows two red circles on the left."
- `describe_two`: "Describe both images." -> "Image 1 shows ... Image 2 shows ..." (reading several media)
- `question`: a question of the world about some attributes -> the correct answer
- `verify`: "Are the objects red?" -> "Yes." / "No."

and, on plain texts (no media), the generic steps a reasoning judge's rationale is made of:

- `extract` (copying stated values out of a sentence): "Text: There are two red circles. Name its count, colour."
  -> "two, red."
- `compare_words` (telling whether two words are the same): "Compare red with blue, circle with circle."
  -> "red is blue no, circle is circle yes."
- `count_yes` (counting the yes in a list): "Count the yes: yes, no, yes." -> "2/3."
- `compare_texts` (reading two texts in one turn, value by value): "Text 1: ... Text 2: ... Compare the colour,
  shape of text 1 with text 2." -> "red is blue no, circle is circle yes. 1/2."
- `compare_numbers`: "Compare the numbers 3 and 4." -> "3 is less than 4."

Media are fresh scenes rendered per example; videos go through the same mp4 encoding and decoding as
the world's shards, so the base sees what the judge will see. Each example also names, per image, the
class of every attribute, for the vision tower's auxiliary heads (`BasePretrainModule`).
"""

from __future__ import annotations

import itertools
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
from unified_reward.synthetic.world import (
    IMAGE_CAPTIONS,
    VIDEO_CAPTIONS,
    answer_text,
    checked,
    comparison,
    questions_for,
    value_word,
)

MEDIA_SKILLS = ("describe", "describe_two", "question", "verify")
TEXT_SKILLS = ("extract", "compare_words", "count_yes", "compare_texts", "compare_numbers")
SKILLS = MEDIA_SKILLS + TEXT_SKILLS
# describing what is seen is what every later stage leans on most; the text skills are short and learned fast
SKILL_WEIGHTS = (0.34, 0.17, 0.145, 0.145, 0.04, 0.04, 0.03, 0.06, 0.03)
_TEXT_WEIGHTS = np.array([w for s, w in zip(SKILLS, SKILL_WEIGHTS, strict=True) if s in TEXT_SKILLS])
TEXT_SKILL_WEIGHTS = _TEXT_WEIGHTS / _TEXT_WEIGHTS.sum()  # the text skills' shares among themselves
ATTRIBUTE_NAMES = {"count": "count", "color": "colour", "shape": "shape", "position": "position", "motion": "motion"}
# the vision tower's auxiliary heads read these attributes of every image and video (`BasePretrainModule`)
PROBE_CLASSES = {kind: {a: len(values_of(a)) for a in attributes_of(kind)} for kind in ("image", "video")}


@dataclass(frozen=True)
class SkillExample:
    skill: str
    kind: str  # image or video
    scenes: tuple[Scene, ...]  # the scenes the media show (none for the text skills)
    media: tuple[Any, ...]  # PIL images or decoded VideoClips, one per scene (none for the text skills)
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


def _sentence(scene: Scene, rng: np.random.Generator, *, full: bool = False) -> tuple[str, tuple[str, ...]]:
    """A text about `scene` as the world writes them (a caption, a description, or an answer: `full` leaves answers
    out) and the attributes it states, in the world's order."""
    form = int(rng.integers(2 if full else 3))
    if form == 0:
        templates = IMAGE_CAPTIONS if scene.kind == "image" else VIDEO_CAPTIONS
        return templates[int(rng.integers(len(templates)))].format(d=describe(scene)), scene.attributes
    if form == 1:
        return f"The {scene.kind} shows {describe(scene)}.", scene.attributes
    options = questions_for(scene.kind)
    asked = options[int(rng.integers(len(options)))][0]
    return answer_text(scene, asked), tuple(a for a in scene.attributes if a in asked)


def _some(attributes: tuple[str, ...], rng: np.random.Generator) -> tuple[str, ...]:
    """A non-empty subset, in the given order."""
    keep = rng.random(len(attributes)) < 0.6
    keep[int(rng.integers(len(attributes)))] = True
    return tuple(a for a, k in zip(attributes, keep, strict=True) if k)


def _names(attributes: tuple[str, ...]) -> str:
    return ", ".join(ATTRIBUTE_NAMES[a] for a in attributes)


def _other_scene(scene: Scene, rng: np.random.Generator) -> Scene:
    """`scene` with each attribute changed with probability 1/2 (so agreeing and disagreeing values are balanced)."""
    changed = tuple(a for a in scene.attributes if rng.random() < 0.5)
    return scene.with_changes(changed, rng)


def make_text_example(rng: np.random.Generator, skill: str, kind: str) -> SkillExample:
    """One example of a text skill (module docstring); `kind` picks the world's image or video attributes."""
    scene = random_scene(kind, rng)
    if skill == "extract":
        text, stated = _sentence(scene, rng)
        asked = _some(stated, rng)
        question = f"Text: {text}\nName its {_names(asked)}."
        answer = ", ".join(value_word(scene, a) for a in asked) + "."
    elif skill == "compare_words":
        asked = _some(scene.attributes, rng)
        other = _other_scene(scene, rng)
        pairs = [(value_word(scene, a), value_word(other, a)) for a in asked]
        question = "Compare " + ", ".join(f"{a} with {b}" for a, b in pairs) + "."
        answer = ", ".join(f"{a} is {b} {'yes' if a == b else 'no'}" for a, b in pairs) + "."
    elif skill == "count_yes":
        said = ["yes" if rng.random() < 0.5 else "no" for _ in range(int(rng.integers(1, 5)))]
        question = f"Count the yes: {', '.join(said)}."
        answer = f"{said.count('yes')}/{len(said)}."
    elif skill == "compare_texts":
        other = _other_scene(scene, rng)
        first, stated = _sentence(scene, rng)
        second, _ = _sentence(other, rng, full=True)
        asked = stated if rng.random() < 0.7 else _some(stated, rng)
        question = f"Text 1: {first}\nText 2: {second}\nCompare the {_names(asked)} of text 1 with text 2."
        answer = checked(scene, other, asked)[0]
    elif skill == "compare_numbers":
        most = int(rng.integers(1, 5))
        a = int(rng.integers(most + 1))
        b = a if rng.random() < 1 / 3 else int(rng.integers(most + 1))
        question, answer = f"Compare the numbers {a} and {b}.", comparison(a, b)
    else:
        raise ValueError(f"unknown text skill {skill!r}; text skills are {TEXT_SKILLS}")
    return SkillExample(skill, kind, (), (), question, answer)


def make_example(rng: np.random.Generator, skill: str, kind: str, *, size: int = 64, frames: int = 8) -> SkillExample:
    if skill in TEXT_SKILLS:
        return make_text_example(rng, skill, kind)
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


@dataclass(frozen=True)
class TextLead:
    """Extra text-skill examples in each of the first `steps` batches, for the language model while the vision
    tower learns alone (`BasePretrainModule.vision_steps`): `compare_words` alone for the first `words_steps`,
    then every text skill by its weight. Telling whether two words are the same is learned within a few hundred
    steps alone, but not in 9,000 steps of the full mixture, where the model swings between answering always
    "yes" and always "no" (experiments/judge_learnability); learned first, the mixture keeps it."""

    steps: int = 0
    batch_size: int = 16
    words_steps: int = 400

    def skill(self, step: int, rng: np.random.Generator) -> str:
        if step < self.words_steps:
            return "compare_words"
        return TEXT_SKILLS[int(rng.choice(len(TEXT_SKILLS), p=TEXT_SKILL_WEIGHTS))]


class SkillStream(IterableDataset):
    """Fresh batches forever (training): `batch_size` examples, skills drawn by SKILL_WEIGHTS, images and videos
    equally often, plus the text lead's examples in the first batches. Seeded by (seed, rank, worker), so workers
    and ranks never repeat each other; the stream makes whole batches because the lead counts training steps
    (the loader takes one batch from each worker in turn, so a worker's k-th batch is step k * workers + id)."""

    def __init__(
        self,
        seed: int,
        *,
        batch_size: int = 16,
        lead: TextLead = TextLead(),
        size: int = 64,
        frames: int = 8,
        rank: int = 0,
    ):
        self.seed, self.batch_size, self.lead = seed, batch_size, lead
        self.size, self.frames, self.rank = size, frames, rank

    def __iter__(self):
        worker = get_worker_info()
        index, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        rng = np.random.default_rng([self.seed, self.rank, index])
        for k in itertools.count():
            step = k * workers + index
            batch = []
            for _ in range(self.batch_size):
                skill = SKILLS[int(rng.choice(len(SKILLS), p=SKILL_WEIGHTS))]
                batch.append(self._example(rng, skill))
            if step < self.lead.steps:
                batch += [self._example(rng, self.lead.skill(step, rng)) for _ in range(self.lead.batch_size)]
            yield batch

    def _example(self, rng: np.random.Generator, skill: str) -> SkillExample:
        kind = ("image", "video")[int(rng.integers(2))]
        return make_example(rng, skill, kind, size=self.size, frames=self.frames)


def held_out_examples(
    seed: int, per_kind: int, *, per_text_skill: int = 0, size: int = 64, frames: int = 8
) -> list[SkillExample]:
    """A fixed evaluation set: `per_kind` descriptions of images and of videos, from scenes of their own seed, and
    `per_text_skill` examples of each text skill (half about images, half about videos)."""
    rng = np.random.default_rng([seed, 10_007])
    described = [
        make_example(rng, "describe", kind, size=size, frames=frames)
        for kind in ("image", "video")
        for _ in range(per_kind)
    ]
    texts = [
        make_text_example(rng, skill, ("image", "video")[i % 2]) for skill in TEXT_SKILLS for i in range(per_text_skill)
    ]
    return described + texts


class SkillCollator:
    """Chat examples -> model inputs (answer tokens labelled), plus the images with their attribute classes for
    the vision tower's auxiliary heads."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, examples: list[SkillExample]) -> dict[str, Any]:
        from unified_reward.encoding.chat import encode_chat, pad_batch

        encoded = [encode_chat(self.processor, e.parts(), e.answer) for e in examples]
        batch = pad_batch(encoded, self.processor)
        batch["examples"] = examples
        # the text-skill examples alone, for the language model while the tower learns alone
        texts = [chat for chat, e in zip(encoded, examples, strict=True) if e.skill in TEXT_SKILLS]
        if texts:
            batch["text"] = pad_batch(texts, self.processor)
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
    """Training reads `SkillStream` forever (train by `trainer.max_steps`), with the text lead (`TextLead`) of
    `lead_*` in its first batches; validation describes a fixed set of
    held-out images and videos and answers held-out examples of each text skill. `collate_fn` is the module's
    (`train.py` passes it)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        image_size: int = 64,
        num_frames: int = 8,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        eval_per_kind: int = 64,
        eval_per_text_skill: int = 0,
        lead_steps: int = 0,
        lead_batch_size: int = 16,
        lead_words_steps: int = 400,
        num_workers: int = 0,
        collate_fn=None,
    ):
        super().__init__()
        self.seed, self.image_size, self.num_frames = seed, image_size, num_frames
        self.batch_size, self.eval_batch_size, self.eval_per_kind = batch_size, eval_batch_size, eval_per_kind
        self.eval_per_text_skill = eval_per_text_skill
        self.lead = TextLead(lead_steps, lead_batch_size, lead_words_steps)
        self.num_workers = num_workers
        self.collate_fn = collate_fn

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        stream = SkillStream(
            self.seed,
            batch_size=self.batch_size,
            lead=self.lead,
            size=self.image_size,
            frames=self.num_frames,
            rank=rank,
        )
        return DataLoader(
            stream,
            batch_size=None,  # the stream makes whole batches (SkillStream)
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        examples = held_out_examples(
            self.seed,
            self.eval_per_kind,
            per_text_skill=self.eval_per_text_skill,
            size=self.image_size,
            frames=self.num_frames,
        )
        return DataLoader(examples, batch_size=self.eval_batch_size, collate_fn=self.collate_fn)
