"""The judge API: pairwise comparison and pointwise scoring, used by training-time evaluation, the
filter and serving alike (nothing else re-implements it).

`compare` and `score` read the answer-token distribution in ONE forward pass, no `generate`:
the candidate answers of a mode (`Image 1 is better.` / `Image 2 is better.` / `Both images are
equally good.`; `Final Score: 1` ... `Final Score: 5`) form a token trie; the prompt is followed
by one path through it, and every answer's probability is the product of the path's token
probabilities up to where that answer leaves the path, times the probability of the token it
leaves by. P(first / second / tie) and the expected score come from those probabilities,
normalised over the answers.

A reasoning judge (`reasoning=True`: trained with `module.train_rationale=true`, or a UnifiedReward-Think
checkpoint) first writes its rationale: it is generated greedily (batched, with the KV cache), cut where the
verdict begins (after the last line break, or after `<answer>`), and the same trie is then read after the
prompt and that rationale, so P(first / second / tie) and the expected score stay probabilities.

Queries of one call that share their beginning (a candidate set's pairs, its points) are read on from that
beginning's KV cache (`shared_prefix`; `prefix_reuse=False` turns it off): the same numbers, fewer tokens.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unified_reward.encoding.chat import encode_chat, pad_batch
from unified_reward.errors import UserError
from unified_reward.judging.queries import VERDICTS, JudgeQuery, JudgeReadings, Judgment
from unified_reward.judging.shared_prefix import media_digest, read_windows, shared_prefix
from unified_reward.judging.text_generation import generate_texts, generate_token_ids, rationale_length
from unified_reward.models.processor import VLMProcessor
from unified_reward.prompts.templates import (
    JudgeTemplate,
    load_templates,
    render_judge_prompt,
    save_templates,
    score_answer,
)
from unified_reward.strategies import is_sharded

log = logging.getLogger(__name__)
MAX_CACHED_TRIES = 64  # answer tries kept (one per stream and point scale), least recently used dropped first


@dataclass(frozen=True)
class AnswerTrie:
    """One path of answer tokens to feed after the prompt, and where each answer leaves it."""

    path: tuple[int, ...]  # tokens appended after the prompt (all but the path's last needed token)
    exits: tuple[tuple[int, int], ...]  # per answer: (position along the path, token id that leaves there)

    @classmethod
    def build(cls, answers: Sequence[list[int]]) -> AnswerTrie:
        path_index = max(range(len(answers)), key=lambda i: len(answers[i]))
        longest = answers[path_index]
        leaves: dict[int, int] = {}
        for i, tokens in enumerate(answers):
            if i == path_index:
                continue
            position = next((j for j, (a, b) in enumerate(zip(tokens, longest, strict=False)) if a != b), None)
            if position is None:
                raise ValueError("an answer is a prefix of another; end every answer with the end-of-turn token")
            leaves[i] = position
        depth = max(leaves.values(), default=0)
        leaves[path_index] = depth  # the path's own answer is told apart once every other one has left
        exits = tuple((leaves[i], answers[i][leaves[i]]) for i in range(len(answers)))
        if len(set(exits)) != len(exits):
            raise ValueError("two answers leave the path at the same token; they cannot be told apart in one pass")
        return cls(tuple(longest[:depth]), exits)

    def log_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(answers,) log-probabilities from the logits (depth+1, vocab) at the last prompt position and
        each fed path token."""
        logp = torch.log_softmax(logits.float(), dim=-1)
        along = torch.stack([logp[i, token] for i, token in enumerate(self.path)]) if self.path else logp.new_zeros(0)
        prefix = torch.cat([logp.new_zeros(1), torch.cumsum(along, 0)])
        return torch.stack([prefix[position] + logp[position, token] for position, token in self.exits])


class Judge(JudgeReadings):
    def __init__(
        self,
        model: nn.Module,
        processor: VLMProcessor,
        templates: dict[str, JudgeTemplate] | None = None,
        *,
        batch_size: int = 8,
        max_length: int | None = None,
        reasoning: bool = False,
        max_reasoning_tokens: int = 128,
        prefix_reuse: bool = True,
        prefix_block: int = 8,
        min_shared_tokens: int = 16,
        min_shared_fraction: float = 0.5,
    ):
        self.model = model
        self.processor = processor
        self.templates = templates or load_templates(None)
        self.batch_size = batch_size
        self.max_length = max_length
        self.reasoning = reasoning
        self.max_reasoning_tokens = max_reasoning_tokens
        self.prefix_reuse = prefix_reuse  # encode a shared prefix once (`shared_prefix`); results equal without
        self.prefix_block = prefix_block
        self.min_shared_tokens = min_shared_tokens
        # below this share of the rows' mean length, the prefix's own forward costs more than it saves (measured
        # with benchmarks/bench_judge.py: generation sets share ~0.1-0.4 of a row, understanding sets ~0.8)
        self.min_shared_fraction = min_shared_fraction
        self._tries: OrderedDict[Any, tuple[AnswerTrie | None, list[Any]]] = OrderedDict()

    # ---- answers and their trie ----------------------------------------------------------------------

    def _answer_ids(self, text: str) -> list[int]:
        tokenizer = self.processor.tokenizer
        return tokenizer(text + tokenizer.eos_token, add_special_tokens=False)["input_ids"]

    def _trie(self, query: JudgeQuery, warn: bool = True) -> tuple[AnswerTrie, list[Any]]:
        """The trie of the query's answers and what each answer means (a verdict or a score); `warn`: log a scale
        that cannot be read in one pass."""
        key = (query.stream, self.asked_scale(query)) if query.mode == "point" else query.stream
        if key in self._tries:
            self._tries.move_to_end(key)
        else:
            while len(self._tries) >= MAX_CACHED_TRIES:  # one per scale asked: a server meets many
                self._tries.popitem(last=False)
            if query.mode == "pair":
                answers = self.templates[query.stream].pair_answers
                meanings = [v for v in VERDICTS if v in answers]
                texts = [answers[v] for v in meanings]
            else:
                low, high = self.asked_scale(query)
                meanings = [float(s) for s in range(int(low), int(high) + 1)]
                texts = [score_answer(s) for s in meanings]
            try:
                self._tries[key] = (AnswerTrie.build([self._answer_ids(t) for t in texts]), meanings)
            except ValueError:
                if query.mode == "pair":
                    raise
                # e.g. 0-100: "Final Score: 2" and "Final Score: 23" leave the path at the same token
                (log.warning if warn else log.debug)(
                    "the %s-%s scale of %s cannot be read in one forward pass (score answers share token "
                    "prefixes); only a written answer gives its score (with_text, generate_and_parse)",
                    *key[1],
                    query.stream,
                )
                self._tries[key] = (None, [])
        return self._tries[key]

    def asked_scale(self, query: JudgeQuery) -> tuple[float, float] | None:
        """The point scale the judge is asked on (its template's own, if it names one); None for pairs."""
        return self.templates[query.stream].asked_scale(query.scale) if query.mode == "point" else None

    def reads_scale(self, query: JudgeQuery) -> bool:
        """Whether a point query's score can be read in one forward (its scale's answers form a trie); pairs: yes."""
        return query.mode == "pair" or self._trie(query, warn=False)[0] is not None

    # ---- one-forward reading -------------------------------------------------------------------------

    def _encode(self, query: JudgeQuery, media_memo: dict | None = None):
        parts = render_judge_prompt(
            self.templates, query.task, query.mode, query.prompt, query.context, query.candidates, query.scale
        )
        return encode_chat(self.processor, parts, None, max_length=self.max_length, media_memo=media_memo)

    def _model_batch(self, encoded, *, left: bool = False) -> dict[str, torch.Tensor]:
        batch = pad_batch(encoded, self.processor, left=left)
        batch.pop("labels")
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in batch.items()}

    def _read_after(self, encoded: list, tries: list, queries: Sequence[JudgeQuery]) -> list[dict[Any, float]]:
        """Answer probabilities read after each encoded prefix (a prompt, or a prompt and its rationale)."""
        windows = []
        for e, (trie, _) in zip(encoded, tries, strict=True):
            path = list(trie.path) if trie is not None else []
            windows.append((len(e.input_ids) - 1, len(path) + 1))  # from the last prompt token on
            e.input_ids = e.input_ids + path
            e.labels = e.labels + [-100] * len(path)
        logits = self._window_logits(encoded, windows, queries)
        results = []
        for window, (trie, meanings) in zip(logits, tries, strict=True):
            if trie is None:  # a scale that cannot be read in one pass: no probabilities
                results.append({})
                continue
            probabilities = torch.softmax(trie.log_probabilities(window), dim=0)
            results.append(dict(zip(meanings, probabilities.tolist(), strict=True)))
        return results

    def _window_logits(self, encoded: list, windows: list, queries: Sequence[JudgeQuery]) -> list[torch.Tensor]:
        """Each row's logits over its window: groups of queries with a long enough shared prefix (same task, mode,
        prompt and context) read on from its cache (`shared_prefix`), the rest in plain padded batches."""
        logits: list[torch.Tensor | None] = [None] * len(encoded)
        groups: dict[Any, list[int]] = {}
        if self.prefix_reuse and not is_sharded(self.model):  # sharded: every rank must run the same forwards
            for i, q in enumerate(queries):
                groups.setdefault((q.task, q.mode, q.prompt, media_digest(q.context)), []).append(i)
        plain = [i for rows in groups.values() if len(rows) < 2 for i in rows] if groups else list(range(len(encoded)))
        for rows in (rows for rows in groups.values() if len(rows) >= 2):
            keep = [len(encoded[i].input_ids) - windows[i][0] for i in rows]
            prefix = shared_prefix([encoded[i] for i in rows], self.processor, keep)
            mean_length = sum(len(encoded[i].input_ids) for i in rows) / len(rows)
            if prefix.tokens < max(self.min_shared_tokens, self.min_shared_fraction * mean_length):
                plain += rows
                continue
            read = read_windows(
                self.model,
                self.processor,
                [encoded[i] for i in rows],
                prefix,
                [windows[i] for i in rows],
                batch_size=self.batch_size,
            )
            for i, window in zip(rows, read, strict=True):
                logits[i] = window
        plain.sort()
        for start in range(0, len(plain), self.batch_size):
            rows = plain[start : start + self.batch_size]
            batch_logits = self.model(**self._model_batch([encoded[i] for i in rows]), use_cache=False).logits
            for row, i in enumerate(rows):
                begin, length = windows[i]
                logits[i] = batch_logits[row, begin : begin + length]
        return logits

    @torch.no_grad()
    def judge(self, queries: Sequence[JudgeQuery], *, with_text: bool = False) -> list[Judgment]:
        """Every query's answer probabilities; a reasoning judge first writes its rationale (kept as `text`).
        `with_text` also gives a direct judge's greedy answer (one more pass, `generate`). Queries are read in
        blocks of `batch_size * prefix_block` so that those sharing a prefix meet in one block."""
        judgments: list[Judgment] = []
        block = self.batch_size * (self.prefix_block if self.prefix_reuse and not self.reasoning else 1)
        for start in range(0, len(queries), block):
            chunk = queries[start : start + block]
            tries = [self._trie(q) for q in chunk]
            media_memo: dict = {}  # lives as long as `chunk` holds the media it is keyed by
            encoded = [self._encode(q, media_memo) for q in chunk]
            if not self.reasoning:
                texts = self.generate(chunk, self.max_reasoning_tokens) if with_text else [None] * len(chunk)
                readings = self._read_after(encoded, tries, chunk)
                judgments += [
                    Judgment(r, t, scale=self.asked_scale(q)) for r, t, q in zip(readings, texts, chunk, strict=True)
                ]
                continue
            written = generate_token_ids(
                self.model, self.processor, encoded, self.max_reasoning_tokens, batch_size=len(chunk)
            )
            finished = []
            for e, ids in zip(encoded, written, strict=True):
                cut = rationale_length(self.processor.tokenizer, ids)
                finished.append(cut is not None)
                e.input_ids = e.input_ids + ids[: len(ids) if cut is None else cut]
                e.labels = e.labels + [-100] * (len(ids) if cut is None else cut)
            readings = self._read_after(encoded, tries, chunk)
            texts = self.processor.tokenizer.batch_decode(written, skip_special_tokens=True)
            judgments += [
                Judgment(r, t, f, self.asked_scale(q))
                for r, t, f, q in zip(readings, texts, finished, chunk, strict=True)
            ]
        return judgments

    # ---- generate + parse ----------------------------------------------------------------------------

    def generate(self, queries: Sequence[JudgeQuery], max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers (a reasoning judge's include its rationale)."""
        encoded = [self._encode(q) for q in queries]
        tokens = max_new_tokens or self.max_reasoning_tokens
        return generate_texts(self.model, self.processor, encoded, tokens, batch_size=self.batch_size)

    def generate_and_parse(self, queries: Sequence[JudgeQuery], max_new_tokens: int | None = None) -> list[Any]:
        """Verdicts (pair) or scores (point) read from generated text; None where the text is invalid."""
        texts = self.generate(queries, max_new_tokens)
        return [Judgment({}, t, scale=self.asked_scale(q)).parsed(q.mode) for q, t in zip(queries, texts, strict=True)]

    # ---- export --------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path, state_dict: dict[str, Any] | None = None) -> None:
        """A folder plain transformers (and peft, for adapters on quantized bases) can load, plus our
        templates and family, which `Judge.from_pretrained` reads. `state_dict`: the full weights of a
        sharded model, gathered by the caller."""
        from unified_reward.models.export import save_vlm

        path = Path(path)
        adapter = save_vlm(self.model, self.processor, path, state_dict)
        save_templates(self.templates, path / "judge_templates.json")
        info = {
            "family": self.processor.family,
            "adapter": adapter,
            "reasoning": self.reasoning,
            "max_reasoning_tokens": self.max_reasoning_tokens,
        }
        (path / "judge.json").write_text(json.dumps(info, indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype: str = "float32", device: str = "cpu", **kwargs) -> Judge:
        from unified_reward.models.builders import build_vlm
        from unified_reward.models.processor import build_processor

        path = Path(path).expanduser()
        if not (path / "judge.json").is_file():
            what = "no such folder" if not path.exists() else "no judge.json in it"
            raise UserError(
                f"judge={path} is not a judge export ({what}). A judge export is the `judge/` folder a reward "
                "run writes (`python src/train.py experiment=reward_joint` -> logs/reward_joint/runs/<time>/judge), "
                "or a folder written by Judge.save_pretrained."
            )
        info = json.loads((path / "judge.json").read_text())
        if info.get("adapter"):
            raise NotImplementedError("load adapter exports with peft on their base model")
        processor = build_processor(info["family"], str(path))
        model = build_vlm(info["family"], processor, pretrained=str(path), dtype=dtype).to(device).eval()
        templates = load_templates(path / "judge_templates.json")
        reasoning = {k: info[k] for k in ("reasoning", "max_reasoning_tokens") if k in info}
        return cls(model, processor, templates, **(reasoning | kwargs))
