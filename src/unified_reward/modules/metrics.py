"""What the modules measure at the end of an evaluation epoch, through torchmetrics so that every rank's
results are gathered under DDP: rows collected per batch (`CollectedRows`), then read by pure functions (the
judge's per-stream accuracy, MAE and Spearman; a policy's scores after and before training, with the standard
errors to read a difference against)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional import spearman_corrcoef
from torchmetrics.utilities import dim_zero_cat

from unified_reward.data.schema import MODES, stream_name
from unified_reward.data.tasks import TASKS


class CollectedRows(Metric):
    """Rows of `width` floats from every batch; `compute` returns them all, from every rank (a `cat` state:
    torchmetrics gathers uneven and empty ranks alike). NaN marks a value that was not measured.

    Rows are kept flat: a rank that saw nothing holds a 1-D empty tensor, and torchmetrics' gather needs every
    rank's state to have the same number of dimensions (with 2-D rows gloo aborts)."""

    full_state_update = False

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def update(self, rows) -> None:
        rows = torch.as_tensor(np.asarray(rows, dtype=np.float64).reshape(-1, self.width), dtype=self.dtype)
        self.rows.append(rows.flatten().to(self.device))

    def gathered(self) -> torch.Tensor:
        """`compute`, then `reset`: every rank's rows of the epoch. Every rank must call it, also one that saw
        nothing (for which torchmetrics' warning about computing before updating is expected, not a fault)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*``compute`` method .* was called before the ``update``")
            rows = self.compute()
        self.reset()
        return rows

    def compute(self) -> torch.Tensor:
        empty = isinstance(self.rows, list) and not self.rows  # after a sync the state is one tensor
        rows = torch.empty(0, device=self.device) if empty else dim_zero_cat(self.rows)
        return rows.reshape(-1, self.width)


# ---- the judge: one row per measured value --------------------------------------------------------------

STREAMS = tuple(stream_name(task, mode) for task in TASKS for mode in MODES)
# point: (expected score, label); tie_recall: whether a pair labelled a tie was judged one
JUDGE_MEASURES = ("acc", "point", "invalid", "gen_acc", "gen_mae", "tie_recall")


def judge_row(measure: str, stream: str, value: float, target: float = float("nan")) -> tuple[float, ...]:
    return (JUDGE_MEASURES.index(measure), STREAMS.index(stream), value, target)


def judge_metrics(rows: torch.Tensor, split: str) -> dict[str, float]:
    """Per stream: `<split>/acc/<stream>` (and gen_acc, invalid, gen_mae, tie_recall: their means),
    `<split>/mae/<stream>` and `<split>/spearman/<stream>` of the expected scores; `<split>/acc/mean` over the
    streams with pairs."""
    rows = rows.double().cpu()
    metrics: dict[str, float] = {}
    for m, measure in enumerate(JUDGE_MEASURES):
        for s, stream in enumerate(STREAMS):
            selected = rows[(rows[:, 0] == m) & (rows[:, 1] == s)]
            if not len(selected):
                continue
            if measure == "point":
                expected, labels = selected[:, 2], selected[:, 3]
                metrics[f"{split}/mae/{stream}"] = float((expected - labels).abs().mean())
                metrics[f"{split}/spearman/{stream}"] = spearman(expected, labels)
            else:
                metrics[f"{split}/{measure}/{stream}"] = float(selected[:, 2].mean())
    accuracies = [v for k, v in metrics.items() if k.startswith(f"{split}/acc/")]
    if accuracies:
        metrics[f"{split}/acc/mean"] = float(np.mean(accuracies))
    return dict(sorted(metrics.items()))


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation (average ranks for ties); NaN where it is undefined."""
    if len(x) < 2 or bool((x == x[0]).all()) or bool((y == y[0]).all()):
        return float("nan")
    return float(spearman_corrcoef(x.double(), y.double()))


# ---- a policy's answers or samples, after and before training -------------------------------------------


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


def after_before_metrics(prefix: str, names: tuple[str, ...], rows: torch.Tensor) -> dict[str, float]:
    """`rows`: per item, `names` measured after training, then the same measured before (NaN: not measured).
    Each name's `gain_metrics`, with the gain where every item was measured before."""
    table = rows.double().cpu().numpy()
    metrics: dict[str, float] = {}
    for column, name in enumerate(names):
        after, before = table[:, column], table[:, column + len(names)]
        if len(after) and not np.isnan(after).any():
            metrics |= gain_metrics(f"{prefix}/{name}", after, None if np.isnan(before).any() else before)
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
