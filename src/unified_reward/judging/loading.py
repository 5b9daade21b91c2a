"""The judges besides the learned one, behind the same interface (`queries.JudgeReadings`), and `load_judge`,
which gives any of them from one config value: `random` (seeded coin flips and uniform scores: the floor), a
name the config maps to a judge class (`named_judges`: `oracle`, the synthetic world's pixel-reading oracle, the
ceiling), a scalar-head reward model (`scalar`), or a judge export / official checkpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from unified_reward.judging.generative import Judge
from unified_reward.judging.queries import JudgeQuery, JudgeReadings, Judgment


class RandomJudge(JudgeReadings):
    """A fair coin for every pair (first or second, never a tie) and a uniform score on the asked scale for
    every point, drawn from its own generator: the same seed and the same queries give the same answers."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def judge(self, queries: Sequence[JudgeQuery], *, with_text: bool = False) -> list[Judgment]:
        judgments = []
        for query in queries:
            if query.mode == "pair":
                first = bool(torch.rand((), generator=self.generator) < 0.5)
                probabilities = {"first": float(first), "second": float(not first), "tie": 0.0}
                judgments.append(Judgment(probabilities))
            else:
                low, high = query.scale
                score = low + (high - low) * float(torch.rand((), generator=self.generator))
                judgments.append(Judgment({score: 1.0}, scale=query.scale))
        return judgments


def load_judge(
    spec: str,
    *,
    seed: int = 0,
    family: str = "qwen2_vl",
    templates: str | None = None,
    named: Mapping[str, str] | None = None,
    **kwargs,
):
    """`random`, a name in `named` (name -> import path of a judge class built without arguments, e.g. `oracle`),
    a folder with scalar_judge.json (a scalar-head reward model: `scalar`), a folder with judge.json
    (`Judge.from_pretrained`), or a checkpoint without one (an official judge of
    `family`, asked with the official templates unless `templates` says otherwise)."""
    if named and spec in named:
        from hydra.utils import get_class

        return get_class(named[spec])()
    if spec == "random":
        return RandomJudge(seed)
    from unified_reward.prompts.templates import load_templates

    if (Path(spec).expanduser() / "scalar_judge.json").is_file():
        from unified_reward.judging.scalar import ScalarJudge

        return ScalarJudge.from_pretrained(
            spec, dtype=kwargs.get("dtype", "float32"), batch_size=kwargs.get("batch_size", 8)
        )
    if (Path(spec).expanduser() / "judge.json").is_file():
        judge = Judge.from_pretrained(spec, **kwargs)
        if templates:
            judge.templates = load_templates(templates)
        return judge
    from unified_reward.models.builders import build_vlm
    from unified_reward.models.processor import build_processor

    dtype = kwargs.pop("dtype", "float32")
    processor = build_processor(family, spec)
    model = build_vlm(family, processor, pretrained=spec, dtype=dtype).eval()
    return Judge(model, processor, load_templates(templates or "official"), **kwargs)
