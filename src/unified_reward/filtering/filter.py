"""The filter as a Lightning prediction loop: candidate sets in, DPO pairs out.

Per candidate set of N: N // 2 pair judgments over the fixed pairs (2j, 2j+1) and N point judgments, all
through the judge API (`judging.queries.JudgeReadings`: the learned judge in one forward, batched across sets;
the oracle; the random judge), then `selection.select_pair`.
With `keep_questions`, a dropped set is written too, as a tie that DPO skips: its question is still evaluated.
Candidate sets are read with their media still encoded; the judge sees them decoded (`sampling`), and a
kept pair is written with the stored bytes.
A kept set becomes a pair record (chosen first) in exactly the form the DPO modules read, carrying the
judge's pair probabilities, every candidate's expected score, the chosen/rejected lists and, when the world
recorded them, the oracle's scores (`meta`; `summary.json` then counts whether the oracle prefers the chosen
candidate, the rejected one, or neither). Write with `ResumableShardWriter`; counts (sets, kept, dropped
per reason, pair and point judgments) go to `summary.json`, TensorBoard (`filter/*` scalars and the
chosen-minus-rejected score gap histogram) and the log.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch

from unified_reward.data.media import VideoSampling, decode_media
from unified_reward.data.schema import CandidateSet, EncodedMedia, PreferenceRecord
from unified_reward.filtering.selection import disjoint_pairs, select_pair
from unified_reward.filtering.writer import Outcome
from unified_reward.judging.queries import VERDICTS, JudgeQuery, JudgeReadings, average_orders
from unified_reward.prompts.templates import DEFAULT_SCALE

log = logging.getLogger(__name__)


class PreferenceFilter(L.LightningModule):
    def __init__(
        self,
        judge: JudgeReadings,
        *,
        both_orders: bool = False,
        scale: tuple[float, float] = DEFAULT_SCALE,
        sampling: VideoSampling | None = None,
        keep_questions: bool = False,
    ):
        super().__init__()
        self.judge = judge
        self.sampling = sampling or VideoSampling(num_frames=8)
        model = getattr(judge, "model", None)  # the oracle and the random judge have none
        self.model = model if isinstance(model, torch.nn.Module) else None  # registered: Lightning places it
        self.both_orders = both_orders
        self.scale = tuple(scale)
        # a dropped set is still written, as a tie (DPO skips it, counted): its question stays among those a policy
        # is evaluated on, so every judge's DPO run is tested on the same held-out questions
        self.keep_questions = keep_questions
        self.skip_ids: set[str] = set()  # set by ResumableShardWriter: items a previous run committed

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # candidate sets stay on the host; the judge moves what it encodes

    def _verdicts(self, queries: list[JudgeQuery]) -> tuple[list[str], torch.Tensor]:
        probabilities = self.judge.pair_probabilities(queries)
        if self.both_orders:
            probabilities = average_orders(probabilities, self.judge.pair_probabilities([q.swapped() for q in queries]))
        return [VERDICTS[i] for i in probabilities.argmax(-1).tolist()], probabilities

    @torch.no_grad()
    def predict_step(self, batch: list[CandidateSet], batch_idx: int) -> list[Outcome]:
        sets = [s for s in batch if s.id not in self.skip_ids]
        if not sets:
            return []
        pair_queries, point_queries = [], []
        for s in sets:
            # the judge sees decoded media; the written pair keeps the stored bytes
            context, candidates = self._decoded(s.context), [self._decoded(c) for c in s.candidates]
            for a, b in disjoint_pairs(len(candidates)):
                pair_queries.append(JudgeQuery(s.task, "pair", s.prompt, (candidates[a], candidates[b]), context))
            point_queries += [JudgeQuery(s.task, "point", s.prompt, (c,), context, self.scale) for c in candidates]
        verdicts, probabilities = self._verdicts(pair_queries)
        scores = self.judge.expected_scores(point_queries).tolist()
        outcomes, pair_at, point_at = [], 0, 0
        for s in sets:
            n, pairs = len(s.candidates), len(disjoint_pairs(len(s.candidates)))
            set_verdicts = verdicts[pair_at : pair_at + pairs]
            set_probabilities = probabilities[pair_at : pair_at + pairs].tolist()
            set_scores = scores[point_at : point_at + n]
            pair_at, point_at = pair_at + pairs, point_at + n
            outcomes.append(self._outcome(s, set_verdicts, set_probabilities, set_scores))
        return outcomes

    def _decoded(self, media):
        return decode_media(media, self.sampling) if isinstance(media, EncodedMedia) else media

    def _outcome(self, s: CandidateSet, verdicts: list[str], probabilities: list, scores: list[float]) -> Outcome:
        selection = select_pair(len(s.candidates), verdicts, scores)
        counts = {
            "sets": 1,
            "pair_judgments": len(verdicts) * (2 if self.both_orders else 1),
            "point_judgments": len(scores),
            "kept": int(selection.kept),
            "tied_pairs": selection.tied_pairs,
            "unpaired_candidates": len(selection.unpaired),
        }
        if selection.dropped:
            counts[f"dropped/{selection.dropped}"] = 1
        judged = {
            "pair_probabilities": [[round(p, 6) for p in row] for row in probabilities],
            "verdicts": verdicts,
            "scores": [round(x, 6) for x in scores],
            "chosen_list": list(selection.chosen_list),
            "rejected_list": list(selection.rejected_list),
        }
        facts: dict[str, Any] = {"id": s.id, "counts": counts, "judge": judged}
        oracle = s.meta.get("oracle_scores")
        record = None
        if selection.kept:
            facts["gap"] = scores[selection.chosen] - scores[selection.rejected]
            meta = {"candidate_set": s.id, "judge": judged, "chosen_index": selection.chosen}
            meta["rejected_index"] = selection.rejected
            if oracle is not None:
                meta["oracle_scores"] = oracle
                chosen, rejected = oracle[selection.chosen], oracle[selection.rejected]
                verdict = "chosen" if chosen > rejected else "rejected" if chosen < rejected else "tie"
                counts[f"oracle_prefers/{verdict}"] = 1
            record = PreferenceRecord.preference_pair(
                id=f"{s.id}-pair",
                task=s.task,
                prompt=s.prompt,
                chosen=s.candidates[selection.chosen],
                rejected=s.candidates[selection.rejected],
                context=s.context,
                source=f"filtered:{s.source}",
                meta=meta,
            )
        elif self.keep_questions:
            record = PreferenceRecord(
                id=f"{s.id}-question",
                task=s.task,
                mode="pair",
                prompt=s.prompt,
                candidates=tuple(s.candidates[:2]),
                label="tie",
                source=f"filtered:{s.source}",
                context=s.context,
                meta={"candidate_set": s.id, "judge": judged, "dropped": selection.dropped},
            )
        return Outcome(s.id, record, facts)

    def report(self, trainer: L.Trainer, summary: dict[str, Any]) -> None:
        """At the end (rank 0): counts as `filter/*` scalars, the score-gap histogram, oracle agreement."""
        totals = summary["totals"]
        gaps = np.array([f["gap"] for f in summary["facts"] if "gap" in f], dtype=float)
        # agreement with the oracle where the oracle tells the kept pair's two candidates apart
        agree, disagree = totals.get("oracle_prefers/chosen", 0), totals.get("oracle_prefers/rejected", 0)
        agreement = agree / (agree + disagree) if agree + disagree else None
        log.info(
            "filter: %d sets, %d kept, dropped %s; %d pair + %d point judgments%s",
            totals.get("sets", 0),
            totals.get("kept", 0),
            {k.split("/", 1)[1]: v for k, v in totals.items() if k.startswith("dropped/")},
            totals.get("pair_judgments", 0),
            totals.get("point_judgments", 0),
            f"; the oracle agrees with {agreement:.3f} of the kept pairs it tells apart"
            if agreement is not None
            else "",
        )
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if experiment is None or not hasattr(experiment, "add_scalar"):
                continue
            for name, value in totals.items():
                experiment.add_scalar(f"filter/{name}", value, 0)
            if agreement is not None:
                experiment.add_scalar("filter/oracle_agreement", agreement, 0)
            if len(gaps):
                experiment.add_histogram("filter/score_gap", gaps, 0)
