"""What a reasoning judge has learned of each step of the world's rationale, measured while it trains.

Every `every_n_steps` training steps, a fixed set of validation records is read teacher-forced (the record's own
rationale and verdict as the target, one forward) and the argmax next token is compared with the target at the
tokens of each step of the rationale (`roles`):

- `asked`: the attribute words of the caption restated (generation: `The caption asks for two red circles ...`);
- `seen`: the attribute words of what the media show (`Image 1 shows two red circles ...`);
- `cand` / `true`: the two values of each check (`red is yellow no`: the candidate's, then the true one);
- `check`: the `yes` / `no` of each check; `tally`: the count before `/` (`3/4.`);
- `compare`: the comparison of the two tallies (`3 is less than 4`), where the rationale states one;
- `verdict`: the deciding token of a pair verdict (`Both`, or the number of `Image 2 is better.`);
  `score`: the first digit of `Final Score: X`.

Each value is the share of those tokens predicted right, per stream (`probe/<stream>/<role>`), logged and appended
to `rationale_probe.jsonl` in the run directory, one line per measurement. The world's format only
(`synthetic.world.reasoning`): the core never imports this.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from unified_reward.data.schema import PreferenceRecord
from unified_reward.encoding.judge_batches import JudgeCollator
from unified_reward.modules.reward_sft import MODEL_INPUTS

_SEEN = re.compile(r"(?:shows|asks for) (.+)\.$")
_CHECKS = re.compile(r"^(?:Image|Video|Answer)(?: \d)?: (.+)\. (\d)/\d\.$")
_CHECK = re.compile(r"(\S+) is (\S+) (yes|no)")
_WORD = re.compile(r"\S+")
_LINKING = {"on", "the", "in", "moving"}  # words of a description that name no attribute


def role_spans(answer: str) -> list[tuple[int, int, str]]:
    """(start, end, role) character spans of the world's rationale and verdict (module docstring)."""
    spans: list[tuple[int, int, str]] = []
    lines = answer.split("\n")
    offset = 0
    for number, line in enumerate(lines):
        last = number == len(lines) - 1
        if last:
            decisive = re.search(r"Both|\d", line)
            if decisive:
                spans.append(
                    (offset + decisive.start(), offset + decisive.end(), "score" if "Score" in line else "verdict")
                )
        elif (seen := _SEEN.search(line)) is not None:
            base = offset + seen.start(1)
            words = _WORD.finditer(seen.group(1))
            role = "asked" if line.startswith("The caption") else "seen"
            spans += [(base + m.start(), base + m.end(), role) for m in words if m.group() not in _LINKING]
        elif (checks := _CHECKS.match(line)) is not None:
            for m in _CHECK.finditer(checks.group(1)):
                base = offset + checks.start(1)
                spans += [
                    (base + m.start(i), base + m.end(i), role) for i, role in enumerate(("cand", "true", "check"), 1)
                ]
            spans.append((offset + checks.start(2), offset + checks.end(2), "tally"))
        elif line:
            spans += [
                (offset + m.start(), offset + m.end(), "compare") for m in re.finditer(r"\d|less|more|same", line)
            ]
        offset += len(line) + 1
    return spans


def token_roles(tokenizer, answer: str) -> list[str | None]:
    """Per answer token (the end token included, as the collator appends it): the role of the first span it
    overlaps, or None."""
    encoded = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False, return_offsets_mapping=True)
    spans = role_spans(answer)
    roles: list[str | None] = []
    for start, end in encoded["offset_mapping"]:
        role = next((r for s, e, r in spans if start < e and end > s and answer[start:end].strip()), None)
        roles.append(role)
    return roles


@torch.no_grad()
def probe(model: torch.nn.Module, collate: JudgeCollator, records: list[PreferenceRecord], batch_size: int = 32):
    """{`<stream>/<role>`: share of that role's tokens predicted right}, teacher-forced."""
    hits: dict[str, list[float]] = {}
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        batch = collate(chunk)
        device = next(model.parameters()).device
        inputs = {k: batch[k].to(device) for k in MODEL_INPUTS if k in batch and k != "labels"}
        predicted = model(**inputs, use_cache=False).logits[:, :-1].argmax(-1).cpu()
        labels = batch["labels"][:, 1:]
        for row, record in enumerate(batch["records"]):
            positions = (labels[row] != -100).nonzero().flatten().tolist()
            roles = token_roles(collate.processor.tokenizer, collate.answer(record))
            for role, position in zip(roles, positions, strict=True):
                if role is not None:
                    role = "verdict_tie" if role == "verdict" and record.label == "tie" else role
                    hit = float(predicted[row, position] == labels[row, position])
                    hits.setdefault(f"{record.stream}/{role}", []).append(hit)
    return {k: float(np.mean(v)) for k, v in sorted(hits.items())}


class RationaleProbe(L.Callback):
    def __init__(self, every_n_steps: int = 100, per_stream: int = 64, filename: str = "rationale_probe.jsonl"):
        self.every_n_steps, self.per_stream, self.filename = every_n_steps, per_stream, filename
        self._records: list[PreferenceRecord] | None = None
        self._collate: JudgeCollator | None = None

    def _setup(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        kept: dict[str, list[PreferenceRecord]] = {}
        for batch in trainer.datamodule.val_dataloader():
            for record in (batch or {}).get("records", []):
                if record.rationale and len(kept.setdefault(record.stream, [])) < self.per_stream:
                    kept[record.stream].append(record)
        self._records = [r for stream in sorted(kept) for r in kept[stream]]
        # padded, not packed: one record per row, so each row's answer tokens are its own
        self._collate = JudgeCollator(pl_module.processor, pl_module.templates, train_rationale=True)

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._records is None:
            self._setup(trainer, pl_module)
        was_training = pl_module.training
        pl_module.eval()
        measured = probe(pl_module.model, self._collate, self._records)
        pl_module.train(was_training)
        for name, value in measured.items():
            pl_module.log(f"probe/{name}", value, batch_size=1, rank_zero_only=True)
        path = Path(trainer.default_root_dir) / self.filename
        with path.open("a") as out:
            out.write(json.dumps({"step": trainer.global_step, **measured}) + "\n")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._measure(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch, batch_idx):
        if trainer.is_global_zero and trainer.global_step % self.every_n_steps == 0:
            self._measure(trainer, pl_module)
