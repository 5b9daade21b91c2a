"""What the modules report of a policy's test answers or samples: scores after and before training, with the
standard errors to read a difference against."""

from __future__ import annotations

import numpy as np


def standard_error(values: np.ndarray) -> float:
    """The standard error of the mean of `values` (sample std / sqrt n); 0 for fewer than two values."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def gain_metrics(name: str, after: np.ndarray, before: np.ndarray | None = None) -> dict[str, float]:
    """`name` (the mean after), its standard error over items, and with `before` (the same items scored before):
    `<name>_reference`, `<name>_gain` and the gain's paired standard error."""
    after = np.asarray(after, dtype=float)
    metrics = {name: float(after.mean()), f"{name}_stderr": standard_error(after)}
    if before is not None:
        before = np.asarray(before, dtype=float)
        metrics[f"{name}_reference"] = float(before.mean())
        metrics[f"{name}_gain"] = metrics[name] - metrics[f"{name}_reference"]
        metrics[f"{name}_gain_stderr"] = standard_error(after - before)  # paired: the error of the gain itself
    return metrics


ANSWER_METRICS = ("oracle_score", "oracle_exact", "oracle_score_sampled", "hallucination_sampled")


def answer_rows(evaluator, records, greedy: list[str], sampled: list[str], k: int) -> list[tuple[float, ...]]:
    """Per record, the `ANSWER_METRICS`: the evaluator's score of the greedy answer, whether it is exact, and (k > 0
    answers sampled per record) their mean score and the share that state an asked attribute wrongly."""
    rows = []
    for i, (record, answer) in enumerate(zip(records, greedy, strict=True)):
        score = evaluator(record.prompt, record.context, answer).fraction
        read = [evaluator(record.prompt, record.context, a) for a in sampled[i * k : (i + 1) * k]]
        sampled_score = np.mean([r.fraction for r in read]) if k else np.nan
        hallucination = np.mean([r.hallucinated for r in read]) if k else np.nan
        rows.append((score, float(score == 1.0), sampled_score, hallucination))
    return rows
