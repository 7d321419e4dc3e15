from __future__ import annotations

import numpy as np
import pytest

from thermo_lightning.schedules import EveryNSteps, LogSpacedSchedule, as_schedule


def test_log_spaced_schedule_like_the_paper() -> None:
    s = LogSpacedSchedule(1_600_000)
    assert len(s.steps) == 201
    assert s.steps[:10] == list(range(10))
    assert s.steps[-1] == 1_600_000
    assert all(a < b for a, b in zip(s.steps, s.steps[1:], strict=False))
    ratios = [b / a for a, b in zip(s.steps[100:], s.steps[101:], strict=False)]
    assert max(ratios) / min(ratios) < 1.01  # geometric in the tail


def test_short_runs_log_every_step() -> None:
    assert LogSpacedSchedule(5).steps == [0, 1, 2, 3, 4, 5]
    assert len(LogSpacedSchedule(300).steps) == 201


def test_every_n_and_as_schedule() -> None:
    assert [s for s in range(10) if EveryNSteps(3)(s)] == [0, 3, 6, 9]
    assert as_schedule(4, None)(8)
    assert as_schedule("log", 100)(100)
    assert as_schedule(lambda s: s == 7, None)(7)
    with pytest.raises(ValueError, match="max_steps"):
        as_schedule("log", -1)
    with pytest.raises(ValueError, match="`schedule`"):
        as_schedule("linear", 10)
    with pytest.raises(ValueError, match="`n`"):
        EveryNSteps(0)


def test_dense_tail_adds_evenly_spaced_points_over_the_later_half() -> None:
    from thermo_lightning.schedules import DenseTail

    base = LogSpacedSchedule(3000)
    s = DenseTail(base, 3000)
    steps = [t for t in range(3001) if s(t)]
    assert all(s(t) for t in base.steps)  # the base's points stay
    tail = [t for t in steps if t > 1500 and not base(t)]
    assert len(tail) >= 90 and max(tail) <= 3000
    gaps = np.diff(tail)
    assert np.median(gaps) == 15 and gaps.max() <= 30  # every 15 steps (30 past a base point)
    later = sum(t >= 1500 for t in steps)
    assert later >= 100 > 4 * sum(t >= 1500 for t in base.steps)  # 17 of the base's
    with pytest.raises(ValueError, match="points"):
        DenseTail(base, 3000, points=0)


def test_the_meter_measures_t_conf_densely_over_the_later_half_at_the_defaults() -> None:
    # T_conf is taken over the later half of the run, where the log schedule puts about 17
    # of its 201 points (3000 steps): with conf_temperature the meter adds 100 more there
    # (benchmarks/conf_accuracy.py --schedule callback: medians 0.92-1.07 of the chain's T
    # against 0.82-1.28 without them)
    import torch

    from thermo_lightning import ThermoMeter

    w = torch.nn.Parameter(torch.randn(6))
    counts = {}
    for conf in (False, True):
        meter = ThermoMeter(conf_temperature=conf, snr=None)
        meter.setup([w], radius=1.0, max_steps=3000)
        counts[conf] = [t for t in range(3001) if meter._schedule(t)]
    assert len(counts[False]) == 201
    assert sum(t >= 1500 for t in counts[True]) >= 100 > sum(t >= 1500 for t in counts[False])
    assert set(counts[False]) <= set(counts[True])
