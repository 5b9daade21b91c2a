"""The synthetic world's pixel-reading oracle as a benchmark judge: the ceiling beside every judge's number on
`benchmark=synthetic` (`judge=oracle`). It scores each candidate and prefers the higher score (equal: a tie)."""

from __future__ import annotations

from typing import Any

from unified_reward.data.schema import is_generation


class OracleReader:
    def read(self, shown: list[tuple[Any, Any, tuple[Any, Any]]]) -> list[dict[str, Any]]:
        from unified_reward.data.synthetic import oracle

        readings = []
        for item, context, pair in shown:
            if is_generation(item.task):
                scores = [oracle.score_generation(item.prompt, media).score for media in pair]
            else:
                scores = [oracle.score_answer(item.prompt, context, answer).score for answer in pair]
            verdict = "tie" if scores[0] == scores[1] else ("first" if scores[0] > scores[1] else "second")
            probabilities = {v: float(v == verdict) for v in ("first", "second", "tie")}
            readings.append({"verdict": verdict, "probabilities": probabilities, "scores": scores, "text": None})
        return readings
