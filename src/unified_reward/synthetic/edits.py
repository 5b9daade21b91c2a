"""Edit instructions of the synthetic world: one attribute of an image scene changed, in words, and read back.

    make the circles blue          turn the red squares into triangles
    move the circle to the right   add one triangle    remove two squares

An instruction names the attribute and its new value only; what else the edited image must show (and keep) is
read from the source image. `apply_instruction` is the oracle's reading of one: the source's values with the
instructed one changed.
"""

from __future__ import annotations

import re

import numpy as np

from unified_reward.synthetic.scene import COLORS, COUNT_WORDS, POSITIONS, SHAPES, Scene, noun

EDITABLE = ("count", "color", "shape", "position")
_PLACES = {"left": "to the left", "middle": "to the middle", "right": "to the right"}


def _things(scene: Scene) -> str:
    return noun(scene.shape, scene.count)


def instruction(source: Scene, target: Scene, attribute: str, rng: np.random.Generator) -> str:
    """The words asking for `target` from `source`, which differ in `attribute` only."""
    things = _things(source)
    if attribute == "color":
        options = (f"make the {things} {target.color}", f"change the colour of the {things} to {target.color}")
    elif attribute == "shape":
        options = (
            f"turn the {things} into {noun(target.shape, source.count)}",
            f"make the {things} {noun(target.shape, source.count)}",
        )
    elif attribute == "position":
        options = (f"move the {things} {_PLACES[target.position]}", f"put the {things} {_PLACES[target.position]}")
    elif attribute == "count":
        difference = target.count - source.count
        verb = "add" if difference > 0 else "remove"
        options = (f"{verb} {COUNT_WORDS[abs(difference)]} {noun(source.shape, abs(difference))}",)
    else:
        raise ValueError(f"an image edit changes one of {EDITABLE}, not {attribute!r}")
    return options[int(rng.integers(len(options)))]


_WORDS = re.compile(r"[a-z]+")
_NUMBERS = {word: number for number, word in COUNT_WORDS.items()}


def instructed_change(text: str) -> tuple[str, object]:
    """(attribute, new value) of an instruction; a count's value is the signed number of objects added."""
    words = _WORDS.findall(text.lower())
    if words and words[0] in ("add", "remove") and len(words) > 1 and words[1] in _NUMBERS:
        return "count", _NUMBERS[words[1]] * (1 if words[0] == "add" else -1)
    if "to" in words and words[-1] in POSITIONS and words[0] in ("move", "put"):
        return "position", words[-1]
    last = words[-1] if words else ""
    shape = last[:-1] if last.endswith("s") and last[:-1] in SHAPES else last
    if shape in SHAPES and words[0] in ("turn", "make"):
        return "shape", shape
    if words and words[-1] in COLORS:
        return "color", words[-1]
    raise ValueError(f"not an edit instruction of the synthetic world: {text!r}")


def apply_instruction(text: str, source: dict[str, object]) -> dict[str, object]:
    """What the edited image should show: the values read from the source image with the instructed change made."""
    attribute, value = instructed_change(text)
    target = dict(source)
    if attribute == "count":
        count = source.get("count")
        target["count"] = count + value if isinstance(count, int) and count else None
    else:
        target[attribute] = value
    return target
