"""The synthetic world: records for its tasks x 2 modes with ground-truth labels, and their cache.

Every label comes from how many of the attributes asked for (by a caption, a question, or an edit
instruction and its source image) a candidate gets right, so it depends on the pixels: the texts
alone carry no signal (the better candidate is first or second at random; wrong values are drawn
uniformly). Deterministic from a seed: record i of a (split, stream) has its own generator seeded by
(seed, split, stream, i); a task's records do not depend on which other tasks the world holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from unified_reward.data.media import encode_image, encode_video
from unified_reward.data.schema import MODES, PointLabel, PreferenceRecord, stream_name
from unified_reward.data.shards import ShardSetWriter, build_folder_once
from unified_reward.data.tasks import PAPER_TASKS, TASKS, task_spec
from unified_reward.synthetic.edits import EDITABLE, instruction
from unified_reward.synthetic.generated_look import generated_look
from unified_reward.synthetic.oracle import generated_sample_media, perceive, score_reading
from unified_reward.synthetic.render import render_image, render_video
from unified_reward.synthetic.scene import (
    COUNT_WORDS,
    Scene,
    attributes_of,
    describe,
    describe_reading,
    noun,
    random_scene,
    reading_word,
    where_phrase,
)

log = logging.getLogger(__name__)

WORLD_VERSION = 9  # bump when generation changes, so caches of the old world are not reused
SOURCE = "synthetic"
SPLITS = ("train", "val", "test")

IMAGE_CAPTIONS = ("{d}", "a picture of {d}", "an image of {d}", "{d} on a dark background")
VIDEO_CAPTIONS = ("{d}", "a video of {d}", "a clip of {d}", "an animation of {d}")
# Each question names the attributes it asks about with the oracle's keywords (oracle.QUESTION_KEYWORDS).
QUESTIONS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("color",): ("What colour are the objects?", "Which colour do the objects have?"),
    ("shape",): ("What shape are the objects?", "Which shape is shown?"),
    ("count",): ("How many objects are there?", "How many objects can you see?"),
    ("position",): ("Where are the objects?", "Where in the picture are the objects?"),
    ("motion",): ("In which direction do the objects move?", "Which way are the objects going?"),
    ("color", "shape"): ("What colour and shape are the objects?",),
    ("count", "color", "shape"): ("How many objects are there, and what colour and shape are they?",),
    ("count", "color", "shape", "position"): (
        "Describe the objects: how many, what colour, what shape, and where they are.",
    ),
    ("count", "color", "shape", "motion"): (
        "Describe the objects: how many, what colour, what shape, and which way they move.",
    ),
}


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    image_size: int = 64
    num_frames: int = 8
    video_fps: float = 8.0
    tie_fraction: float = 0.1
    max_changed: int = 2  # a generation candidate misses at most this many attributes
    generated_look: float = 0.0  # share of generation records whose candidates look generated (generated_look.py)
    records_per_stream: dict[str, int] = field(default_factory=lambda: {"train": 1500, "val": 100, "test": 200})
    shard_size: int = 250
    tasks: tuple[str, ...] = PAPER_TASKS  # the streams written; each task's records are the same in any world

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))  # a list from a config
        for task in self.tasks:
            task_spec(task)

    def fingerprint(self) -> str:
        fields = asdict(self)
        if self.tasks == PAPER_TASKS:  # the worlds made before editing existed: same records, same cache
            del fields["tasks"]
        payload = json.dumps({"version": WORLD_VERSION, **fields}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]


def questions_for(kind: str) -> list[tuple[tuple[str, ...], str]]:
    allowed = set(attributes_of(kind))
    return [(asked, q) for asked, texts in QUESTIONS.items() if set(asked) <= allowed for q in texts]


def answer_text(scene: Scene, asked: tuple[str, ...]) -> str:
    """An answer stating the scene's values of the asked attributes; the plural never leaks the
    count unless the count is asked."""
    adjective = f"{scene.color} " if "color" in asked else ""
    plural_count = scene.count if "count" in asked else 2
    thing = noun(scene.shape, plural_count) if "shape" in asked else ("object" if plural_count == 1 else "objects")
    place = f" {where_phrase(scene)}" if {"position", "motion"} & set(asked) else ""
    if "count" in asked:
        verb = "is" if scene.count == 1 else "are"
        return f"There {verb} {COUNT_WORDS[scene.count]} {adjective}{thing}{place}."
    if not adjective and "shape" not in asked:
        return f"They are{place}."
    return f"They are {adjective}{thing}{place}."


def _score(missed: int, total: int) -> float:
    return 1.0 + 4.0 * (total - missed) / total


def _misses(rng: np.random.Generator, mode: str, most: int, tie_fraction: float) -> tuple[int, ...]:
    """How many attributes each candidate misses: a pair's two (`_pair_misses`), or a point's one, in 0..most."""
    return _pair_misses(rng, most, tie_fraction) if mode == "pair" else (int(rng.integers(most + 1)),)


def _pair_misses(rng: np.random.Generator, most: int, tie_fraction: float) -> tuple[int, int]:
    """How many attributes each of two candidates misses: equal (a tie) or distinct, random order."""
    if rng.random() < tie_fraction:
        k = int(rng.integers(most + 1))
        return k, k
    a, b = rng.choice(most + 1, size=2, replace=False)
    return int(a), int(b)


def _label(scores: tuple[float, ...]) -> str:
    return "tie" if scores[0] == scores[1] else ("first" if scores[0] > scores[1] else "second")


def _changed(scene: Scene, among: tuple[str, ...], k: int, rng: np.random.Generator) -> Scene:
    picked = tuple(among[i] for i in sorted(rng.choice(len(among), size=k, replace=False)))
    return scene.with_changes(picked, rng)


def _scene_meta(scene: Scene) -> dict:
    return {k: v for k, v in asdict(scene).items() if v is not None}


@dataclass(frozen=True)
class RecordPlan:
    """Everything about a record but its pixels: what to render and the texts and labels."""

    task: str
    mode: str
    prompt: str
    scene: Scene
    attributes: tuple[str, ...]  # judged attributes: all for generation, the asked ones for understanding
    variants: tuple[Scene, ...]  # what each candidate shows (generation) or states (understanding)
    scores: tuple[float, ...]
    source: Scene | None = None  # editing: the source image's scene (`scene` is what the instruction asks for)

    @property
    def label(self) -> str | PointLabel:
        return _label(self.scores) if self.mode == "pair" else PointLabel(self.scores[0], 1.0, 5.0)

    @property
    def answers(self) -> tuple[str, ...]:
        return tuple(answer_text(v, self.attributes) for v in self.variants)


def plan_record(config: WorldConfig, split: str, task: str, mode: str, index: int) -> RecordPlan:
    """The content of record `index`; its rendering draws from a separate generator, so plans are cheap.

    Understanding pairs have no ties (as in the official data) and two different answers; each
    answer's wrong values are drawn uniformly, which makes the two texts alone uninformative about
    which one is better (the count of truths at distance (k1, k2) from the pair is symmetric).
    """
    rng = np.random.default_rng([config.seed, SPLITS.index(split), TASKS.index(task), MODES.index(mode), index])
    spec = task_spec(task)
    if spec.prompt == "instruction":
        return _plan_edit(config, spec.name, mode, rng)
    kind = spec.media
    scene = random_scene(kind, rng)
    if spec.prompt == "caption":
        templates = IMAGE_CAPTIONS if kind == "image" else VIDEO_CAPTIONS
        prompt = templates[int(rng.integers(len(templates)))].format(d=describe(scene))
        attributes, most, tie_fraction = scene.attributes, config.max_changed, config.tie_fraction
    else:
        options = questions_for(kind)
        attributes, prompt = options[int(rng.integers(len(options)))]
        most, tie_fraction = len(attributes), 0.0
    misses = _misses(rng, mode, most, tie_fraction)
    variants = tuple(_changed(scene, attributes, k, rng) for k in misses)
    scores = tuple(_score(k, len(attributes)) for k in misses)
    return RecordPlan(task, mode, prompt, scene, attributes, variants, scores)


def _plan_edit(config: WorldConfig, task: str, mode: str, rng: np.random.Generator) -> RecordPlan:
    """An edit: a source scene, one attribute changed by the instruction (the target), and candidates that miss some
    of the target's attributes: the instructed change not made (left as in the source, half of the times it is
    missed) or made wrongly, or another attribute not kept. Ties as in generation."""
    source = random_scene("image", rng)
    edited = EDITABLE[int(rng.integers(len(EDITABLE)))]
    target = source.with_changes((edited,), rng)
    prompt = instruction(source, target, edited, rng)
    attributes = target.attributes
    misses = _misses(rng, mode, config.max_changed, config.tie_fraction)
    variants = []
    for k in misses:
        variant = _changed(target, attributes, k, rng)
        if variant.value(edited) != target.value(edited) and rng.random() < 0.5:
            variant = dataclasses.replace(variant, **{edited: source.value(edited)})  # the edit not made
        variants.append(variant)
    scores = tuple(_score(k, len(attributes)) for k in misses)
    return RecordPlan(task, mode, prompt, target, attributes, tuple(variants), scores, source=source)


Reading = dict[str, object]  # what the oracle read from a generated sample (oracle.perceive)


def _value(shown: Scene | Reading, attribute: str):
    return shown.get(attribute) if isinstance(shown, dict) else shown.value(attribute)


def value_word(shown: Scene | Reading, attribute: str) -> str:
    """The word a rationale uses for one attribute value: `two`, `red`, `circle`, `left`, `up` (`no` where a
    generated sample shows none, `many` for more than three objects)."""
    return reading_word(attribute, _value(shown, attribute))


def checked(stated: Scene | Reading, truth: Scene, attributes: tuple[str, ...]) -> tuple[str, int]:
    """`red is yellow no, circle is circle yes. 1/2.` and its tally: per attribute, the stated value, the true value
    next to it, whether they agree; then how many agree. Writing both values side by side turns each check into
    comparing two neighbouring words. (The base learns this on plain texts: `skills.compare_texts`.)"""
    hits = [_value(stated, a) == truth.value(a) for a in attributes]
    items = ", ".join(
        f"{value_word(stated, a)} is {value_word(truth, a)} {'yes' if hit else 'no'}"
        for a, hit in zip(attributes, hits, strict=True)
    )
    return f"{items}. {sum(hits)}/{len(attributes)}.", sum(hits)


def comparison(first: int, second: int) -> str:
    """`3 is less than 4.`, `4 is more than 3.`, `3 is the same as 3.`: two tallies side by side and how they relate,
    the step from which a pair's verdict follows (the base learns it on plain numbers: `skills.compare_numbers`)."""
    relation = "less than" if first < second else "more than" if first > second else "the same as"
    return f"{first} is {relation} {second}."


def reasoning(plan: RecordPlan, shown: tuple[Reading, ...] | None = None) -> str:
    """The judge's reasoning before its verdict, one short step per line: for generation, what the caption asks for;
    what each image or video shows; each judged attribute of each candidate checked against the caption (generation)
    or against what the image or video shows (understanding), with the tally; for a pair, the two tallies compared.
    The verdict follows from that comparison; the collator appends it in the official form (`Image 1 is better.`,
    `Final Score: 4`) when `module.train_rationale=true`.

        The caption asks for two red circles on the left.
        Image 1 shows two red squares on the left.
        Image 2 shows two red circles on the left.
        Image 1: two is two yes, red is red yes, square is circle no, left is left yes. 3/4.
        Image 2: two is two yes, red is red yes, circle is circle yes, left is left yes. 4/4.
        3 is less than 4.

        The image shows two red circles on the left.
        Answer 1: blue is red no, circle is circle yes. 1/2.
        Answer 2: red is red yes, circle is circle yes. 2/2.
        1 is less than 2.

    Editing restates what the source image shows and what the edit asks for (the source with the instructed change),
    then checks each edited image against that as generation checks against the caption:

        The source image shows two red circles on the left.
        The edit asks for two blue circles on the left.
        Image 1 shows two red circles on the left.
        ...

    `shown`: what each generation candidate shows, when the oracle read it from degraded pixels (`generated_look`)
    rather than the planned variants (`Image 1 shows no objects.`, `Image 2: no is two no, ...`).
    """
    kind = plan.scene.kind
    pair = len(plan.variants) == 2
    candidates = shown if shown is not None else plan.variants
    shows = [describe_reading(c, kind) if isinstance(c, dict) else describe(c) for c in candidates]
    # generation: the caption's values restated first, so that each check copies its true value from a line nearby
    # (as understanding's checks copy from what the image shows), not from the prompt behind every visual token
    role = task_spec(plan.task).prompt
    if role == "instruction":
        asked = [f"The source image shows {describe(plan.source)}.", f"The edit asks for {describe(plan.scene)}."]
    else:
        asked = [f"The caption asks for {describe(plan.scene)}."]
    if role != "question" and pair:
        names = [f"{kind.title()} {i + 1}" for i in range(2)]
        seen = asked + [f"{name} shows {text}." for name, text in zip(names, shows, strict=True)]
    elif role != "question":
        names = [kind.title()]
        seen = asked + [f"The {'edited ' if role == 'instruction' else ''}{kind} shows {shows[0]}."]
    else:
        names = ["Answer 1", "Answer 2"] if pair else ["Answer"]
        seen = [f"The {kind} shows {describe(plan.scene)}."]
    checks = [checked(v, plan.scene, plan.attributes) for v in candidates]
    lines = seen + [f"{name}: {text}" for name, (text, _) in zip(names, checks, strict=True)]
    if pair:
        lines.append(comparison(checks[0][1], checks[1][1]))
    return "\n".join(lines)


def _record_rngs(config: WorldConfig, split: str, task: str, mode: str, index: int) -> tuple:
    """The generators of record `index` beyond its plan's: rendering, and the generated look (drawn apart, so that a
    world without it renders exactly the same records)."""
    key = [config.seed, SPLITS.index(split), TASKS.index(task), MODES.index(mode), index]
    return np.random.default_rng([*key, 1]), np.random.default_rng([*key, 2])


def make_record(config: WorldConfig, split: str, task: str, mode: str, index: int) -> PreferenceRecord:
    """Record `index` of a stream. A share `config.generated_look` of the generation records show their candidates
    as a tiny generator might have sampled them (`generated_look`: 32 px, blurred, off-colour, objects missing or
    half formed); their scores, label and rationale are what the oracle reads from those pixels."""
    plan = plan_record(config, split, task, mode, index)
    rng, look = _record_rngs(config, split, task, mode, index)

    def render(scene: Scene) -> np.ndarray:
        if scene.kind == "image":
            return render_image(scene, rng, config.image_size)
        return render_video(scene, rng, config.image_size, config.num_frames)

    def encoded(pixels: np.ndarray, lossless: bool = False):
        if pixels.ndim == 3:
            return encode_image(pixels)
        return encode_video(pixels, fps=config.video_fps, lossless=lossless)

    spec = task_spec(task)
    meta = {"scene": _scene_meta(plan.scene), "asked": list(plan.attributes)}
    meta["candidate_scenes"] = [_scene_meta(v) for v in plan.variants]
    if plan.source is not None:
        meta["source_scene"] = _scene_meta(plan.source)
    if spec.prompt == "caption" and look.random() < config.generated_look:
        samples = [generated_look(render(v), look) for v in plan.variants]
        media = [generated_sample_media(s) for s in samples]
        readings = tuple(perceive(m) for m in media)
        scores = tuple(score_reading(plan.prompt, r, plan.scene.kind).score for r in readings)
        plan = dataclasses.replace(plan, scores=scores)
        # stored exactly: the oracle read these pixels (H.264 at crf 18 moves blurry samples across its thresholds)
        candidates = tuple(encoded(s, lossless=True) for s in samples)
        rationale = reasoning(plan, readings)
        meta |= {"generated_look": True, "candidate_readings": [dict(r) for r in readings]}
    else:
        candidates = tuple(encoded(render(v)) for v in plan.variants) if spec.media_candidates else plan.answers
        rationale = reasoning(plan)
    context = encoded(render(plan.source if plan.source is not None else plan.scene)) if spec.context else None
    return PreferenceRecord(
        id=f"{SOURCE}-{split}-{stream_name(task, mode)}-{index:06d}",
        task=task,
        mode=mode,
        prompt=plan.prompt,
        candidates=candidates,
        label=plan.label,
        source=SOURCE,
        context=context,
        rationale=rationale,
        meta=meta | {"scores": list(plan.scores)},
    )


def _make_chunk(args: tuple[WorldConfig, str, str, str, int, int]) -> list[PreferenceRecord]:
    config, split, task, mode, start, stop = args
    return [make_record(config, split, task, mode, i) for i in range(start, stop)]


def generate_world(config: WorldConfig, folder: str | os.PathLike, workers: int | None = None) -> None:
    """Write the world's shards: `folder/<split>/<task>_<mode>-NNNNNN.tar` and each split's manifest."""
    folder = Path(folder)
    workers = workers or min(os.cpu_count() or 1, 8)
    chunk = 100
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for split in SPLITS:
            total = config.records_per_stream.get(split, 0)
            jobs = [
                (config, split, task, mode, start, min(start + chunk, total))
                for task in config.tasks
                for mode in MODES
                for start in range(0, total, chunk)
            ]
            with ShardSetWriter(folder / split, max_count=config.shard_size) as writer:
                for records in pool.map(_make_chunk, jobs):
                    writer.write_all(records)


def ensure_world(config: WorldConfig, cache_dir: str | os.PathLike, workers: int | None = None) -> Path:
    """The folder of the world for `config`, generated on first use and reused afterwards."""
    folder = Path(cache_dir) / f"world-{config.fingerprint()}"

    def build(staging: Path) -> None:
        log.info("generating the synthetic world into %s", folder)
        generate_world(config, staging, workers)
        (staging / "config.json").write_text(json.dumps({"version": WORLD_VERSION, **asdict(config)}, indent=2))

    started = time.perf_counter()
    if build_folder_once(folder, "config.json", build):
        log.info("synthetic world ready in %.1f s", time.perf_counter() - started)
    else:
        log.info("synthetic world: using the one built before in %s", folder)
    return folder
