"""What a :class:`~thermo_lightning.meter.ThermoMeter` saves and how it continues: its
``state_dict`` (plain values; the window only with ``save_window``), ``load_state_dict``, and
pickling (a meter pickled during a run continues it at its next ``setup``).

:class:`MeterState` is a part of the meter (its base class), kept in its own module: it reads
and sets the meter's history, schedule position, stride, pilot, window (``buffer``) and the
losses waiting for the window's snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.pilot import CorrelationPilot

__all__ = ["MeterState"]


class MeterState:
    """State, resume and pickling of a :class:`~thermo_lightning.meter.ThermoMeter` (module
    docstring)."""

    save_window: bool
    stride: int
    measurements: int
    correlation_time: float
    pilot: CorrelationPilot | None
    buffer: TrajectoryBuffer | None
    _history: list[dict[str, float]]
    _last_step: int
    _skipped: set[int]
    _steps_taken: int
    _stride_chosen: bool
    _loaded: dict[str, Any] | None
    _losses: Tensor
    _loss_sum: Tensor
    _loss_n: int
    _pending: list[int]

    def state_dict(self) -> dict[str, Any]:
        """Plain values (and, with ``save_window``, the window and its losses), including the
        losses of the batches since the last snapshot, so that a resume taken off the stride
        gives the next snapshot the same loss as an uninterrupted run."""
        return self._state(include_window=self.save_window)

    def _state(self, include_window: bool) -> dict[str, Any]:
        state: dict[str, Any] = {
            "history": [dict(row) for row in self._history], "last_step": self._last_step,
            "measurements": self.measurements, "stride": self.stride,
            "skipped_steps": sorted(self._skipped),
            "steps_taken": self._steps_taken,  # the snapshot phase after a resume
            "stride_chosen": self._stride_chosen, "correlation_time": self.correlation_time,
            "random_loss": self.random_loss,
        }
        if self.pilot is not None and not self._stride_chosen:
            state["pilot"] = self.pilot.state_dict()
        if self.buffer is not None:
            state["buffer"] = self.buffer.state_dict(include_data=include_window)
            state["loss_sum"], state["loss_n"] = float(self._loss_sum), self._loss_n
            if include_window:
                state["losses"] = self._losses.detach().cpu().clone()
                state["pending"] = list(self._pending)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (keys added later fall back to defaults); the
        window itself is restored at :meth:`setup`."""
        self._history = [dict(row) for row in state.get("history", [])]
        self._last_step = int(state.get("last_step", -1))
        self.measurements = int(state.get("measurements", 0))
        self.stride = int(state.get("stride", self.stride))
        self._skipped = set(state.get("skipped_steps", []))
        self._steps_taken = int(state.get("steps_taken", 0))
        # states written before the pilot existed: their stride stands
        self._stride_chosen = bool(state.get("stride_chosen", True))
        self.correlation_time = float(state.get("correlation_time", math.nan))
        loss = state.get("random_loss")
        self.random_loss = float(loss) if loss is not None else None
        self._loaded = dict(state)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        # process-bound things are set again by setup()/attach()
        state.update(_hooks=[], _reduce=None, _params=[], _schedule=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A meter pickled during a run (set up, not yet :meth:`detach`-ed) continues it at
        its next :meth:`setup`, window included; one pickled before or after a run starts
        the next run afresh, as the same meter reused would."""
        self.__dict__.update(state)
        if self.__dict__.get("_running") and self.buffer is not None and self._loaded is None:
            self._loaded = {**self._state(include_window=True), "pickled": True}

    def _restore_window(self, state: Mapping[str, Any]) -> None:
        """The saved window, its losses and the losses since its last snapshot (a state
        without the window refills it; the partial loss sum still goes to the next
        snapshot). A loaded ``state_dict`` restores the window with ``save_window`` only;
        a pickled meter always does."""
        assert self.buffer is not None, "the window exists before it is restored"
        if (self.save_window or state.get("pickled")) and "data" in state.get("buffer", {}):
            self.buffer.load_state_dict(state["buffer"])
            if "losses" in state:
                self._losses.copy_(state["losses"])
            self._pending = [int(i) for i in state.get("pending", [])]
        self._loss_sum.fill_(float(state.get("loss_sum", 0.0)))
        self._loss_n = int(state.get("loss_n", 0))
