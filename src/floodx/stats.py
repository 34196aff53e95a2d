"""Statistics that let Table 2 tell robustness methods apart.

Every method is attacked on the same test examples, and per example the outcome is robust (1)
or not (0). Intervals say how precisely each cell is known; paired tests compare two methods
example by example, which is far more sensitive than comparing two independent proportions.

- `wilson_interval`: interval for a proportion (Clean%, Aua%, Suc%) from k of n.
- `mean_interval`: Student-t interval of a mean over seeds (or of #Query).
- `sign_flip_p_value`: exact paired test; with one seed it is the exact McNemar test.
- `holm`: adjusts the p-values of several comparisons (one per method against a reference).
- `min_detectable_examples`: how many examples a difference must involve to be detectable at all.
- `bootstrap_interval`: percentile interval over seeds and examples together.
- `paired_comparison`: method vs reference on aligned (seed, example) outcomes.
- `median_ratio_interval`: Table 3's intervals, a bootstrap over the timed rounds.

scipy comes with the pipeline's dependencies (see constraints.txt); only its t quantile is used.
"""

import math
from statistics import NormalDist

import numpy as np
from scipy import stats as _scipy_stats

from .errors import DataError

NAN_PAIR = (math.nan, math.nan)
TIE_TOLERANCE = 1e-9  # sums within this of the observed one count as "at least as extreme"


def _check_level(level):
    if not 0 < level < 1:
        raise DataError(f"confidence level must lie strictly between 0 and 1, got {level!r}")


def _as_int(value, name):
    """An integer count; bools and integral floats would hide a caller's mistake, so refuse them."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _two_sided_quantile(level):
    """The (1 + level) / 2 quantile: the multiplier of a two-sided interval."""
    return (1 + level) / 2


def wilson_interval(k, n, level=0.95):
    """Wilson score interval for k successes in n trials.

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point at
    k = 0 or k = n, which matters for Aua% near 0 and Clean% near 100. It is the set of p that the
    score test does not reject: |k - n p| <= z sqrt(n p (1 - p)). n == 0 gives (nan, nan).
    """
    k, n = _as_int(k, "k"), _as_int(n, "n")
    _check_level(level)
    if n < 0:
        raise DataError(f"number of trials n must be >= 0, got {n}")
    if not 0 <= k <= n:
        raise DataError(f"successes k must lie in 0..n = 0..{n}, got {k}")
    if n == 0:
        return NAN_PAIR
    z = NormalDist().inv_cdf(_two_sided_quantile(level))
    denominator = n + z * z
    center = (k + z * z / 2) / denominator
    half = z / denominator * math.sqrt(k * (n - k) / n + z * z / 4)
    # At k = 0 (k = n) the score condition holds at p = 0 (p = 1) exactly; avoid rounding noise.
    low = 0.0 if k == 0 else max(0.0, center - half)
    high = 1.0 if k == n else min(1.0, center + half)
    return low, high


def _finite_vector(values, name):
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-D sequence, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} contains NaN or infinite values")
    return array


def mean_interval(values, level=0.95):
    """Student-t interval of the mean of a few values (e.g. one metric over seeds).

    With 3-5 seeds the t quantile is much wider than the normal one; using z would overstate
    precision. Fewer than 2 values give (nan, nan): one seed says nothing about seed-to-seed
    spread. All-equal values give (v, v).
    """
    _check_level(level)
    array = _finite_vector(values, "values")
    if array.size < 2:
        return NAN_PAIR
    mean = float(array.mean())
    spread = float(array.std(ddof=1))
    if spread == 0:
        return mean, mean
    half = _scipy_stats.t.ppf(_two_sided_quantile(level), df=array.size - 1) * spread / math.sqrt(array.size)
    return mean - half, mean + half


def _integer_vector(values, name):
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-D sequence, got shape {array.shape}")
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.dtype.kind == "f" and not (np.all(np.isfinite(array)) and np.all(array == np.round(array))):
        raise DataError(f"{name} must hold integers, got non-integer values")
    return array.astype(np.int64)


def sign_flip_p_value(differences):
    """Exact two-sided p-value of the paired sign-flip permutation test.

    `differences[i]` is, for example i, the method's robust outcomes minus the reference's,
    summed over seeds (so it lies in -S..S). Summing per example keeps the pairs of one example
    (one per seed) together: the example, not the (seed, example) pair, is the unit of resampling,
    because the seeds of one example share its difficulty and are not independent.
    Under the null (no difference between the methods) each d_i is as likely to be +|d_i| as
    -|d_i|, independently, so p = P(|sum_i s_i |d_i|| >= |sum_i d_i|) over random signs s_i.

    The distribution of the signed sum is computed exactly by dynamic programming over integer
    sums (cost ~ m * sum |d_i|), not by enumerating 2^m sign vectors; the probabilities are
    dyadic, so floating point holds them exactly until they underflow. Zeros contribute nothing;
    all zeros (or no examples) give 1.0.

    With one seed, d_i is in {-1, 0, 1}: this is the exact McNemar test. McNemar is the sign test
    on the discordant pairs: of the b + c examples where exactly one method is robust, the
    method wins b under Binomial(b + c, 1/2); the signed sum is b - c = 2 b - (b + c), so the
    p-value equals scipy.stats.binomtest(b, b + c, 0.5).pvalue.
    """
    d = _integer_vector(differences, "differences")
    magnitudes = np.abs(d[d != 0])
    if magnitudes.size == 0:
        return 1.0
    total = int(magnitudes.sum())
    # prob[j] = P(the examples given a + sign have |d| summing to j); signed sum = 2 j - total.
    prob = np.zeros(total + 1)
    prob[0] = 1.0
    reach = 0
    for size in magnitudes.tolist():
        shifted = prob[: reach + 1].copy()
        prob[: reach + 1] *= 0.5
        prob[size : size + reach + 1] += 0.5 * shifted
        reach += size
    signed_sums = 2 * np.arange(total + 1) - total
    observed = abs(int(d.sum()))
    return min(1.0, float(prob[np.abs(signed_sums) >= observed - TIE_TOLERANCE].sum()))


def holm(p_values):
    """Holm step-down adjusted p-values, in the input order.

    Comparing several methods with one reference is several tests; Holm controls the chance of
    any false claim (family-wise error) without assuming independence, and is never less powerful
    than Bonferroni. Sorted ascending, the j-th (0-based) of m gets max over i <= j of
    min(1, (m - i) p_(i)). NaN entries (comparisons that could not be made) stay NaN and are not
    counted in m.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise DataError(f"p_values must be a 1-D sequence, got shape {p.shape}")
    valid = ~np.isnan(p)
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise DataError(f"p-values must lie in [0, 1], got {p[valid][(p[valid] < 0) | (p[valid] > 1)].tolist()}")
    adjusted = np.full(p.shape, math.nan)
    indices = np.flatnonzero(valid)
    order = indices[np.argsort(p[indices], kind="stable")]
    m = order.size
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(steps)
    return adjusted.tolist()


def min_detectable_examples(n_examples, n_tests=1, alpha=0.05):
    """Smallest k such that k examples, all won by the method (k wins, 0 losses), reach
    p <= alpha / n_tests in the single-seed exact test, i.e. 2 * 0.5**k <= alpha / n_tests.

    It is the first (most lenient) Holm step, so no smaller difference can ever be declared
    significant: a Table 2 where methods differ by fewer examples cannot rank them. None when
    k would exceed n_examples.
    """
    n_examples, n_tests = _as_int(n_examples, "n_examples"), _as_int(n_tests, "n_tests")
    if n_examples < 0:
        raise DataError(f"n_examples must be >= 0, got {n_examples}")
    if n_tests < 1:
        raise DataError(f"n_tests must be >= 1, got {n_tests}")
    if not 0 < alpha <= 1:
        raise DataError(f"alpha must lie in (0, 1], got {alpha!r}")
    threshold = alpha / n_tests
    for k in range(1, n_examples + 1):
        if 2 * 0.5**k <= threshold:
            return k
    return None


def bootstrap_interval(outcomes_by_seed, statistic=np.mean, draws=2000, level=0.95, seed=0):
    """Two-stage percentile bootstrap of `statistic` over several seeds.

    Seeds and test examples are both sources of variation: each draw resamples seeds with
    replacement, then examples with replacement within each drawn seed, and applies `statistic`
    to the pooled resample (by default the mean of 0/1 outcomes, a proportion). One seed means
    resampling examples only. Deterministic for a given `seed`. No outcomes give (nan, nan).

    `statistic` receives the pooled 1-D array as given (its dtype is kept), so the outcomes may
    also be indices into the caller's own data.
    """
    _check_level(level)
    draws = _as_int(draws, "draws")
    if draws < 1:
        raise DataError(f"draws must be >= 1, got {draws}")
    groups = [np.asarray(outcomes) for outcomes in outcomes_by_seed]
    for index, group in enumerate(groups):
        if group.ndim != 1:
            raise DataError(f"outcomes of seed #{index} must be a 1-D sequence, got shape {group.shape}")
    sizes = [group.size for group in groups]
    if sum(sizes) == 0:
        return NAN_PAIR
    if 0 in sizes:
        # A resample could draw only empty seeds, and a seed without outcomes is usually a bug.
        raise DataError(f"seed #{sizes.index(0)} has no outcomes while others do")
    rng = np.random.default_rng(seed)
    values = np.empty(draws)
    for draw in range(draws):
        picked = rng.integers(len(groups), size=len(groups))  # one seed: always that seed
        pooled = np.concatenate([groups[g][rng.integers(sizes[g], size=sizes[g])] for g in picked])
        values[draw] = statistic(pooled)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _positive_times(values, name):
    values = _finite_vector(values, name)
    if values.size == 0 or (values <= 0).any():
        raise DataError(f"{name} must be a non-empty sequence of positive times")
    return values


def _median_ratios(numerator, denominator, indices):
    """median(numerator[rows]) / median(denominator[rows]) for each row of `indices` (rounds drawn)."""
    top = np.median(numerator[indices], axis=1)
    return top if denominator is None else top / np.median(denominator[indices], axis=1)


def median_ratio_interval(numerator, denominator=None, draws=2000, level=0.95, seed=0):
    """Percentile bootstrap interval of median(numerator) / median(denominator) over paired rounds.

    Table 3 times one step of every method per round, so round r of a method and round r of
    fine-tuning are a pair: a draw resamples rounds with replacement, the same rounds for both,
    which keeps what a round shares (the same batch, timed moments apart). `denominator` None: the interval
    of the median itself (seconds per step). Deterministic for a given `seed`."""
    _check_level(level)
    draws = _as_int(draws, "draws")
    if draws < 1:
        raise DataError(f"draws must be >= 1, got {draws}")
    numerator = _positive_times(numerator, "numerator")
    if denominator is not None:
        denominator = _positive_times(denominator, "denominator")
        if denominator.size != numerator.size:
            raise DataError(f"paired rounds differ in number: {numerator.size} and {denominator.size}")
    indices = np.random.default_rng(seed).integers(numerator.size, size=(draws, numerator.size))
    tail = (1 - level) / 2
    low, high = np.quantile(_median_ratios(numerator, denominator, indices), [tail, 1 - tail])
    return float(low), float(high)


def _check_outcome(value, seed, example_id, name):
    if value not in (0, 1):
        raise DataError(f"{name}: outcome of example {example_id!r} for seed {seed!r} must be 0 or 1, got {value!r}")
    return int(value)


def paired_comparison(method_by_seed, reference_by_seed, draws=2000, level=0.95, seed=0):
    """Compare a method with a reference on the (seed, example) pairs both were attacked on.

    Inputs map seed -> {example_id: 0/1 robust outcome}; pairs present in only one of them are
    ignored. Per example, d_i = sum over its seeds of (method - reference). Returns
    n_pairs, n_examples, wins (examples with d_i > 0), losses (d_i < 0), difference (mean over
    pairs of method - reference, a proportion), p_value (`sign_flip_p_value` of the d_i) and
    interval (percentile bootstrap of the difference resampling examples, so all seeds of an
    example stay together, as in the test).
    """
    sums, counts = {}, {}
    for run_seed in set(method_by_seed) & set(reference_by_seed):
        method, reference = method_by_seed[run_seed], reference_by_seed[run_seed]
        for example_id in set(method) & set(reference):
            diff = (_check_outcome(method[example_id], run_seed, example_id, "method")
                    - _check_outcome(reference[example_id], run_seed, example_id, "reference"))
            sums[example_id] = sums.get(example_id, 0) + diff
            counts[example_id] = counts.get(example_id, 0) + 1
    if not counts:
        raise DataError("method and reference share no (seed, example) pair; check seeds and example ids")
    ids = sorted(counts, key=repr)  # a fixed order, so the bootstrap does not depend on dict order
    d = np.array([sums[i] for i in ids])
    n = np.array([counts[i] for i in ids])
    # Resampling example indices: the difference of a resample is its summed d over its pairs.
    interval = bootstrap_interval([np.arange(len(ids))], lambda idx: d[idx].sum() / n[idx].sum(),
                                  draws=draws, level=level, seed=seed)
    return {
        "n_pairs": int(n.sum()),
        "n_examples": len(ids),
        "wins": int(np.sum(d > 0)),
        "losses": int(np.sum(d < 0)),
        "difference": float(d.sum() / n.sum()),
        "p_value": sign_flip_p_value(d),
        "interval": interval,
    }
