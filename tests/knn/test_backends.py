"""k-NN backends: brute-force reference, blocking/chunking invariance, parity, memory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.helpers.runif import RunIf
from thermo_lightning.knn import (
    FaissKnn,
    TorchKnn,
    full_precision_matmul,
    knn_distances,
    pairwise_sq_distances,
    resolve_backend,
)
from thermo_lightning.knn.faiss_backend import _drop_self


def _brute_force(x: torch.Tensor, k: int) -> torch.Tensor:
    x = x.double()
    out = []
    for i in range(x.shape[0]):
        d = ((x - x[i]) ** 2).sum(dim=1).sqrt()
        d[i] = float("inf")
        out.append(d.sort().values[:k])
    return torch.stack(out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_backend_matches_brute_force(gen: torch.Generator, dtype: torch.dtype) -> None:
    x = torch.randn(120, 17, generator=gen, dtype=torch.float64)
    got = TorchKnn().search(x.to(dtype), 6, dtype=dtype)
    assert got.dtype == dtype and got.shape == (120, 6)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got.double(), _brute_force(x.to(dtype), 6), rtol=tol, atol=tol)


def test_column_chunks_and_row_blocks_do_not_change_distances(gen: torch.Generator) -> None:
    x = torch.randn(90, 50, generator=gen, dtype=torch.float64)
    ref = TorchKnn().search(x, 5, dtype=torch.float64)
    for knn in (TorchKnn(chunk_size=7), TorchKnn(block_bytes=8 * 90 * 13),
                TorchKnn(chunk_size=1, block_bytes=1)):
        torch.testing.assert_close(knn.search(x, 5, dtype=torch.float64), ref, rtol=1e-12,
                                   atol=1e-12)


def test_pairwise_sq_distances_rows_and_centring(gen: torch.Generator) -> None:
    x = torch.randn(30, 8, generator=gen, dtype=torch.float64) + 100.0
    full = pairwise_sq_distances(x, dtype=torch.float64)
    torch.testing.assert_close(full, torch.cdist(x - 100.0, x - 100.0) ** 2, rtol=1e-9,
                               atol=1e-9)
    part = pairwise_sq_distances(x, dtype=torch.float64, rows=(10, 20))
    torch.testing.assert_close(part, full[10:20])
    # the sum over coordinate slices is what DDP ranks all-reduce
    halves = pairwise_sq_distances(x[:, :3], dtype=torch.float64) + pairwise_sq_distances(
        x[:, 3:], dtype=torch.float64
    )
    torch.testing.assert_close(halves, full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocked_symmetric_gram_matches_cdist_and_duplicates_are_exactly_zero(
    gen: torch.Generator, dtype: torch.dtype
) -> None:
    # N >= 256: the lower block triangle is accumulated and mirrored
    x = torch.randn(300, 40, generator=gen, dtype=torch.float64) + 3.0
    x[250:] = x[:50]  # 50 exact duplicates
    full = pairwise_sq_distances(x.to(dtype), dtype=dtype, chunk_size=11)
    ref = torch.cdist(x - 3.0, x - 3.0) ** 2
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(full.double(), ref, rtol=tol, atol=tol)
    assert torch.equal(full, full.T)
    assert (full >= 0).all()
    idx = torch.arange(50)
    assert torch.equal(full[idx, idx + 250], torch.zeros(50, dtype=dtype))
    assert torch.equal(full.diagonal(), torch.zeros(300, dtype=dtype))
    assert (full[:50, 50:250] > 0).all()  # distinct points stay distinct


def test_self_is_excluded_even_with_duplicates() -> None:
    x = torch.zeros(5, 3)
    d = TorchKnn().search(x, 4)
    assert torch.equal(d, torch.zeros(5, 4))


def test_drop_self_handles_duplicates_and_missing_self() -> None:
    import numpy as np

    sq = np.array([[0.0, 0.0, 4.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    ids = np.array([[1, 0, 2], [1, 0, 2], [0, 1, 3]])  # row 2: itself is not among the results
    out = _drop_self(sq, ids, 2)
    np.testing.assert_array_equal(out, np.array([[0.0, 2.0], [0.0, 1.0], [0.0, 0.0]]))


@RunIf(faiss=True)
def test_faiss_backend_matches_torch(gen: torch.Generator) -> None:
    x = torch.randn(300, 40, generator=gen) + 5.0
    torch.testing.assert_close(FaissKnn().search(x, 10), TorchKnn().search(x, 10), rtol=2e-5,
                               atol=2e-5)


@RunIf(faiss=True)
def test_faiss_refuses_float64(gen: torch.Generator) -> None:
    with pytest.raises(ValueError, match="float32 only"):
        FaissKnn().search(torch.randn(10, 3, generator=gen), 2, dtype=torch.float64)


def test_auto_backend_choice() -> None:
    assert resolve_backend("auto", 1000, torch.float32).name == "torch"
    assert resolve_backend("auto", 10**6, torch.float64).name == "torch"
    with pytest.raises(ValueError, match="`backend`"):
        resolve_backend("gpu", 10, torch.float32)
    custom = TorchKnn(chunk_size=3)
    assert resolve_backend(custom, 10, torch.float32) is custom


def test_knn_distances_validates_k(gen: torch.Generator) -> None:
    x = torch.randn(10, 2, generator=gen)
    for bad in (0, 10, True, 2.0):
        with pytest.raises(ValueError, match="`k`"):
            knn_distances(x, bad)


def test_full_precision_matmul_restores_settings() -> None:
    mkl = torch.backends.mkldnn.matmul
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # asks oneDNN for bf16 float32 matmuls
    try:
        if hasattr(mkl, "fp32_precision"):
            outside = mkl.fp32_precision
            with full_precision_matmul():
                assert mkl.fp32_precision == "ieee"
                assert torch.backends.cuda.matmul.fp32_precision == "ieee"
            assert mkl.fp32_precision == outside
        else:  # older torch: legacy flags
            with full_precision_matmul():
                assert torch.get_float32_matmul_precision() == "highest"
            assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys, torch
    from thermo_lightning.knn import knn_distances
    n, d = 4096, 100_000
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    dist = knn_distances(x, 50, backend="torch")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"extra": peak - base, "input": x.numel() * 4, "shape": list(dist.shape)}))
    """
)


@pytest.mark.slow
def test_torch_backend_extra_memory_is_n_squared_plus_chunk() -> None:
    # N=4096, D=1e5 float32: the input is 1.6 GB. A centred copy of the window would add
    # another 1.6 GB; the chunked backend needs O(N^2 + N*chunk) = 64 MB + 64 MB plus a few
    # temporaries of the same size (measured: about 0.35-0.4 GB of peak RSS growth).
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True, check=True,
        timeout=600,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["shape"] == [4096, 50]
    n_sq_bytes = 4096 * 4096 * 4
    assert res["extra"] < 8 * n_sq_bytes  # 512 MiB
    assert res["extra"] < 0.35 * res["input"]


def test_finite_rows_checks_only_suspect_rows_and_keeps_finite_overflow() -> None:
    from thermo_lightning.knn.base import finite_rows, nonfinite_rows

    x = torch.randn(40, 7, generator=torch.Generator().manual_seed(3))
    x[5, 2] = float("nan")
    x[9, 0], x[9, 1] = float("inf"), float("-inf")  # the row sum is NaN
    x[30] = 3e38  # every value finite, the row sum overflows to inf
    expected = torch.ones(40, dtype=torch.bool)
    expected[[5, 9]] = False
    assert torch.equal(finite_rows(x), expected)
    assert torch.equal(finite_rows(x, block_bytes=1), expected)  # one suspect row per block
    assert nonfinite_rows(x) == 2
    assert nonfinite_rows(torch.zeros(3, 2)) == 0


@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e30])
def test_low_dimensional_float32_data_keeps_its_small_distances(scale: float) -> None:
    # D = 1: neighbours ~1/N apart are far below the GEMM form's rounding level 32 eps |x|^2;
    # they are recomputed from coordinate differences instead of becoming false duplicates.
    # Reference: the same points in float64 (and the N(0, 1) entropy, 1.4189).
    import warnings

    from thermo_lightning.functional import knn_entropy

    x = torch.randn(2000, 1, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "duplicate points" warning
        s32 = knn_entropy((x * scale).float(), k=3, estimator="kozachenko_leonenko")
    s64 = knn_entropy(x.double(), k=3, estimator="kozachenko_leonenko") + math.log(scale)
    assert s32 == pytest.approx(s64, abs=1e-4)
    assert s32 - math.log(scale) == pytest.approx(0.5 * math.log(2 * math.pi * math.e), abs=0.05)


def test_exact_recompute_keeps_true_duplicates_at_zero() -> None:
    from thermo_lightning.knn.torch_backend import TorchKnn

    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1))
    x[7] = x[3]
    dist = TorchKnn().search(x, 2)
    assert dist[3, 0] == 0 and dist[7, 0] == 0
    ref = torch.cdist(x.double(), x.double()).fill_diagonal_(math.inf).sort(dim=1).values[:, :2]
    torch.testing.assert_close(dist.double(), ref, rtol=2e-5, atol=1e-7)  # float32 GEMM form


@pytest.mark.parametrize(("scale", "rescaled"), [(1.0, False), (1e-30, True), (1e30, True)])
def test_only_windows_out_of_float32s_range_pay_for_a_scale_pass(
        monkeypatch: pytest.MonkeyPatch, scale: float, rescaled: bool) -> None:
    # a pass to find every window's power-of-two scale (and a scaled copy of every slice)
    # cost 22-32% of the search (issue 29): an ordinary window is searched as it is; only one
    # whose squared distances overflow or underflow float32 is scaled, with the same result
    from thermo_lightning.knn import torch_backend

    calls = []
    original = torch_backend.power_of_two_scale
    monkeypatch.setattr(torch_backend, "power_of_two_scale",
                        lambda x: calls.append(1) or original(x))
    x = torch.randn(300, 40, generator=torch.Generator().manual_seed(2))
    dist = torch_backend.TorchKnn().search((x * scale).float(), 5)
    assert bool(calls) == rescaled
    ref = torch.cdist(x.double(), x.double()).fill_diagonal_(math.inf).sort(dim=1).values[:, :5]
    torch.testing.assert_close(dist.double() / scale, ref, rtol=2e-5, atol=1e-7)
