import math

from unified_reward.reporting import mean_spread, sample_std


def test_the_spread_over_seeds_is_the_sample_standard_deviation():
    values = [0.028, 0.072, 0.114]
    mean = sum(values) / 3
    by_hand = math.sqrt(sum((v - mean) ** 2 for v in values) / (3 - 1))
    assert math.isclose(sample_std(values), by_hand)
    assert mean_spread(values) == f"{mean:.3f} ± {by_hand:.3f} (n=3)" == "0.071 ± 0.043 (n=3)"


def test_one_run_has_no_spread_and_no_run_is_a_dash():
    assert mean_spread([0.05]) == "0.050 (n=1)"
    assert math.isnan(sample_std([0.05]))
    assert mean_spread([]) == "-"
