import pytest

from unified_reward.filtering.selection import disjoint_pairs, pair_rank, select_pair


def test_fixed_disjoint_pairs_and_odd_counts():
    assert disjoint_pairs(10) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert disjoint_pairs(5) == [(0, 1), (2, 3)]  # candidate 4 is in no pair
    with pytest.raises(ValueError, match="at least 2"):
        disjoint_pairs(1)


def test_pair_ranking_splits_winners_and_losers_and_ties_join_neither():
    chosen, rejected, ties = pair_rank([(0, 1), (2, 3), (4, 5)], ["second", "tie", "first"])
    assert chosen == [1, 4] and rejected == [0, 5] and ties == 1
    with pytest.raises(ValueError, match="verdict"):
        pair_rank([(0, 1)], ["1"])  # an unparsed answer is never read as a verdict


def test_point_sifting_keeps_best_chosen_and_worst_rejected():
    # pairs: (0,1) -> 1 wins, (2,3) -> 2 wins, (4,5) -> 5 wins
    selection = select_pair(6, ["second", "first", "second"], [2.0, 3.0, 4.5, 1.0, 2.5, 3.5])
    assert selection.chosen_list == (1, 2, 5) and selection.rejected_list == (0, 3, 4)
    assert (selection.chosen, selection.rejected) == (2, 3) and selection.kept


def test_equal_scores_break_towards_the_lower_index():
    selection = select_pair(4, ["first", "first"], [4.0, 1.0, 4.0, 1.0])
    assert (selection.chosen, selection.rejected) == (0, 1)


def test_chosen_list_below_the_rejected_list_drops_the_prompt():
    # the judge's pair verdicts disagree with its scores: best chosen 2.0 < worst rejected 3.0
    selection = select_pair(4, ["first", "first"], [2.0, 3.0, 1.5, 4.0])
    assert not selection.kept and selection.dropped == "chosen_not_better" and selection.chosen is None


def test_equal_best_and_worst_scores_drop_the_prompt():
    selection = select_pair(4, ["first", "second"], [3.0, 3.0, 3.0, 3.0])
    assert selection.dropped == "chosen_not_better"


def test_all_pairs_tied_drops_the_prompt():
    selection = select_pair(4, ["tie", "tie"], [5.0, 1.0, 3.0, 2.0])
    assert selection.dropped == "all_pairs_tied" and selection.tied_pairs == 2


def test_odd_count_leaves_the_last_candidate_out_of_both_lists():
    # candidate 4 scores best of all, but it was in no pair: it can be neither chosen nor rejected
    selection = select_pair(5, ["first", "second"], [3.0, 1.0, 1.5, 2.5, 5.0])
    assert selection.unpaired == (4,)
    assert (selection.chosen, selection.rejected) == (0, 1)


def test_mismatched_lengths_fail_clearly():
    with pytest.raises(ValueError, match="scores"):
        select_pair(4, ["first", "first"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="verdicts"):
        select_pair(4, ["first"], [1.0, 2.0, 3.0, 4.0])
