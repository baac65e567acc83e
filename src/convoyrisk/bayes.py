"""The prior, Empirical Bayes posterior, intervals and classes of segment rates.

A segment's rate ``λ`` (incident episodes per km per 30 days) gets a Gamma
prior whose mean ``m`` comes from the *regional* rate around it and whose
shape ``1/k`` comes from the overdispersion of the raw counts about that
regional rate (negative-binomial marginal likelihood). The local evidence is
the kernel estimate turned into a Poisson-equivalent count ``n`` over an
exposure ``e`` (km × 30 days) with the same mean and variance. The posterior
is ``Gamma(1/k + n, 1/(k·m) + e)``.

- The regional rate is a ratio of two Gaussian-smoothed maps: episodes over
  road exposure (km × 30 days), so it fades with distance from the data and
  does not depend on roads that carry no data (empty connected components are
  left out of both maps).
- A user-supplied base rate (areas with a ``rate``) is pooled into it with a
  stated weight; without one, a component with no data gets a Jeffreys floor
  ``0.5 / exposure`` of that component only.
- Classes come from posterior probabilities: a segment is "severe" when
  ``P(λ > t₃) ≥ confidence``, … "low" when ``P(λ < t₁) ≥ confidence``, and
  :data:`NO_DATA_CLASS` otherwise, or where neither its own data nor an
  informed prior speak for it.

Formulas and references: ``docs/risk-model.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage, optimize, special, stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

RISK_CLASSES = ("low", "elevated", "high", "severe")
"""Names of the risk classes, lowest first."""

NO_DATA_CLASS = "insufficient data"
"""Class of a segment whose data cannot tell it from the prior, nor the prior from nothing."""

K_RANGE = (1e-2, 1e2)
"""Overdispersion ``k`` is estimated within this range."""


def decay_moments(half_life_days: float, window_days: float) -> tuple[float, float]:
    """``T₁ = ∫₀^W d(t) dt`` and ``T₂ = ∫₀^W d(t)² dt`` for ``d(t) = 2^(−t/H)``, in days.

    A decayed count ``Σ d(age)`` of a Poisson process of rate ``λ`` per day has
    mean ``λ·T₁`` and variance ``λ·T₂``: it is worth a Poisson count of
    ``Σ d · T₁/T₂`` over an effective exposure ``T₁²/T₂`` days.

    Examples
    --------
    >>> t1, t2 = decay_moments(90.0, 1e9)
    >>> round(t1, 3), round(t1 / t2, 6)
    (129.843, 2.0)
    """
    rate = math.log(2.0) / half_life_days
    t1 = (1.0 - math.exp(-rate * window_days)) / rate
    t2 = (1.0 - math.exp(-2.0 * rate * window_days)) / (2.0 * rate)
    return t1, t2


@dataclass
class Smoother:
    """Gaussian smoothing of point values on a grid, sampled back at points.

    Built once for the segments' midpoints; :meth:`smooth` sums values at
    points with a Gaussian kernel of standard deviation ``sigma_m`` (the grid
    cell is ``sigma_m / 3``), normalised to 1 at its centre, so a smoothed
    count reads as "about this many within σ".
    """

    xy: FloatArray
    sigma_m: float

    def __post_init__(self) -> None:
        """Lay the grid over the points."""
        self.cell = self.sigma_m / 3.0
        lo = self.xy.min(axis=0) if len(self.xy) else np.zeros(2)
        # cells on a fixed lattice (multiples of the cell size): roads added far away
        # extend the grid without moving the cells that hold the others
        self.origin = np.floor((lo - 4.0 * self.sigma_m) / self.cell) * self.cell
        ij = np.floor((self.xy - self.origin) / self.cell).astype(np.int64)
        hi = self.xy.max(axis=0) if len(self.xy) else np.zeros(2)
        self.shape = (
            int((hi[0] - self.origin[0] + 4.0 * self.sigma_m) / self.cell) + 2,
            int((hi[1] - self.origin[1] + 4.0 * self.sigma_m) / self.cell) + 2,
        )
        self.flat = ij[:, 0] * self.shape[1] + ij[:, 1]
        # fractional grid coordinates for bilinear sampling
        self.frac = (self.xy - self.origin) / self.cell - 0.5
        self._memo: list[tuple[FloatArray, FloatArray]] = []  # (values, result), the last two

    def smooth(self, values: npt.ArrayLike) -> FloatArray:
        """Gaussian sum of `values` (one per point) at every point.

        The last two results are kept: smoothing the same values again (the
        road exposure, at every pass of a re-allocation) costs a comparison.
        """
        values = np.asarray(values, dtype=float)
        for seen, result in self._memo:
            if np.array_equal(seen, values):
                self._memo = [m for m in self._memo if m[0] is not seen] + [(seen, result)]
                return result.copy()
        grid = np.bincount(
            self.flat,
            weights=values,
            minlength=self.shape[0] * self.shape[1],
        ).reshape(self.shape)
        sig = self.sigma_m / self.cell
        # gaussian_filter normalises to sum 1; rescale to 1 at the centre
        out = ndimage.gaussian_filter(grid, sig, mode="constant", truncate=4.0)
        out *= 2.0 * math.pi * sig * sig
        sampled = ndimage.map_coordinates(out, self.frac.T, order=1, mode="nearest")
        result = np.asarray(np.maximum(sampled, 0.0), dtype=float)
        self._memo = [*self._memo[-1:], (values.copy(), result.copy())]
        return result


def prior_means(
    mass: FloatArray,
    exposure: FloatArray,
    smoother: Smoother,
    component: IntArray,
    *,
    base_rate: FloatArray | None = None,
    base_weight: float = 1.0,
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Prior mean rate of each segment, the regional evidence behind it, and whether informed.

    Parameters
    ----------
    mass
        Decayed episodes per segment (smoothed or raw: only sums at the scale
        of `smoother` matter).
    exposure
        Road exposure per segment, km × 30 days (length × decayed window).
    smoother
        Gaussian smoother of the segments' midpoints.
    component
        Connected component of each segment. Components without any mass are
        left out of the regional maps: adding empty roads changes nothing.
    base_rate
        A user's regional base rate per segment (NaN where none), episodes per
        km per 30 days.
    base_weight
        Weight of the base rate as a multiple of the regional exposure.

    Returns
    -------
    (m, regional_episodes, informed)
        ``m`` per km per 30 days; ``regional_episodes`` the smoothed episode
        count around the segment (about the count within σ); ``informed``
        where the prior rests on data (at least one episode within about σ)
        or on a base rate.
    """
    n = len(mass)
    comp_mass = np.bincount(component, weights=mass)
    live = comp_mass[component] > 0
    s_mass = smoother.smooth(np.where(live, mass, 0.0))
    s_exp = smoother.smooth(np.where(live, exposure, 0.0))
    comp_exp = np.bincount(component, weights=exposure)
    floor = 0.5 / np.maximum(comp_exp[component], 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        regional = np.where(s_exp > 0, s_mass / s_exp, np.nan)
    m = np.where(live & np.isfinite(regional), regional, np.nan)
    has_base = np.zeros(n, dtype=bool)
    if base_rate is not None:
        has_base = np.isfinite(base_rate)
        kappa = base_weight * np.where(live, s_exp, 0.0)
        pooled = np.where(
            kappa > 0,
            (np.where(live, s_mass, 0.0) + kappa * np.nan_to_num(base_rate))
            / np.maximum(np.where(live, s_exp, 0.0) + kappa, 1e-300),
            np.nan_to_num(base_rate),
        )
    m = np.where(np.isfinite(m), np.maximum(m, floor), floor)
    if base_rate is not None:
        m = np.where(has_base, np.maximum(pooled, 1e-12), m)
    informed = has_base | (live & (s_mass >= 1.0))
    return m, s_mass, informed


def nb_loglik(k: float, y: FloatArray, mu: FloatArray) -> float:
    """Negative-binomial log-likelihood of counts `y` with means `mu` and overdispersion `k`.

    ``Var = μ + k·μ²``; `y` may be fractional (the Gamma function extends it).

    Examples
    --------
    >>> from scipy import stats
    >>> y, mu, k = np.array([0.0, 3.0]), np.array([1.0, 2.0]), 0.5
    >>> r = 1 / k
    >>> ref = stats.nbinom.logpmf(y, r, r / (r + mu)).sum()
    >>> bool(abs(nb_loglik(k, y, mu) - ref) < 1e-9)
    True
    """
    r = 1.0 / k
    return float(
        np.sum(
            special.gammaln(y + r)
            - special.gammaln(r)
            - special.gammaln(y + 1.0)
            + r * np.log(r / (r + mu))
            + y * np.log(np.where(mu > 0, mu, 1.0) / (r + mu))
        )
    )


def fit_overdispersion(y: FloatArray, mu: FloatArray, *, prior_sd: float = 1.5) -> float:
    """Overdispersion ``k`` of counts about their prior means, by penalised NB likelihood.

    Maximises the negative-binomial marginal likelihood of the raw counts `y`
    (Poisson-equivalent, per segment) given means `mu`, with a weak log-normal
    penalty on ``k`` (median 1, sd `prior_sd` on the log scale) so that a
    handful of incidents gives a stable answer; many incidents overrule it.
    """
    keep = mu > 0
    y, mu = y[keep], mu[keep]
    if len(y) == 0 or y.sum() <= 0:
        return 1.0
    # :func:`nb_loglik` term by term, with what does not depend on k computed once: a
    # zero count adds only r·log(r / (r + μ)) (a country's bins are mostly zeros, and
    # the fit runs once per re-allocation pass)
    pos = y > 0
    yp, mp = y[pos], mu[pos]
    n_pos, n_all = len(yp), len(y)
    fixed = float(np.sum(special.gammaln(yp + 1.0)))
    log_mp = np.log(mp)

    def neg(log_k: float) -> float:
        r = math.exp(-log_k)
        loglik = (
            float(np.sum(special.gammaln(yp + r)))
            - n_pos * float(special.gammaln(r))
            - fixed
            + r * (n_all * math.log(r) - float(np.sum(np.log(r + mu))))
            + float(np.sum(yp * (log_mp - np.log(r + mp))))
        )
        return -loglik + 0.5 * (log_k / prior_sd) ** 2

    lo, hi = math.log(K_RANGE[0]), math.log(K_RANGE[1])
    res = optimize.minimize_scalar(neg, bounds=(lo, hi), method="bounded")
    return float(math.exp(res.x))


@dataclass
class Posterior:
    """Gamma posterior of each segment's rate: ``shape`` and ``rate`` (per km per 30 days)."""

    shape: FloatArray
    rate: FloatArray

    @property
    def mean(self) -> FloatArray:
        """Posterior mean, episodes per km per 30 days."""
        return np.asarray(self.shape / self.rate, dtype=float)

    def quantile(self, q: float) -> FloatArray:
        """Posterior quantile `q` of every segment's rate."""
        return np.asarray(special.gammaincinv(self.shape, q) / self.rate, dtype=float)

    def p_exceed(self, threshold: float) -> FloatArray:
        """Posterior probability that the rate exceeds `threshold`."""
        return np.asarray(special.gammaincc(self.shape, threshold * self.rate), dtype=float)

    def data_weight(self, exposure: FloatArray) -> FloatArray:
        """Share of the posterior's precision that comes from the segment's own data."""
        return np.asarray(exposure / self.rate, dtype=float)


def posterior(n: FloatArray, e: FloatArray, m: FloatArray, k: float) -> Posterior:
    """Gamma posterior ``Gamma(1/k + n, 1/(k·m) + e)``.

    Examples
    --------
    Hauer's Empirical Bayes mean ``w·m + (1 − w)·n/e`` with ``w = 1/(1 + k·m·e)``:

    >>> p = posterior(np.array([4.0]), np.array([2.0]), np.array([1.0]), 0.5)
    >>> w = 1 / (1 + 0.5 * 1.0 * 2.0)
    >>> bool(abs(p.mean[0] - (w * 1.0 + (1 - w) * 4.0 / 2.0)) < 1e-12)
    True
    """
    alpha = 1.0 / k
    return Posterior(shape=alpha + n, rate=alpha / m + e)


def classify(rate: npt.ArrayLike, thresholds: tuple[float, ...]) -> npt.NDArray[np.object_]:
    """Risk class names for rates, cut at `thresholds` (point values, no uncertainty).

    Examples
    --------
    >>> classify(np.array([0.0, 0.01, 0.05, 1.0]), (0.003, 0.015, 0.06)).tolist()
    ['low', 'elevated', 'high', 'severe']
    """
    idx = np.searchsorted(np.asarray(thresholds), np.asarray(rate, dtype=float), side="right")
    return np.asarray(RISK_CLASSES, dtype=object)[idx]


def classify_posterior(
    post: Posterior,
    thresholds: tuple[float, ...],
    *,
    confidence: float,
    decided: BoolArray,
) -> tuple[npt.NDArray[np.object_], FloatArray]:
    """Classes from posterior exceedance probabilities, and those probabilities.

    A segment is in the highest class whose threshold its rate exceeds with
    probability at least `confidence`; "low" when its rate is below the first
    threshold with that probability; :data:`NO_DATA_CLASS` otherwise, and
    wherever `decided` is False (no data nor informed prior behind it).

    Returns
    -------
    (classes, p_exceed)
        ``p_exceed`` has one column per threshold.
    """
    p = np.column_stack([post.p_exceed(t) for t in thresholds])
    level = (p >= confidence).sum(axis=1)
    names = np.asarray(RISK_CLASSES, dtype=object)[level]
    sure_low = (1.0 - p[:, 0]) >= confidence
    out = np.where((level > 0) | sure_low, names, NO_DATA_CLASS)
    out = np.where(decided, out, NO_DATA_CLASS)
    return np.asarray(out, dtype=object), p


def poisson_upper(count: float, exposure: float, level: float) -> float:
    """Exact one-sided upper bound of a Poisson rate (Garwood), for reports.

    Examples
    --------
    >>> round(poisson_upper(0, 1.0, 0.95), 4)
    2.9957
    """
    return float(stats.chi2.ppf(level, 2 * (count + 1)) / 2.0 / exposure)
