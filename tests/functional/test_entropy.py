"""k-NN entropy: analytic references, exact invariances, the fp64 path, and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from tests.helpers.runif import RunIf
from thermo_lightning.functional import (
    DuplicatePointsWarning,
    gaussian_entropy,
    knn_entropy,
    knn_entropy_estimate,
    uniform_sphere_entropy,
)
from thermo_lightning.functional.entropy import entropy_from_knn_distances
from thermo_lightning.knn import knn_distances

ESTIMATORS = ["knn_graph", "kozachenko_leonenko"]


def _random_gaussian(d: int, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    cov = a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    return x, cov.numpy()


def _reference_entropy(x: torch.Tensor, k: int, estimator: str, dim: int) -> float:
    """Slow, obviously correct reference: fp64 brute-force distances, loops, scipy-free."""
    x = x.to(torch.float64)
    n = x.shape[0]
    dist = torch.cdist(x, x)  # fp64 on uncentred data is exact enough for these tests
    total, logs = 0.0, 0.0
    for i in range(n):
        row = torch.cat([dist[i, :i], dist[i, i + 1 :]]).sort().values
        total += float(row[:k].sum())
        logs += math.log(float(row[k - 1]))
    if estimator == "knn_graph":
        return dim * math.log(total / n) + math.log(n)
    log_vd = 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim + 1)
    digamma = torch.special.digamma
    psi_n = float(digamma(torch.tensor(float(n), dtype=torch.float64)))
    psi_k = float(digamma(torch.tensor(float(k), dtype=torch.float64)))
    return psi_n - psi_k + log_vd + dim * logs / n


@pytest.mark.parametrize("d", range(1, 11))
def test_kozachenko_leonenko_matches_gaussian_entropy(d: int) -> None:
    # Tolerance from a measurement (python benchmarks/kl_gaussian_accuracy.py: 30 seeds,
    # N=2000, k=1, random covariances): |bias| + 4 std ranged from 0.135 (d=2) to 0.396
    # (d=10), largest single error 0.277. 0.17 + 0.03 d lies above |bias| + 4 std for every d
    # measured, and still fails for a wrong constant (psi terms, ln V_d), which shifts S by
    # more than 1.
    x, cov = _random_gaussian(d, 2000, seed=100 + d)
    s = knn_entropy(x, k=1, estimator="kozachenko_leonenko")
    assert abs(s - gaussian_entropy(cov)) < 0.17 + 0.03 * d


@pytest.mark.parametrize("d", [1, 2, 3])
def test_kozachenko_leonenko_on_sphere_matches_uniform_entropy(d: int) -> None:
    # Uniform points on S^d with the intrinsic dimension d: chord distances approximate
    # geodesic ones at the k-NN scale, so KL estimates ln(area of S^d).
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4000, d + 1, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    s = knn_entropy(x, k=5, estimator="kozachenko_leonenko", dim=d)
    assert s == pytest.approx(uniform_sphere_entropy(d), abs=0.05)


def test_uniform_sphere_entropy_closed_forms() -> None:
    assert uniform_sphere_entropy(1) == pytest.approx(math.log(2 * math.pi))
    assert uniform_sphere_entropy(2) == pytest.approx(math.log(4 * math.pi))
    assert uniform_sphere_entropy(2, radius=3.0) == pytest.approx(math.log(4 * math.pi * 9))


def test_gaussian_entropy_scalar_and_matrix_agree() -> None:
    assert gaussian_entropy(2.0, dim=3) == pytest.approx(gaussian_entropy(2.0 * np.eye(3)))
    with pytest.raises(ValueError, match="dim"):
        gaussian_entropy(1.0)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("c", [2.0, 1e-3, 37.5])
def test_scaling_shifts_entropy_by_dim_log_c(estimator: str, c: float) -> None:
    x, _ = _random_gaussian(6, 300, seed=1)
    dim = 5  # any intrinsic dimension: the shift is dim * ln c
    base = knn_entropy(x, k=[1, 7], estimator=estimator, dim=dim)
    scaled = knn_entropy(c * x, k=[1, 7], estimator=estimator, dim=dim)
    for k in (1, 7):
        assert scaled[k] - base[k] == pytest.approx(dim * math.log(c), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_permutation_invariance(estimator: str, dtype: torch.dtype) -> None:
    x, _ = _random_gaussian(8, 400, seed=2)
    x = x.to(dtype)
    perm = torch.randperm(400, generator=torch.Generator().manual_seed(3))
    a = knn_entropy(x, k=5, estimator=estimator)
    b = knn_entropy(x[perm], k=5, estimator=estimator)
    # float32 GEMMs sum in a different order after a permutation
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert b == pytest.approx(a, rel=tol, abs=tol)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_matches_slow_reference(estimator: str) -> None:
    x, _ = _random_gaussian(4, 150, seed=4)
    for k in (1, 3, 10):
        fast = knn_entropy(x, k=k, estimator=estimator, dim=3)
        assert fast == pytest.approx(_reference_entropy(x, k, estimator, 3), rel=1e-10)


def test_sequence_k_returns_one_value_per_k_in_order() -> None:
    x, _ = _random_gaussian(3, 200, seed=5)
    many = knn_entropy(x, k=[10, 1, 5])
    assert list(many) == [10, 1, 5]
    for k, v in many.items():
        assert v == pytest.approx(knn_entropy(x, k=k), rel=1e-12)


def test_numpy_and_tensor_inputs_agree() -> None:
    x, _ = _random_gaussian(3, 100, seed=6)
    assert knn_entropy(x.numpy(), k=3) == pytest.approx(knn_entropy(x, k=3), rel=1e-12)


def _tight_cloud(n: int, d: int, spread: float, seed: int) -> torch.Tensor:
    """n float32 points within ``spread`` of a random unit vector in R^d."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u = u / u.norm()
    return (u + spread * torch.randn(n, d, generator=g, dtype=torch.float64) / math.sqrt(d)).float()


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_tight_cloud_float32_equals_float64_reference(estimator: str) -> None:
    # Points 1e-5 apart on a unit sphere in D = 10^4, as consecutive SGD iterates are.
    d = 10_000
    x = _tight_cloud(500, d, 1e-5, seed=8)
    ref = knn_entropy(x.double(), k=20, estimator=estimator, dim=d - 1)  # same points, fp64
    got = knn_entropy(x, k=20, estimator=estimator, dim=d - 1)
    assert got == pytest.approx(ref, abs=1e-3)  # measured: 1.3e-5 (N=1000, k=50)
    r64 = knn_distances(x.double(), 20)
    r32 = knn_distances(x, 20).double()
    assert float(((r32 - r64) / r64).abs().max()) < 1e-5  # measured: 1.2e-7
    # Without centring the float32 GEMM loses every digit (docs/concepts.md, 'Centring and
    # precision').
    with warnings.catch_warnings():  # most uncentred distances collapse to zero
        warnings.simplefilter("ignore", DuplicatePointsWarning)
        bad = knn_entropy(x, k=20, estimator=estimator, dim=d - 1, center=False)
    assert abs(bad - ref) > 1.0


@RunIf(faiss=True)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_faiss_matches_torch(estimator: str) -> None:
    x, _ = _random_gaussian(20, 600, seed=9)
    x = x.float()
    a = knn_entropy(x, k=[1, 5, 50], estimator=estimator, backend="torch")
    b = knn_entropy(x, k=[1, 5, 50], estimator=estimator, backend="faiss")
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-5)


@RunIf(faiss=True)
def test_faiss_tight_cloud_equals_float64_reference() -> None:
    d = 10_000
    x = _tight_cloud(300, d, 1e-5, seed=10)
    ref = knn_entropy(x.double(), k=10, dim=d - 1)
    assert knn_entropy(x, k=10, dim=d - 1, backend="faiss") == pytest.approx(ref, abs=1e-2)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_duplicate_points_give_finite_result_and_warning(estimator: str) -> None:
    x, _ = _random_gaussian(3, 100, seed=11)
    x = torch.cat([x, x[:10]])  # ten exact duplicates
    with pytest.warns(DuplicatePointsWarning, match="20 of"):
        est = knn_entropy_estimate(x, k=3, estimator=estimator)
    assert math.isfinite(est.value())
    assert est.n_zero_distances == 20
    assert est.distance_floor is not None and est.distance_floor > 0


def test_all_identical_points_stay_finite() -> None:
    x = torch.ones(50, 4)
    with pytest.warns(DuplicatePointsWarning):
        s = knn_entropy(x, k=2, estimator="kozachenko_leonenko")
    assert math.isfinite(s)


def test_estimate_reports_backend_and_sizes() -> None:
    x, _ = _random_gaussian(3, 64, seed=12)
    est = knn_entropy_estimate(x, k=[2, 4], backend="torch", dim=2)
    assert (est.backend, est.dim, est.n_points, est.ks) == ("torch", 2, 64, (2, 4))
    assert est.n_zero_distances == 0 and est.distance_floor is None


def test_entropy_from_distances_matches_full_call() -> None:
    x, _ = _random_gaussian(5, 120, seed=13)
    dist = knn_distances(x, 8)
    est = entropy_from_knn_distances(dist, [1, 8], estimator="kozachenko_leonenko", dim=5)
    assert est.entropy[8] == pytest.approx(
        knn_entropy(x, k=8, estimator="kozachenko_leonenko"), rel=1e-12
    )
    with pytest.raises(ValueError, match="`k`"):
        entropy_from_knn_distances(dist, 9, dim=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 10}, "`k`"),  # k >= N
        ({"k": 0}, "`k`"),
        ({"k": 2.5}, "`k`"),
        ({"k": [3, 3]}, "`k`"),
        ({"k": []}, "`k`"),
        ({"estimator": "kl"}, "`estimator`"),
        ({"backend": "annoy"}, "`backend`"),
        ({"dim": 0}, "`dim`"),
        ({"dtype": torch.float16}, "`dtype`"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict, match: str) -> None:
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match=match):
        knn_entropy(x, **{"k": 3, **kwargs})


@pytest.mark.parametrize(
    "x",
    [torch.randn(1, 3), torch.randn(20), torch.randn(4, 5, 6), torch.randn(5, 0)],
    ids=["N<2", "1-D", "3-D", "D=0"],
)
def test_bad_shapes_raise(x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="`x`"):
        knn_entropy(x, k=1)


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=RunIf(faiss=True))])
@pytest.mark.parametrize("center", [True, False])
def test_nan_raises_and_counts_rows(backend: str, center: bool) -> None:
    # the torch backend folds this check into its distance pass; the result must not change
    x = torch.randn(300, 3)
    x[4, 1] = float("nan")
    x[7, 0] = float("inf")
    x[299, 2] = float("-inf")
    with pytest.raises(ValueError, match="3 of 300 rows"):
        knn_entropy(x, k=3, backend=backend, center=center)


def test_finite_values_whose_squares_overflow_float32_are_scaled_first() -> None:
    # |x| ~ 1e30: squared distances (1e60) would overflow float32; the torch backend scales
    # the window by a power of two first (exact), so float32 agrees with float64
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0)) * 1e30
    assert knn_entropy(x, k=3) == pytest.approx(knn_entropy(x.double(), k=3), abs=1e-4)
