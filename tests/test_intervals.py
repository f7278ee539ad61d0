"""The seed-distribution verdicts (stages/claims.py): the 95% prediction interval for one new
run, the post's rank among the seeds, and the verdict, on hand-made values."""

import math

import pytest

from lib.results.claims import check
from lib.results.stats import interval_verdict, post_rank, prediction_interval

T_975 = {2: 4.3026527, 9: 2.2621572}  # Student's t quantiles, as printed in tables (7 decimals)


def test_interval_is_mean_plus_minus_t_s_sqrt_one_plus_one_over_n():
    interval = prediction_interval([0.90, 0.92, 0.94], minimum=0.02)
    half = T_975[2] * 0.02 * math.sqrt(1 + 1 / 3)  # s = 0.02
    assert interval["n"] == 3 and interval["mean"] == pytest.approx(0.92)
    assert (interval["low"], interval["high"]) == pytest.approx((0.92 - half, 0.92 + half), rel=1e-7)
    assert interval["high"] == pytest.approx(1.0193656, abs=1e-7) and not interval["widened"]


def test_ten_seeds_use_t_with_nine_degrees_of_freedom():
    values = [10.0 + i for i in range(10)]  # mean 14.5, s = sqrt(110 / 12)
    interval = prediction_interval(values, minimum=3)
    half = T_975[9] * math.sqrt(110 / 12) * math.sqrt(1.1)
    assert interval["high"] - interval["mean"] == pytest.approx(half, rel=1e-7) and interval["mean"] == 14.5


def test_one_seed_gives_the_tolerance_as_the_interval():
    assert prediction_interval([0.5], minimum=0.02) == {"n": 1, "mean": 0.5, "low": 0.48, "high": 0.52, "widened": True}


def test_identical_values_give_the_tolerance_as_the_interval():
    interval = prediction_interval([0.7, 0.7, 0.7], minimum=0.25)
    assert (interval["low"], interval["high"]) == pytest.approx((0.45, 0.95), abs=1e-12) and interval["widened"]


def test_the_tolerance_is_only_a_minimum_width():
    narrow = prediction_interval([0.500, 0.501, 0.502], minimum=0.02)
    wide = prediction_interval([0.40, 0.50, 0.60], minimum=0.02)
    assert narrow["widened"] and narrow["high"] - narrow["mean"] == pytest.approx(0.02)
    assert not wide["widened"] and wide["high"] - wide["mean"] > 0.4


def test_runs_without_a_value_are_left_out():
    assert prediction_interval([None, 12, 14], minimum=3)["n"] == 2
    assert prediction_interval([None, None], minimum=3) == {
        "n": 0,
        "mean": None,
        "low": None,
        "high": None,
        "widened": False,
    }


def test_a_figure_on_the_edge_is_consistent_and_one_just_past_it_is_outside():
    interval = prediction_interval([0.90, 0.92, 0.94], minimum=0.02)
    assert interval_verdict(interval, interval["high"]) == "consistent"
    assert interval_verdict(interval, interval["low"]) == "consistent"
    assert interval_verdict(interval, math.nextafter(interval["high"], math.inf)) == "outside"
    assert interval_verdict(interval, math.nextafter(interval["low"], -math.inf)) == "outside"
    # The tolerance edge of a one-seed interval, exactly representable: 0.5 +- 0.25.
    one = prediction_interval([0.5], minimum=0.25)
    assert (interval_verdict(one, 0.75), interval_verdict(one, 0.7500001)) == ("consistent", "outside")


def test_no_post_figure_or_no_value():
    assert interval_verdict(prediction_interval([0.5], minimum=0.02), None) == "-"
    assert interval_verdict(prediction_interval([None], minimum=3), 15) == "outside (no value)"


@pytest.mark.parametrize("post, rank", [(0.0, 1), (2.5, 3), (4.0, 4), (2.0, 2.5), (1.0, 1.5)])
def test_rank_of_the_post_among_the_seeds(post, rank):
    assert post_rank([3.0, 1.0, 2.0], post) == rank


def test_rank_with_one_seed_identical_values_and_missing_ones():
    assert post_rank([0.5], 0.6) == 2 and post_rank([0.5], 0.5) == 1.5
    assert post_rank([7, 7, 7], 7) == 2.5  # ties share the mean rank of 1..4
    assert post_rank([None, 12, 14], 13) == 2 and post_rank([None], 13) is None and post_rank([1.0], None) is None


# a: 0.91 +- 4.3027 * 0.01 * sqrt(4/3) = 0.8603 to 0.9597; b: 0.55 +- 0.2484 = 0.3016 to 0.7984
SEEDS = {
    "t": {
        "a": {"accuracy": {"mean": 0.91, "std": 0.01, "seeds": 3, "values": [0.90, 0.91, 0.92]}},
        "b": {"accuracy": {"mean": 0.55, "std": 0.05, "seeds": 3, "values": [0.50, 0.55, 0.60]}},
    }
}


@pytest.mark.parametrize(
    "spec, within",
    [
        (
            {"greater": "t.a.accuracy", "than": "t.b.accuracy", "by": 0.3},
            False,
        ),  # 0.36 apart on the means, 0.062 at the ends
        ({"greater": "t.a.accuracy", "than": "t.b.accuracy", "by": 0.05}, True),
        ({"metric": "t.a.accuracy", "at_least": 0.85}, True),  # the low end, 0.8603, is above
        ({"metric": "t.a.accuracy", "at_least": 0.87}, False),
        ({"metric": "t.b.accuracy", "at_most": 0.8}, True),  # the high end, 0.7984, is below
        ({"close": ["t.a.accuracy", "t.b.accuracy"], "within": 0.5}, False),  # the ends can be 0.658 apart
        ({"close": ["t.a.accuracy", "t.b.accuracy"], "within": 0.7}, True),
    ],
)
def test_a_claim_that_holds_on_the_means_is_checked_at_the_least_favourable_interval_ends(spec, within):
    claim = {"id": "x", "text": "x", "check": spec}
    outcome = check(claim, SEEDS, {"accuracy": {"absolute": 0.02}})
    assert outcome.holds is True and outcome.within_intervals is within
    assert check(claim, SEEDS).within_intervals is None  # asked only with the tolerances


def test_a_claim_that_fails_on_the_means_is_not_checked_further():
    outcome = check(
        {"id": "x", "text": "x", "check": {"metric": "t.a.accuracy", "at_least": 0.95}},
        SEEDS,
        {"accuracy": {"absolute": 0.02}},
    )
    assert outcome.holds is False and outcome.within_intervals is None
