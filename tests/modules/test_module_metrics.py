import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy.stats import spearmanr

from unified_reward.modules.metrics import (
    CollectedRows,
    after_before_metrics,
    judge_metrics,
    judge_row,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_rows(rank: int, world: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        metric = CollectedRows(width=2)
        if rank == 0:  # rank 1 saw nothing this epoch (uneven last batches, one stream per rank)
            metric.update([(1.0, 2.0), (3.0, float("nan"))])
            metric.update([(5.0, 6.0)])
        results[rank] = metric.gathered().tolist()
    finally:
        dist.destroy_process_group()


def test_collected_rows_gather_every_rank_also_an_empty_one():
    results = mp.Manager().dict()
    mp.spawn(_rank_rows, args=(2, _free_port(), results), nprocs=2, join=True)
    for rank in (0, 1):
        rows = results[rank]
        assert [r[0] for r in rows] == [1.0, 3.0, 5.0] and math.isnan(rows[1][1]) and rows[2][1] == 6.0


def test_collected_rows_without_a_process_group_and_after_reset():
    metric = CollectedRows(width=3)
    assert metric.gathered().shape == (0, 3)  # nothing yet: empty, without torchmetrics' warning
    metric.update([(1, 2, 3)])
    metric.update(np.ones((2, 3)))
    assert metric.compute().tolist() == [[1, 2, 3], [1, 1, 1], [1, 1, 1]]
    assert metric.gathered().shape == (3, 3)
    assert metric.gathered().shape == (0, 3)  # reset by the first


def test_judge_metrics_match_an_independent_computation():
    rng = np.random.default_rng(0)
    correct = rng.integers(0, 2, 30).astype(float)
    expected, labels = rng.uniform(1, 5, 40), rng.integers(1, 6, 40).astype(float)
    rows = [judge_row("acc", "image_generation_pair", c) for c in correct]
    rows += [judge_row("acc", "video_understanding_pair", 1.0)] * 3
    rows += [judge_row("point", "image_generation_point", e, y) for e, y in zip(expected, labels, strict=True)]
    rows += [judge_row("invalid", "image_generation_pair", v) for v in (0.0, 1.0, 0.0, 0.0)]
    metric = CollectedRows(width=4)
    metric.update(rows)
    metrics = judge_metrics(metric.compute(), "test")
    assert metrics["test/acc/image_generation_pair"] == pytest.approx(correct.mean())
    assert metrics["test/acc/video_understanding_pair"] == 1.0
    assert metrics["test/acc/mean"] == pytest.approx((correct.mean() + 1.0) / 2)
    assert metrics["test/mae/image_generation_point"] == pytest.approx(np.abs(expected - labels).mean(), rel=1e-5)
    reference = spearmanr(expected.astype(np.float32), labels).statistic  # ties in the labels: average ranks
    assert metrics["test/spearman/image_generation_point"] == pytest.approx(reference, rel=1e-5)
    assert metrics["test/invalid/image_generation_pair"] == 0.25
    assert not any("video_generation" in k for k in metrics)  # streams without rows report nothing
    constant = CollectedRows(width=4)
    constant.update([judge_row("point", "image_generation_point", 3.0, y) for y in (1.0, 2.0)])
    assert math.isnan(judge_metrics(constant.compute(), "val")["val/spearman/image_generation_point"])


def test_after_before_metrics_give_the_paired_gain():
    after, before = np.array([1.0, 0.5, 0.75, 1.0]), np.array([0.5, 0.5, 0.25, 1.0])
    rows = torch.tensor(np.stack([after, before], axis=1))
    metrics = after_before_metrics("test", ("score",), rows)
    assert metrics["test/score"] == pytest.approx(after.mean())
    assert metrics["test/score_gain"] == pytest.approx((after - before).mean())
    differences = after - before
    assert metrics["test/score_gain_stderr"] == pytest.approx(differences.std(ddof=1) / 2)
    rows[:, 1] = float("nan")  # not measured before (e.g. no reference): no gain
    assert set(after_before_metrics("test", ("score",), rows)) == {"test/score", "test/score_stderr"}
