"""TrajectoryBuffer: ring order, validity, shards, sketch, memory budget, state."""

from __future__ import annotations

import math

import pytest
import torch

from thermo_lightning.buffer import TrajectoryBuffer, WindowMemoryError
from thermo_lightning.functional import knn_entropy


def _group(d1: int = 6, d2: int = 4) -> list[torch.Tensor]:
    return [torch.zeros(d1), torch.zeros(2, d2 // 2)]


def test_ring_keeps_the_last_window_in_time_order() -> None:
    buf = TrajectoryBuffer(10, window=4)
    group = _group()
    for step in range(1, 7):
        for t in group:
            t.fill_(step)
        buf.add(group, step)
    assert buf.full and buf.count == 6 and buf.filled == 4
    order = buf.time_order()
    assert [buf.steps[s] for s in order] == [3, 4, 5, 6]
    assert buf.data[order][:, 0].tolist() == [3.0, 4.0, 5.0, 6.0]
    rows, slots, bad = buf.snapshots()
    assert rows.shape == (4, 10) and slots == order and bad == []


def test_non_finite_snapshots_are_left_out() -> None:
    buf = TrajectoryBuffer(10, window=5)
    group = _group()
    for step in range(5):
        group[0].fill_(float("nan") if step == 2 else step)
        buf.add(group, step)
    rows, _slots, bad = buf.snapshots()
    assert bad == [2] and rows.shape[0] == 4
    assert torch.isfinite(rows).all()


def test_shards_concatenate_to_the_full_snapshot() -> None:
    g = torch.Generator().manual_seed(0)
    group = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    full = TrajectoryBuffer(22, window=2)
    parts = [TrajectoryBuffer(22, window=2, shard=(r, 3)) for r in range(3)]
    for b in (full, *parts):
        b.add(group, 1)
    assert [p.local_features for p in parts] == [7, 7, 8]
    torch.testing.assert_close(torch.cat([p.data[0] for p in parts]), full.data[0])
    flat = torch.cat([t.reshape(-1) for t in group])
    torch.testing.assert_close(full.data[0], flat)


def test_sketch_preserves_norms_in_expectation() -> None:
    d, m = 20_000, 512
    g = torch.Generator().manual_seed(1)
    x = torch.randn(d, generator=g)
    ratios = []
    for seed in range(20):
        buf = TrajectoryBuffer(d, window=1, sketch_dim=m, sketch_seed=seed)
        buf.add([x], 0)
        ratios.append(float(buf.data[0].square().sum() / x.square().sum()))
    mean = sum(ratios) / len(ratios)
    assert mean == pytest.approx(1.0, abs=3 * math.sqrt(2 / m / len(ratios)) + 0.01)


def _random_walk_window(step: float, n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (step * torch.randn(n, d, generator=g)).cumsum(dim=0)


def test_sketch_is_linear_so_scaling_shifts_stay_exact() -> None:
    d, n = 5_000, 100
    base = _random_walk_window(1.0, n, d, seed=2)
    sketched = []
    for w in (base, 2 * base):
        buf = TrajectoryBuffer(d, window=n, sketch_dim=128, sketch_seed=3)
        for row in w:
            buf.add([row], 0)
        sketched.append(knn_entropy(buf.data, k=5, dim=d - 1))
    assert sketched[1] - sketched[0] == pytest.approx((d - 1) * math.log(2), rel=1e-6)


@pytest.mark.parametrize(("m", "tol"), [(256, 0.05), (1024, 0.03)])
def test_sketch_error_on_entropy_differences(m: int, tol: float) -> None:
    # Two independent random-walk windows (steps 1 and 1.5, D = 5000, N = 200): the entropy
    # difference from the sketched windows (dim = D - 1 of the original space) against the
    # exact one. Measured over 5 seeds: relative error up to 5.5% (m=64), 2.0% (m=256),
    # 1.0% (m=1024).
    d, n = 5_000, 200
    a = _random_walk_window(1.0, n, d, seed=4)
    b = _random_walk_window(1.5, n, d, seed=5)
    exact = knn_entropy(b, k=5, dim=d - 1) - knn_entropy(a, k=5, dim=d - 1)
    sketched = []
    for w in (a, b):
        buf = TrajectoryBuffer(d, window=n, sketch_dim=m, sketch_seed=6)
        for row in w:
            buf.add([row], 0)
        sketched.append(knn_entropy(buf.data, k=5, dim=d - 1))
    assert sketched[1] - sketched[0] == pytest.approx(exact, rel=tol)


def test_memory_budget_error_gives_the_numbers_and_ways_out() -> None:
    with pytest.raises(WindowMemoryError, match=r"1000 snapshots x 1,550,016 numbers") as err:
        TrajectoryBuffer(1_550_016, window=1000, memory_budget=2**30)
    text = str(err.value)
    for way in ("`window`", "sketch_dim", "shard", "buffer_device", "memory_budget"):
        assert way in text
    TrajectoryBuffer(1_550_016, window=1000, sketch_dim=1024, memory_budget=2**30)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="`window`"):
        TrajectoryBuffer(10, window=0)
    with pytest.raises(ValueError, match="`shard`"):
        TrajectoryBuffer(10, shard=(2, 2))
    with pytest.raises(ValueError, match="not both"):
        TrajectoryBuffer(10, sketch_dim=4, shard=(0, 2))
    buf = TrajectoryBuffer(10, window=2)
    with pytest.raises(ValueError, match="expects 10"):
        buf.add([torch.zeros(9)], 0)


def test_state_round_trip() -> None:
    buf = TrajectoryBuffer(10, window=3)
    group = _group()
    for step in range(5):
        group[0].fill_(step)
        buf.add(group, step)
    fresh = TrajectoryBuffer(10, window=3)
    fresh.load_state_dict(buf.state_dict(include_data=True))
    assert fresh.count == 5 and fresh.steps == buf.steps
    assert torch.equal(fresh.data, buf.data) and fresh.time_order() == buf.time_order()
    empty = TrajectoryBuffer(10, window=3)
    empty.load_state_dict(buf.state_dict(include_data=False))
    assert empty.count == 0  # refills
    with pytest.raises(ValueError, match="cannot be restored"):
        TrajectoryBuffer(10, window=4).load_state_dict(buf.state_dict(include_data=True))


@pytest.mark.parametrize(("m", "tol"), [(256, 0.10), (1024, 0.06)])
def test_sketch_keeps_the_entropy_difference_of_adjacent_learning_rates(m: int, tol: float
                                                                        ) -> None:
    # T comes from chords between LRs a factor sqrt(2) apart: two thinned (i.i.d.) windows
    # whose spread differs by 2^(1/4). benchmarks/sketch_temperature.py (D = 20000, 6 seeds):
    # worst error on the chord 6.5% at m = 256, 3.9% at m = 1024.
    d, n = 5_000, 200
    gen = torch.Generator().manual_seed(7)
    lam = torch.linspace(1.0, 100.0, d)
    lo = torch.randn(n, d, generator=gen) / lam.sqrt()
    hi = torch.randn(n, d, generator=gen) * (2**0.5 / lam).sqrt()
    exact = knn_entropy(hi, k=5, dim=d) - knn_entropy(lo, k=5, dim=d)
    sketched = []
    for w in (lo, hi):
        buf = TrajectoryBuffer(d, window=n, sketch_dim=m, sketch_seed=1)
        for i, row in enumerate(w):
            buf.add([row], i)
        sketched.append(knn_entropy(buf.data, k=5, dim=d))
    assert sketched[1] - sketched[0] == pytest.approx(exact, rel=tol)
