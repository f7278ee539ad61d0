"""The seed-distribution verdicts (stages/claims.py): the 95% prediction interval for one new
run, the post's rank among the seeds, and the verdict, on hand-made values."""

import math

import pytest

from lib.results.claims import check
from lib.results.render import figure
from lib.results.stats import (
    degenerate,
    interval_verdict,
    post_rank,
    practical_verdict,
    prediction_interval,
    rank_p_value,
)

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


@pytest.mark.parametrize(
    "rank, n, p",
    [
        (1, 10, 2 / 11),
        (11, 10, 2 / 11),
        (6, 10, 1.0),
        (2, 10, 4 / 11),
        (10.5, 10, 3 / 11),
        (2.5, 3, 1.0),
        (1, 1, 1.0),
        (1.5, 1, 1.0),
        (1, 3, 0.5),
        (4, 3, 0.5),
    ],
)
def test_the_rank_p_value_assumes_nothing_of_the_seeds(rank, n, p):
    """Were the post one more run, its rank among n + 1 would be uniform: two-sided p = 2 min(r, n + 2 - r)/(n + 1),
    at most 1; a half rank (a tie) lies between; one seed can never tell (p = 1)."""
    assert rank_p_value(rank, n) == pytest.approx(p)


def test_no_rank_no_p_value():
    assert rank_p_value(None, 10) is None and rank_p_value(1, 0) is None


def test_degenerate_seeds_are_flagged():
    assert degenerate([0.5]) == "one seed"
    assert degenerate([0.7, 0.7, 0.7]) == "3 of 3 seeds equal"
    assert degenerate([0.1135] * 8 + [0.1, 0.2]) == "8 of 10 seeds equal"  # row 1's stuck net
    assert degenerate([1, 1, 2, 2]) == "" and degenerate([1, 1, 2]) == "2 of 3 seeds equal"  # half is not most
    assert degenerate([None, 0.4, 0.5]) == "" and degenerate([0.1, 0.2, 0.3]) == ""


def test_the_practical_verdict_is_the_distance_to_our_mean_against_the_tolerance():
    assert (
        practical_verdict(0.90, 0.92, 0.02) == "within tol." and practical_verdict(0.90, 0.9201, 0.02) == "beyond tol."
    )
    assert practical_verdict(15.0, 12.0, 3) == "within tol." and practical_verdict(None, 0.5, 0.02).startswith("beyond")
    assert practical_verdict(0.9, None, 0.02) == "-"


def test_a_figure_past_every_seed_is_outside_though_within_the_tolerance():
    """The case the tolerance floor used to decide: ten tight seeds below the post's 0.921 (the CNN's
    val_accuracy). The seeds-only interval excludes it (statistical: outside, rank 11/11, p = 2/11), yet it
    is 0.005 from our mean (practical: within the 0.02 tolerance)."""
    values = [0.914, 0.915, 0.916, 0.917, 0.915, 0.916, 0.914, 0.918, 0.917, 0.918]
    entry = {"mean": sum(values) / 10, "std": 0.0015, "seeds": 10, "values": values}
    cells, record = figure(entry, 0.921, "val_accuracy", {"accuracy": {"absolute": 0.02}}, 3)
    assert record["statistical"] == "outside" and record["practical"] == "within tol."
    assert record["rank"] == 11 and record["p"] == pytest.approx(2 / 11, abs=1e-4) and record["high"] < 0.921
    assert cells[3:] == ["11/11, p 0.18", "outside", "within tol."]
    tied, _ = figure(
        {"mean": 0.1135, "std": 0.0, "seeds": 3, "values": [0.1135] * 3},
        0.1363,
        "test_accuracy",
        {"accuracy": {"absolute": 0.02}},
        4,
    )
    assert tied[4] == "outside (3 of 3 seeds equal)" and tied[5] == "beyond tol."


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
