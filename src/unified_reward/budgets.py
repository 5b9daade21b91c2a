"""Training budgets of the joint-vs-single ablation (`configs/budget/`), as step counts.

`same_examples`: every arm sees as many training examples of each task it trains on as the joint arm does, so an
arm on k of the n tasks runs k/n of the joint arm's steps (the mixture draws its streams with equal weights, so
each trained task takes 1/k of a batch). `same_compute`: every arm runs the same number of steps.
"""

from __future__ import annotations

from collections.abc import Sequence


def steps_for_examples(
    examples_per_task: int, batch_size: int, train_tasks: Sequence[str] | None, tasks: Sequence[str]
) -> int:
    """Optimizer steps in which a batch of `batch_size`, mixing `train_tasks` (None: every one of `tasks`) equally,
    holds `examples_per_task` examples of each trained task."""
    trained = list(tasks if train_tasks is None else train_tasks)
    if not trained or examples_per_task <= 0 or batch_size <= 0:
        raise ValueError(f"no budget from {examples_per_task} examples per task of {trained}, batch {batch_size}")
    steps, remainder = divmod(examples_per_task * len(trained), batch_size)
    if remainder:
        raise ValueError(
            f"{examples_per_task} examples per task of {len(trained)} tasks is not a whole number of batches of "
            f"{batch_size}: pick examples_per_task as a multiple of {batch_size}"
        )
    return steps
