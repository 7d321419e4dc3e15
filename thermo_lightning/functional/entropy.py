"""Differential entropy of a window of weight vectors from k-nearest-neighbour distances.

Two estimators (docs/concepts.md, section 2). Let ``r_{i,m}`` be the Euclidean distance from point
``x_i`` to its ``m``-th nearest other point, ``N`` the number of points and ``d`` the intrinsic
dimension (``D - 1`` for points on a sphere in ``R^D``).

k-NN graph length (the paper's estimator; only differences at fixed ``(N, D, k)`` mean
anything, there are no normalising constants):

.. math::  S = d \\ln\\!\\Big(\\frac{L_k}{N}\\Big) + \\ln N, \\qquad
           L_k = \\sum_{i=1}^{N} \\sum_{m=1}^{k} r_{i,m}

Kozachenko-Leonenko (a consistent estimator of the differential entropy for i.i.d. samples):

.. math::  S = \\psi(N) - \\psi(k) + \\ln V_d + \\frac{d}{N} \\sum_{i=1}^{N} \\ln r_{i,k},
           \\qquad V_d = \\frac{\\pi^{d/2}}{\\Gamma(d/2 + 1)}

Scaling every point by ``c`` shifts both by exactly ``d ln c``. Distances come from
:mod:`thermo_lightning.knn` (centred window, full-precision GEMM); logs and sums are taken in
float64.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from thermo_lightning._validation import check_ks as _check_ks
from thermo_lightning._validation import positive_int
from thermo_lightning._warnings import ThermoWarning, user_stacklevel
from thermo_lightning.knn import KnnBackend, TorchKnn, as_window, resolve_backend
from thermo_lightning.knn.base import raise_nonfinite

__all__ = [
    "ESTIMATORS",
    "DuplicatePointsWarning",
    "EntropyEstimate",
    "EntropyEstimator",
    "KnnGraphEstimator",
    "KozachenkoLeonenkoEstimator",
    "entropy_from_knn_distances",
    "gaussian_entropy",
    "get_estimator",
    "knn_entropy",
    "knn_entropy_estimate",
    "log_unit_ball_volume",
    "register_estimator",
    "uniform_sphere_entropy",
    "uniform_sphere_knn_entropy",
]

ESTIMATORS = ("knn_graph", "kozachenko_leonenko")  #: the built-in estimators' names


class EntropyEstimator(Protocol):
    """An entropy estimator from neighbour distances: a name and one method. A new estimator
    is one class passed to :func:`register_estimator`; every entry point that takes
    ``estimator=`` (functions, :class:`~thermo_lightning.meter.ThermoMeter`, the callback,
    sweeps) then accepts its name."""

    name: str

    def entropies(self, r: Tensor, ks: Sequence[int], dim: int) -> dict[int, float]:
        """``{k: S_k}`` from ``r``: ``(N, K)`` float64 distances to the ``K >= max(ks)``
        nearest other points, sorted, zeros already floored; ``dim`` the intrinsic
        dimension."""
        ...


class KnnGraphEstimator:
    """The paper's k-NN graph length: ``S = d ln(L_k / N) + ln N``."""

    name = "knn_graph"

    def entropies(self, r: Tensor, ks: Sequence[int], dim: int) -> dict[int, float]:
        n = r.shape[0]
        cum = torch.cumsum(r.sum(dim=0), dim=0)
        return {kk: dim * math.log(float(cum[kk - 1]) / n) + math.log(n) for kk in ks}


class KozachenkoLeonenkoEstimator:
    """``S = psi(N) - psi(k) + ln V_d + (d / N) sum_i ln r_{i,k}``."""

    name = "kozachenko_leonenko"

    def entropies(self, r: Tensor, ks: Sequence[int], dim: int) -> dict[int, float]:
        def digamma(v: float) -> float:
            return float(torch.special.digamma(torch.tensor(v, dtype=torch.float64)))

        mean_log = torch.log(r).mean(dim=0)
        base = digamma(float(r.shape[0])) + log_unit_ball_volume(dim)
        return {kk: base - digamma(float(kk)) + dim * float(mean_log[kk - 1]) for kk in ks}


_REGISTRY: dict[str, EntropyEstimator] = {}


def register_estimator(estimator: EntropyEstimator) -> EntropyEstimator:
    """Make ``estimator`` available by its ``name`` (returns it, so it works as a class
    decorator on an instance-less class too when called as ``register_estimator(Cls())``)."""
    name = getattr(estimator, "name", None)
    if not isinstance(name, str) or not callable(getattr(estimator, "entropies", None)):
        raise TypeError("an estimator needs a `name` string and an `entropies(r, ks, dim)` "
                        "method.")
    _REGISTRY[name] = estimator
    return estimator


def get_estimator(estimator: str | EntropyEstimator) -> EntropyEstimator:
    """The registered estimator of that name (or the estimator object itself)."""
    if not isinstance(estimator, str):
        if callable(getattr(estimator, "entropies", None)) and hasattr(estimator, "name"):
            return estimator
        raise ValueError(f"`estimator` must be a name or an EntropyEstimator, got "
                         f"{estimator!r}.")
    if estimator not in _REGISTRY:
        raise ValueError(f"`estimator` must be one of {tuple(_REGISTRY)}, got {estimator!r}.")
    return _REGISTRY[estimator]


register_estimator(KnnGraphEstimator())
register_estimator(KozachenkoLeonenkoEstimator())


class DuplicatePointsWarning(ThermoWarning, RuntimeWarning):
    """Some neighbour distances were zero (duplicate points) and were floored."""


@dataclass(frozen=True)
class EntropyEstimate:
    """Result of a k-NN entropy estimate with the facts needed to judge it.

    Attributes:
        entropy: estimate per ``k``, in the order the ``k`` values were given.
        estimator: ``"knn_graph"`` or ``"kozachenko_leonenko"``.
        dim: intrinsic dimension ``d`` used in the formula.
        n_points: ``N``.
        backend: name of the k-NN backend that found the distances.
        n_zero_distances: neighbour distances (among the ``N * max(k)`` used) that were zero.
        distance_floor: the value zero distances were replaced by, or ``None``.
        n_duplicate_points: points whose nearest neighbour is at distance zero (duplicates).
    """

    entropy: dict[int, float]
    estimator: str
    dim: int
    n_points: int
    backend: str = "precomputed"
    n_zero_distances: int = 0
    distance_floor: float | None = None
    ks: tuple[int, ...] = field(default=())
    n_duplicate_points: int = 0

    def value(self) -> float:
        """The estimate for the first ``k`` given."""
        return self.entropy[self.ks[0] if self.ks else next(iter(self.entropy))]


def log_unit_ball_volume(dim: int) -> float:
    """``ln V_d`` with ``V_d = pi^(d/2) / Gamma(d/2 + 1)``, stable for large ``d``."""
    return 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim + 1.0)


def gaussian_entropy(cov: float | np.ndarray | Tensor, dim: int | None = None) -> float:
    """Differential entropy of a Gaussian, ``0.5 * ln det(2 pi e Sigma)``.

    Args:
        cov: a covariance matrix ``(d, d)``, or a scalar variance (isotropic; then ``dim``).
        dim: dimension for a scalar ``cov``.
    """
    c = np.asarray(cov.detach().cpu() if isinstance(cov, Tensor) else cov, dtype=np.float64)
    if c.ndim == 0:
        if dim is None or dim < 1:
            raise ValueError("`dim` (a positive integer) is required with a scalar `cov`.")
        return 0.5 * dim * math.log(2 * math.pi * math.e * float(c))
    sign, logdet = np.linalg.slogdet(c)
    if sign <= 0:
        raise ValueError("`cov` must be positive definite.")
    return 0.5 * (c.shape[0] * math.log(2 * math.pi * math.e) + logdet)


def uniform_sphere_entropy(dim: int, radius: float = 1.0) -> float:
    """Entropy of the uniform distribution on the sphere of intrinsic dimension ``dim`` (the
    sphere ``S^dim`` in ``R^(dim+1)``) of the given radius: the log of its surface area,
    ``ln(2 pi^((d+1)/2) / Gamma((d+1)/2)) + d ln radius``."""
    if dim < 1:
        raise ValueError(f"`dim` must be a positive integer, got {dim!r}.")
    m = dim + 1
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m) + dim * math.log(
        radius
    )


def _check_estimator(estimator: str | EntropyEstimator) -> None:
    get_estimator(estimator)


def _check_dim(dim: int | None, n_features: int) -> int:
    if dim is None:
        return n_features
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise ValueError(
            f"`dim` must be a positive integer (the intrinsic dimension; D - 1 for points on a "
            f"sphere in R^D), got {dim!r}."
        )
    return int(dim)


def entropy_from_knn_distances(
    distances: Tensor,
    k: int | Sequence[int],
    *,
    estimator: str | EntropyEstimator = "knn_graph",
    dim: int,
    warn: bool = True,
) -> EntropyEstimate:
    """Entropy estimate(s) from precomputed neighbour distances.

    Args:
        distances: ``(N, K)`` Euclidean distances to the ``K >= max(k)`` nearest other points,
            sorted ascending along dim 1.
        k: one neighbour count or a sequence of them.
        estimator: ``"knn_graph"`` or ``"kozachenko_leonenko"`` (formulas in the module doc).
        dim: intrinsic dimension ``d``.
        warn: emit a :class:`DuplicatePointsWarning` when zero distances had to be floored.

    Returns:
        An :class:`EntropyEstimate` (``backend="precomputed"``).
    """
    _check_estimator(estimator)
    if distances.ndim != 2:
        raise ValueError(f"`distances` must be (N, K), got shape {tuple(distances.shape)}.")
    n, kmax_avail = distances.shape
    ks = _check_ks(k, n)
    if max(ks) > kmax_avail:
        raise ValueError(f"`k`={max(ks)} needs at least that many distance columns, got "
                         f"{kmax_avail}.")
    d = _check_dim(dim, 1)
    r = distances[:, : max(ks)].detach().to(torch.float64)
    zero = r <= 0
    n_zero = int(zero.sum())
    n_dup = int(zero[:, 0].sum())
    floor = None
    if n_zero:
        positive = r[~zero]
        tiny = float(torch.finfo(torch.float64).tiny)
        floor = float(positive.min()) if positive.numel() else tiny
        r = torch.where(zero, torch.full_like(r, floor), r)
        if warn:
            warnings.warn(
                f"{n_zero} of {r.numel()} neighbour distances are zero (duplicate points); they "
                f"were floored at {floor:.3g}. Duplicates bias the entropy downwards: thin the "
                "window (a larger stride) or drop repeated snapshots.",
                DuplicatePointsWarning,
                stacklevel=user_stacklevel(),
            )
    impl = get_estimator(estimator)
    out = impl.entropies(r, ks, d)
    return EntropyEstimate(
        entropy=out,
        estimator=impl.name,
        dim=d,
        n_points=n,
        n_zero_distances=n_zero,
        distance_floor=floor,
        ks=ks,
        n_duplicate_points=n_dup,
    )


def knn_entropy_estimate(
    x: Tensor | np.ndarray,
    k: int | Sequence[int] = 50,
    *,
    estimator: str | EntropyEstimator = "knn_graph",
    dim: int | None = None,
    backend: str | KnnBackend = "auto",
    center: bool = True,
    dtype: torch.dtype | None = None,
    warn: bool = True,
) -> EntropyEstimate:
    """Like :func:`knn_entropy` but returns an :class:`EntropyEstimate` with the backend used
    and the number of zero (floored) distances; ``warn=False`` leaves the duplicate warning to
    the caller."""
    _check_estimator(estimator)
    xw = as_window(x, check_finite=False)
    n, n_features = xw.shape
    ks = _check_ks(k, n)
    d = _check_dim(dim, n_features)
    if dtype is not None and dtype not in (torch.float32, torch.float64):
        raise ValueError(f"`dtype` must be None, torch.float32 or torch.float64, got {dtype}.")
    cdtype = dtype or (torch.float64 if xw.dtype == torch.float64 else torch.float32)
    knn = resolve_backend(backend, n, cdtype)
    if not isinstance(knn, TorchKnn):  # the torch backend checks in its own pass
        raise_nonfinite(xw)
    dist = knn.search(xw, max(ks), center=center, dtype=cdtype)
    est = entropy_from_knn_distances(dist, ks, estimator=estimator, dim=d, warn=warn)
    return replace(est, backend=knn.name)


def knn_entropy(
    x: Tensor | np.ndarray,
    k: int | Sequence[int] = 50,
    *,
    estimator: str | EntropyEstimator = "knn_graph",
    dim: int | None = None,
    backend: str | KnnBackend = "auto",
    center: bool = True,
    dtype: torch.dtype | None = None,
) -> float | dict[int, float]:
    """k-NN estimate of the differential entropy of the points ``x``.

    Args:
        x: the window, ``(N, D)`` tensor or array (``N`` points in ``R^D``), finite values.
        k: neighbour count ``1 <= k < N``, or a sequence of them (then one value per ``k``).
            The paper uses ``k = 50``.
        estimator: ``"knn_graph"`` (the paper: ``d ln(L_k / N) + ln N``) or
            ``"kozachenko_leonenko"`` (``psi(N) - psi(k) + ln V_d + d * mean ln r_k``).
        dim: intrinsic dimension ``d``; defaults to ``D``. Pass ``D - 1`` for points on a
            sphere.
        backend: ``"auto"``, ``"torch"``, ``"faiss"`` or a
            :class:`~thermo_lightning.knn.KnnBackend`.
        center: subtract the window mean before computing distances (keeps iterates that are
            ``1e-5`` apart on a unit sphere exact in float32). Distances are Euclidean and
            computed with TF32 off.
        dtype: ``torch.float32`` or ``torch.float64`` (the slow reference path); default
            float64 for float64 input, else float32.

    Returns:
        A float, or ``{k: S_k}`` when ``k`` is a sequence.

    Raises:
        ValueError: wrong shape, ``N < 2``, NaN/Inf, ``k >= N``, unknown estimator/backend.

    Warns:
        DuplicatePointsWarning: zero distances (duplicate points) were floored at the
            smallest positive neighbour distance.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2000, 2, generator=g, dtype=torch.float64)
        >>> s = knn_entropy(x, k=5, estimator="kozachenko_leonenko")
        >>> round(abs(s - gaussian_entropy(1.0, dim=2)), 1)  # 0.5 ln((2 pi e)^2) = 2.84
        0.0
    """
    est = knn_entropy_estimate(
        x, k, estimator=estimator, dim=dim, backend=backend, center=center, dtype=dtype
    )
    if isinstance(k, int | np.integer) and not isinstance(k, bool):
        return est.entropy[int(k)]
    return dict(est.entropy)


def _uniform_sphere_sq_distances(n: int, ambient_dim: int, gen: torch.Generator) -> Tensor:
    """Squared distances ``(n, n)`` between ``n`` uniform points on the unit sphere in
    ``R^ambient_dim``, float64.

    For ``ambient_dim`` much larger than ``n`` the points are never formed: their Gram matrix
    is a normalised Wishart matrix ``W = L L^T`` sampled by Bartlett's decomposition
    (``L_ii^2 ~ chi^2(D - i)``, ``L_ij ~ N(0, 1)`` below the diagonal), ``O(n^3)`` whatever
    ``D``.
    """
    if ambient_dim <= 4 * n:
        x = torch.randn(n, ambient_dim, generator=gen, dtype=torch.float64)
        x = x / x.norm(dim=1, keepdim=True)
        gram = x @ x.T
    else:
        lower = torch.randn(n, n, generator=gen, dtype=torch.float64).tril(-1)
        dof = torch.arange(ambient_dim, ambient_dim - n, -1, dtype=torch.float64)
        sub_seed = int(torch.randint(2**62, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sub_seed)
            chi2 = torch.distributions.Chi2(dof).sample()
        lower += torch.diag(chi2.sqrt())
        w = lower @ lower.T
        inv = w.diagonal().rsqrt()
        gram = w * inv[:, None] * inv[None, :]
    return (2.0 - 2.0 * gram).clamp_min_(0.0)


def uniform_sphere_knn_entropy(
    n_points: int,
    ambient_dim: int,
    k: int | Sequence[int] = 50,
    *,
    estimator: str | EntropyEstimator = "knn_graph",
    dim: int | None = None,
    radius: float = 1.0,
    seed: int = 0,
    repeats: int = 3,
) -> float | dict[int, float]:
    """What a k-NN estimator gives for ``n_points`` uniform points on the sphere of radius
    ``radius`` in ``R^ambient_dim``: the "maximum entropy" reference at the same
    ``(N, D, k)`` as a window of weights (high learning rates saturate there).

    Uses the exact distribution of the points' pairwise distances (see
    :func:`_uniform_sphere_sq_distances`), so ``ambient_dim`` may be millions. Averaged over
    ``repeats`` draws.

    Args:
        dim: intrinsic dimension in the formula; default ``ambient_dim - 1``.
    """
    _check_estimator(estimator)
    ks = _check_ks(k, n_points)
    d = _check_dim(dim, ambient_dim - 1)
    if ambient_dim < 2 or not radius > 0:
        raise ValueError("`ambient_dim` must be >= 2 and `radius` positive.")
    gen = torch.Generator().manual_seed(seed)
    from thermo_lightning.knn.torch_backend import knn_from_sq_distances

    values: dict[int, list[float]] = {kk: [] for kk in ks}
    for _ in range(positive_int(repeats, "repeats")):
        sq = _uniform_sphere_sq_distances(n_points, ambient_dim, gen) * radius**2
        dist = knn_from_sq_distances(sq, max(ks))
        est = entropy_from_knn_distances(dist, ks, estimator=estimator, dim=d, warn=False)
        for kk in ks:
            values[kk].append(est.entropy[kk])
    out = {kk: float(np.mean(v)) for kk, v in values.items()}
    if isinstance(k, int | np.integer) and not isinstance(k, bool):
        return out[int(k)]
    return out
