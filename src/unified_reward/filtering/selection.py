"""Pair ranking, then point sifting: which two of a prompt's N candidates become a DPO pair (the paper's
algorithm, arXiv 2503.05236, section 3), as pure functions of the judge's outputs.

1. Pair ranking: candidates (2j, 2j+1), j < N // 2, are judged once each; the winner of a pair joins the
   chosen list, the loser the rejected list. A pair the judge calls a tie joins neither list. With odd N the
   last candidate is in no pair: it joins neither list (it is still scored, and reported as unpaired).
2. Point sifting: every candidate is scored; chosen = the highest-scored of the chosen list, rejected = the
   lowest-scored of the rejected list (equal scores: the lower index). The prompt is dropped when the chosen
   list is empty (every pair tied) or when the chosen score is not above the rejected score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from unified_reward.data.schema import PAIR_LABELS as VERDICTS

DROP_REASONS = ("all_pairs_tied", "chosen_not_better")


def disjoint_pairs(count: int) -> list[tuple[int, int]]:
    """The fixed pairs (0, 1), (2, 3), ...; with an odd count the last candidate is left out."""
    if count < 2:
        raise ValueError(f"pair ranking needs at least 2 candidates, got {count}")
    return [(i, i + 1) for i in range(0, count - 1, 2)]


@dataclass(frozen=True)
class Selection:
    chosen_list: tuple[int, ...]
    rejected_list: tuple[int, ...]
    tied_pairs: int
    unpaired: tuple[int, ...]
    chosen: int | None  # candidate indices of the kept pair; None when the prompt is dropped
    rejected: int | None
    dropped: str | None  # one of DROP_REASONS, or None when kept

    @property
    def kept(self) -> bool:
        return self.dropped is None


def pair_rank(pairs: Sequence[tuple[int, int]], verdicts: Sequence[str]) -> tuple[list[int], list[int], int]:
    """(chosen list, rejected list, number of tied pairs) from one verdict per pair."""
    if len(pairs) != len(verdicts):
        raise ValueError(f"{len(pairs)} pairs but {len(verdicts)} verdicts")
    chosen, rejected, ties = [], [], 0
    for (first, second), verdict in zip(pairs, verdicts, strict=True):
        if verdict == "first":
            chosen.append(first)
            rejected.append(second)
        elif verdict == "second":
            chosen.append(second)
            rejected.append(first)
        elif verdict == "tie":
            ties += 1
        else:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return chosen, rejected, ties


def select_pair(count: int, verdicts: Sequence[str], scores: Sequence[float]) -> Selection:
    """Pair ranking over `disjoint_pairs(count)` with `verdicts`, then point sifting with every candidate's score."""
    if len(scores) != count:
        raise ValueError(f"{count} candidates but {len(scores)} scores")
    pairs = disjoint_pairs(count)
    chosen_list, rejected_list, ties = pair_rank(pairs, verdicts)
    unpaired = tuple(range(2 * len(pairs), count))
    common = {
        "chosen_list": tuple(chosen_list),
        "rejected_list": tuple(rejected_list),
        "tied_pairs": ties,
        "unpaired": unpaired,
    }
    if not chosen_list:
        return Selection(**common, chosen=None, rejected=None, dropped="all_pairs_tied")
    best = max(chosen_list, key=lambda i: (scores[i], -i))
    worst = min(rejected_list, key=lambda i: (scores[i], i))
    if scores[best] <= scores[worst]:
        return Selection(**common, chosen=None, rejected=None, dropped="chosen_not_better")
    return Selection(**common, chosen=best, rejected=worst, dropped=None)
