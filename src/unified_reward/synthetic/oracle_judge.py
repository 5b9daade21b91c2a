"""The synthetic world's pixel-reading oracle behind the judge interface: it reads each candidate's image or
video (generation; editing: against the source image and the instruction) or checks each answer against the context
(understanding) and answers with certainty; the ceiling beside every learned judge (`judge=oracle`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unified_reward.data.schema import VideoClip
from unified_reward.data.tasks import task_spec
from unified_reward.judging.queries import VERDICTS, JudgeQuery, JudgeReadings, Judgment
from unified_reward.prompts.templates import rescale
from unified_reward.synthetic import oracle

ORACLE_SCALE = (oracle.SCORE_LOW, oracle.SCORE_HIGH)


class OracleJudge(JudgeReadings):
    def _score(self, query: JudgeQuery, candidate) -> float:
        spec = task_spec(query.task)
        if spec.prompt == "instruction":
            return oracle.score_edit(query.prompt, query.context, candidate).score
        if spec.media_candidates:  # read as the candidates stage reads samples: small ones upsampled first
            pixels = candidate.frames if isinstance(candidate, VideoClip) else np.asarray(candidate.convert("RGB"))
            return oracle.score_generated_sample(query.prompt, pixels)
        return oracle.score_answer(query.prompt, query.context, candidate).score

    def judge(self, queries: Sequence[JudgeQuery], *, with_text: bool = False) -> list[Judgment]:
        judgments = []
        for query in queries:
            scores = [self._score(query, c) for c in query.candidates]
            if query.mode == "pair":
                verdict = "tie" if scores[0] == scores[1] else ("first" if scores[0] > scores[1] else "second")
                judgments.append(Judgment({v: float(v == verdict) for v in VERDICTS}))
            else:
                score = rescale(scores[0], ORACLE_SCALE, query.scale)
                judgments.append(Judgment({score: 1.0}, scale=query.scale))
        return judgments
