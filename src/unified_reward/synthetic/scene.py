"""The synthetic world's vocabulary: scenes of identical coloured shapes, and their words.

An image scene has colour, shape, count and position (left / middle / right third); a video
scene has colour, shape, count and motion (the direction all objects move in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 45, 45),
    "green": (45, 185, 70),
    "blue": (55, 90, 235),
    "yellow": (235, 215, 50),
}
SHAPES = ("circle", "square", "triangle")
COUNTS = (1, 2, 3)
POSITIONS = ("left", "middle", "right")
MOTIONS = ("left", "right", "up", "down")
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
IMAGE_ATTRIBUTES = ("count", "color", "shape", "position")
VIDEO_ATTRIBUTES = ("count", "color", "shape", "motion")

SceneKind = Literal["image", "video"]


def attributes_of(kind: SceneKind) -> tuple[str, ...]:
    return IMAGE_ATTRIBUTES if kind == "image" else VIDEO_ATTRIBUTES


def values_of(attribute: str) -> tuple:
    return {
        "count": COUNTS,
        "color": tuple(COLORS),
        "shape": SHAPES,
        "position": POSITIONS,
        "motion": MOTIONS,
    }[attribute]


@dataclass(frozen=True)
class Scene:
    kind: SceneKind
    count: int
    color: str
    shape: str
    position: str | None = None
    motion: str | None = None

    def __post_init__(self):
        if self.count not in COUNTS or self.color not in COLORS or self.shape not in SHAPES:
            raise ValueError(f"invalid scene {self}")
        if self.kind == "image" and self.position not in POSITIONS:
            raise ValueError(f"an image scene needs a position in {POSITIONS}, got {self.position!r}")
        if self.kind == "video" and self.motion not in MOTIONS:
            raise ValueError(f"a video scene needs a motion in {MOTIONS}, got {self.motion!r}")

    @property
    def attributes(self) -> tuple[str, ...]:
        return attributes_of(self.kind)

    def value(self, attribute: str):
        return getattr(self, attribute)

    def with_changes(self, attributes: tuple[str, ...], rng: np.random.Generator) -> Scene:
        """This scene with each named attribute set to a different value, chosen uniformly."""
        changes = {}
        for attribute in attributes:
            others = [v for v in values_of(attribute) if v != self.value(attribute)]
            changes[attribute] = others[int(rng.integers(len(others)))]
        return replace(self, **changes)


def random_scene(kind: SceneKind, rng: np.random.Generator) -> Scene:
    where = (
        {"position": POSITIONS[int(rng.integers(3))]} if kind == "image" else {"motion": MOTIONS[int(rng.integers(4))]}
    )
    return Scene(
        kind=kind,
        count=COUNTS[int(rng.integers(3))],
        color=tuple(COLORS)[int(rng.integers(4))],
        shape=SHAPES[int(rng.integers(3))],
        **where,
    )


def noun(shape: str, count: int) -> str:
    return shape if count == 1 else shape + "s"


def where_phrase(scene: Scene) -> str:
    return _place_phrase(scene.kind, scene.position if scene.kind == "image" else scene.motion)


def _place_phrase(kind: SceneKind, where: str) -> str:
    if kind == "image":
        return {"left": "on the left", "middle": "in the middle", "right": "on the right"}[where]
    return f"moving {where}"


def describe(scene: Scene) -> str:
    """`two red circles on the left`, `one blue square moving up`."""
    return f"{COUNT_WORDS[scene.count]} {scene.color} {noun(scene.shape, scene.count)} {where_phrase(scene)}"


# What the oracle may read from a generated sample beyond a scene's values: no objects or more than three, no clear
# colour, shape or place (None), objects that do not move ("still"). The words are ones the tiny base's tokenizer
# holds whole: `no` for nothing read (and for no motion), `many` for more than three.
NOTHING_READ = "no"


def reading_word(attribute: str, value) -> str:
    """One word for one value the oracle read: `two`, `red`, `left`; `no` where it read none, `many` for > 3."""
    if value is None or value == 0 or value == "still":
        return NOTHING_READ
    if attribute == "count":
        return COUNT_WORDS.get(value, "many")
    return str(value)


def describe_reading(seen: dict[str, object], kind: SceneKind) -> str:
    """What a possibly malformed image or video shows, in the words of `describe` where its values are a scene's:
    `two red circles on the left`, `three objects`, `many blue squares not moving`, `no objects`. A value the oracle
    could not read is left out, so the text states only what it read (`read_attributes` gives it back)."""
    count = seen.get("count")
    if not count:
        return "no objects"
    colour, shape = seen.get("color"), seen.get("shape")
    words = [reading_word("count", count)] + ([colour] if colour else [])
    words.append(noun(shape, count) if shape else ("object" if count == 1 else "objects"))
    where = seen.get("position") if kind == "image" else seen.get("motion")
    if where == "still":
        words.append("not moving")
    elif where is not None:
        words.append(_place_phrase(kind, where))
    return " ".join(words)


_WORDS = re.compile(r"[a-z0-9]+")
_COUNT_TOKENS = {"one": 1, "two": 2, "three": 3, "1": 1, "2": 2, "3": 3, "single": 1}
_SHAPE_TOKENS = {s: s for s in SHAPES} | {s + "s": s for s in SHAPES}
_POSITION_TOKENS = {
    "left": "left",
    "middle": "middle",
    "center": "middle",
    "centre": "middle",
    "right": "right",
}
_MOTION_TOKENS = {
    "left": "left",
    "right": "right",
    "up": "up",
    "upward": "up",
    "upwards": "up",
    "down": "down",
    "downward": "down",
    "downwards": "down",
}


def read_attributes(text: str, kind: SceneKind) -> dict[str, object]:
    """The attribute values a caption or an answer states; an attribute stated with two different
    values, or not at all, is left out (so it counts as not satisfied)."""
    tables = {
        "count": _COUNT_TOKENS,
        "color": {c: c for c in COLORS},
        "shape": _SHAPE_TOKENS,
        "position" if kind == "image" else "motion": _POSITION_TOKENS if kind == "image" else _MOTION_TOKENS,
    }
    tokens = _WORDS.findall(text.lower())
    stated: dict[str, object] = {}
    for attribute, table in tables.items():
        found = {table[t] for t in tokens if t in table}
        if len(found) == 1:
            stated[attribute] = found.pop()
    return stated
