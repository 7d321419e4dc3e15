from __future__ import annotations

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
