"""floodx.stats against brute force and scipy: intervals, the paired test, Holm, the bootstrap."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from floodx import stats
from floodx.errors import DataError


# --- wilson_interval ---------------------------------------------------------------------------

def brute_force_wilson(k, n, level):
    """The score-test inversion {p: |k - n p| <= z sqrt(n p (1 - p))} scanned on a fine grid."""
    z = scipy_stats.norm.ppf((1 + level) / 2)
    grid = np.linspace(0.0, 1.0, 200_001)
    kept = grid[np.abs(k - n * grid) <= z * np.sqrt(n * grid * (1 - grid)) + 1e-12]
    return kept.min(), kept.max()


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 10), (10, 10), (3, 10), (1, 2), (7, 20), (50, 100)])
@pytest.mark.parametrize("level", [0.95, 0.9])
def test_wilson_matches_score_test_inversion(k, n, level):
    low, high = stats.wilson_interval(k, n, level)
    expected_low, expected_high = brute_force_wilson(k, n, level)
    assert low == pytest.approx(expected_low, abs=1e-5)
    assert high == pytest.approx(expected_high, abs=1e-5)


def test_wilson_exact_endpoints_and_empty():
    assert stats.wilson_interval(0, 25)[0] == 0.0
    assert stats.wilson_interval(25, 25)[1] == 1.0
    assert all(math.isnan(x) for x in stats.wilson_interval(0, 0))


@pytest.mark.parametrize("k, n", [(5, 4), (-1, 4), (0, -1), (1.0, 4)])
def test_wilson_rejects_invalid_counts(k, n):
    with pytest.raises(DataError):
        stats.wilson_interval(k, n)


# --- mean_interval -----------------------------------------------------------------------------

@pytest.mark.parametrize("level", [0.95, 0.9])
def test_mean_interval_matches_student_t(level):
    values = [81.2, 83.0, 79.5, 84.1]
    mean, sd = np.mean(values), np.std(values, ddof=1)
    half = scipy_stats.t.ppf((1 + level) / 2, df=3) * sd / 2
    assert stats.mean_interval(values, level) == pytest.approx((mean - half, mean + half))


def test_mean_interval_degenerate_cases():
    assert all(math.isnan(x) for x in stats.mean_interval([3.0]))
    assert all(math.isnan(x) for x in stats.mean_interval([]))
    assert stats.mean_interval([2.5, 2.5, 2.5]) == (2.5, 2.5)
    with pytest.raises(DataError):
        stats.mean_interval([1.0, float("nan")])


# --- sign_flip_p_value -------------------------------------------------------------------------

def brute_force_sign_flip(d):
    """All 2^m sign vectors, each equally likely."""
    observed = abs(sum(d))
    magnitudes = [abs(x) for x in d]
    hits = sum(abs(sum(s * x for s, x in zip(signs, magnitudes))) >= observed
               for signs in itertools.product((1, -1), repeat=len(d)))
    return hits / 2 ** len(d)


def test_sign_flip_matches_enumeration():
    rng = np.random.default_rng(1)
    for _ in range(60):
        d = rng.integers(-3, 4, size=rng.integers(1, 13)).tolist()
        assert stats.sign_flip_p_value(d) == pytest.approx(brute_force_sign_flip(d), rel=1e-12), d
    for d in ([2, 2, -2, 2], [3, -1, -2, 0, 0, 1], [1, -1, 1, -1], [3, 3, 3, 3, 3, 3, 3, 3]):
        assert stats.sign_flip_p_value(d) == pytest.approx(brute_force_sign_flip(d), rel=1e-12), d


def test_sign_flip_single_seed_is_exact_mcnemar():
    rng = np.random.default_rng(2)
    for _ in range(40):
        d = rng.choice([-1, 0, 0, 1], size=rng.integers(1, 80), p=[0.2, 0.25, 0.25, 0.3])
        wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
        expected = 1.0 if wins + losses == 0 else scipy_stats.binomtest(wins, wins + losses, 0.5).pvalue
        assert stats.sign_flip_p_value(d) == pytest.approx(expected, rel=1e-9)


def test_sign_flip_no_difference_gives_one():
    assert stats.sign_flip_p_value([0, 0, 0]) == 1.0
    assert stats.sign_flip_p_value([]) == 1.0
    outcomes = np.array([1, 0, 1, 1, 0])
    assert stats.sign_flip_p_value(outcomes - outcomes) == 1.0


def test_sign_flip_rejects_non_integers():
    with pytest.raises(DataError):
        stats.sign_flip_p_value([0.5, 1])


# --- holm ---------------------------------------------------------------------------------------

def brute_force_holm(p):
    """Definition: for each hypothesis, the max over hypotheses with p_g <= p_h of
    min(1, (m - rank_g) p_g), rank_g = number of p-values strictly below p_g."""
    valid = [x for x in p if not math.isnan(x)]
    m = len(valid)
    result = []
    for h in p:
        if math.isnan(h):
            result.append(math.nan)
            continue
        result.append(max(min(1.0, (m - sum(f < g for f in valid)) * g) for g in valid if g <= h))
    return result


def test_holm_matches_definition():
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = np.round(rng.uniform(0, 0.3, size=rng.integers(1, 9)), 2)  # rounding makes ties
        p[rng.random(p.size) < 0.2] = np.nan
        np.testing.assert_allclose(stats.holm(p.tolist()), brute_force_holm(p.tolist()), equal_nan=True)


def test_holm_known_values_and_invalid_input():
    assert stats.holm([0.01, 0.04, float("nan"), 0.03]) == pytest.approx([0.03, 0.06, math.nan, 0.06], nan_ok=True)
    assert stats.holm([]) == []
    with pytest.raises(DataError):
        stats.holm([0.2, 1.5])


# --- min_detectable_examples -------------------------------------------------------------------

def brute_force_min_detectable(n_examples, n_tests, alpha):
    for k in range(n_examples + 1):
        if stats.sign_flip_p_value([1] * k) <= alpha / n_tests:
            return k
    return None


def test_min_detectable_examples_known_values():
    assert stats.min_detectable_examples(100) == 6  # 2 * 0.5**6 = 0.031 <= 0.05 < 2 * 0.5**5
    assert stats.min_detectable_examples(100, n_tests=6) == 8  # 0.0078 <= 0.05 / 6 = 0.0083
    assert stats.min_detectable_examples(100, n_tests=12) == 9
    assert stats.min_detectable_examples(5) is None


def test_min_detectable_examples_matches_brute_force():
    for n_examples, n_tests, alpha in itertools.product((0, 3, 8, 20), (1, 2, 6, 12), (0.05, 0.01, 0.1)):
        assert stats.min_detectable_examples(n_examples, n_tests, alpha) == \
            brute_force_min_detectable(n_examples, n_tests, alpha)


def test_min_detectable_examples_rejects_invalid_input():
    with pytest.raises(DataError):
        stats.min_detectable_examples(-1)
    with pytest.raises(DataError):
        stats.min_detectable_examples(10, n_tests=0)


# --- bootstrap_interval ------------------------------------------------------------------------

def test_bootstrap_is_deterministic_and_contains_estimate():
    rng = np.random.default_rng(4)
    outcomes = [rng.integers(0, 2, size=60) for _ in range(3)]
    first = stats.bootstrap_interval(outcomes, seed=7)
    assert first == stats.bootstrap_interval(outcomes, seed=7)
    assert first[0] <= np.mean(np.concatenate(outcomes)) <= first[1]


def test_bootstrap_degenerate_and_empty():
    assert stats.bootstrap_interval([[1, 1, 1], [1, 1]]) == (1.0, 1.0)
    assert all(math.isnan(x) for x in stats.bootstrap_interval([]))
    with pytest.raises(DataError):
        stats.bootstrap_interval([[1, 0], []])


def test_bootstrap_single_seed_matches_normal_approximation():
    low, high = stats.bootstrap_interval([[0, 1] * 200])  # p = 0.5, se = 0.025
    assert low == pytest.approx(0.5 - 1.96 * 0.025, abs=0.01)
    assert high == pytest.approx(0.5 + 1.96 * 0.025, abs=0.01)


def test_bootstrap_resamples_seeds():
    # Seed-to-seed variation dominates: a draw of only the all-0 (all-1) seed happens 1/4 of the time.
    assert stats.bootstrap_interval([[0] * 50, [1] * 50]) == (0.0, 1.0)


# --- paired_comparison -------------------------------------------------------------------------

METHOD = {1: {"a": 1, "b": 1, "c": 0, "d": 0, "e": 1}, 2: {"a": 1, "b": 0, "c": 0, "d": 1, "e": 1}}
REFERENCE = {1: {"a": 0, "b": 1, "c": 1, "d": 0, "e": 0}, 2: {"a": 0, "b": 0, "c": 0, "d": 1, "e": 0}}


def test_paired_comparison_identical_outcomes():
    result = stats.paired_comparison(METHOD, METHOD)
    assert (result["wins"], result["losses"], result["difference"], result["p_value"]) == (0, 0, 0.0, 1.0)
    assert result["interval"] == (0.0, 0.0)


def test_paired_comparison_hand_made_two_seeds():
    # Per example, summed over seeds: a = +2, b = 0, c = -1, d = 0, e = +2.
    result = stats.paired_comparison(METHOD, REFERENCE)
    assert (result["n_pairs"], result["n_examples"], result["wins"], result["losses"]) == (10, 5, 2, 1)
    assert result["difference"] == pytest.approx(3 / 10)
    # Signed sums of +-2 +-1 +-2 reaching |3|: 5, 3, -3, -5 of 8.
    assert result["p_value"] == pytest.approx(0.5)
    low, high = result["interval"]
    assert low <= 0.3 <= high
    assert result == stats.paired_comparison(METHOD, REFERENCE)


def test_paired_comparison_uses_the_intersection():
    method = {**METHOD, 1: {**METHOD[1], "z": 1}, 3: {"a": 0}}
    reference = {**REFERENCE, 2: {**REFERENCE[2], "y": 0}}
    assert stats.paired_comparison(method, reference) == stats.paired_comparison(METHOD, REFERENCE)


def test_paired_comparison_single_seed_is_mcnemar():
    method = {0: {i: int(i % 3 != 0) for i in range(30)}}
    reference = {0: {i: int(i % 5 == 0) for i in range(30)}}
    result = stats.paired_comparison(method, reference)
    expected = scipy_stats.binomtest(result["wins"], result["wins"] + result["losses"], 0.5).pvalue
    assert result["p_value"] == pytest.approx(expected)


def test_paired_comparison_rejects_bad_input():
    with pytest.raises(DataError):
        stats.paired_comparison({0: {"a": 2}}, {0: {"a": 1}})
    with pytest.raises(DataError):
        stats.paired_comparison({0: {"a": 1}}, {1: {"a": 1}})


def test_median_ratio_interval_is_the_exact_bootstrap_range_for_three_rounds():
    """Three rounds have 27 equally likely resamples, each of probability 1/27 > 2.5%: the 95%
    percentile interval is the smallest and largest ratio among them, found here by enumeration."""
    import statistics

    method, reference = [2.0, 2.6, 2.2], [0.5, 0.55, 0.45]
    exact = [statistics.median(method[i] for i in rows) / statistics.median(reference[i] for i in rows)
             for rows in itertools.product(range(3), repeat=3)]
    low, high = stats.median_ratio_interval(method, reference, draws=5000)
    assert (low, high) == pytest.approx((min(exact), max(exact)), rel=1e-12)
    assert stats.median_ratio_interval(method, draws=5000) == pytest.approx((2.0, 2.6))   # the median alone


def test_median_ratio_interval_pairs_rounds_and_checks_its_input():
    reference = [0.50, 0.61, 0.47, 0.55, 0.52]
    assert stats.median_ratio_interval([3 * t for t in reference], reference) == pytest.approx((3.0, 3.0))
    assert stats.median_ratio_interval(reference, reference) == (1.0, 1.0)   # pairs, not two samples
    assert stats.median_ratio_interval([1.0, 2.0, 3.0], seed=1) == stats.median_ratio_interval([1.0, 2.0, 3.0], seed=1)
    with pytest.raises(DataError, match="paired rounds differ in number: 2 and 5"):
        stats.median_ratio_interval([1.0, 2.0], reference)
    with pytest.raises(DataError, match="positive times"):
        stats.median_ratio_interval([1.0, -2.0])
