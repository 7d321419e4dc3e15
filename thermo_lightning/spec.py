"""What a window of snapshots is: its size and neighbour counts from the run's length
(:func:`resolve_window`), and its description (:class:`WindowSpec`), written once into a
run's hyperparameters and read back by the report.

Pure: no torch, no Lightning. The meter measures with it; the sweep's settings check
themselves with it before any run (a window that cannot fill is refused up front); the
report reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from thermo_lightning import keys
from thermo_lightning._validation import check_ks, positive_int

__all__ = [
    "BUILTIN_ESTIMATORS",
    "ENERGY_MODES",
    "LOW_ESS_FRACTION",
    "PAPER_PROTOCOL",
    "SNR_MODES",
    "WindowSpec",
    "check_snr",
    "check_stride",
    "check_window_arguments",
    "resolve_window",
]

#: the paper's protocol: 1000 consecutive iterates, k = 50, 201 log-spaced logging points
PAPER_PROTOCOL: dict[str, Any] = {"window": 1000, "stride": 1, "k": 50,
                                  "estimator": "knn_graph", "schedule": "log"}
_STEPS_PER_SLOT = 200  # window="auto": one window slot per this many steps of the run ...
_WINDOW_RANGE = (50, 1000)  # ... within these bounds
LOW_ESS_FRACTION = 0.25  #: a full window with an ESS below this share of N is flagged
#: the entropy estimators every process has (:func:`~thermo_lightning.functional.entropy.
#: get_estimator` knows them and any registered since)
BUILTIN_ESTIMATORS = ("knn_graph", "kozachenko_leonenko")
SNR_MODES = ("auto", "unbiased", "exact", None)  #: the meter's ``snr`` values
ENERGY_MODES = ("window", "full")  #: the callback's ``energy`` values


#: the smallest window: the effective sample size's autocorrelation needs 4 snapshots
MIN_WINDOW = 4


def check_window_arguments(window: int | str, k: int | Sequence[int] | str
                           ) -> tuple[int | str, tuple[int, ...] | str]:
    """``(window, k)`` checked: ``window`` a positive int (digit strings from configuration
    files accepted) or ``"auto"``; ``k`` distinct positive ints or ``"auto"``; a fixed window
    larger than the largest ``k``. Raises a ValueError naming the argument."""
    if isinstance(window, str) and window.isdigit():  # YAML / CLI hand numbers as text
        window = int(window)
    window_arg: int | str = window if window == "auto" else positive_int(window, "window")
    if isinstance(window_arg, int) and window_arg < MIN_WINDOW:
        raise ValueError(f"`window` must be at least {MIN_WINDOW} snapshots (its effective "
                         f"sample size needs {MIN_WINDOW}), got {window_arg}.")
    k_arg: tuple[int, ...] | str = k if k == "auto" else check_ks(k, None)  # type: ignore[arg-type]
    if isinstance(window_arg, int) and isinstance(k_arg, tuple) and window_arg <= max(k_arg):
        raise ValueError(
            f"`window` ({window_arg}) must be larger than the largest `k` ({max(k_arg)}): "
            "each point needs k neighbours in the window."
        )
    return window_arg, k_arg


def check_stride(stride: int | str) -> int | str:
    """``stride`` checked: an integer >= 1 (digit strings accepted) or ``"auto"``."""
    if isinstance(stride, str) and stride.isdigit():
        stride = int(stride)
    if stride != "auto" and (isinstance(stride, bool) or not isinstance(stride, int)
                             or stride < 1):
        raise ValueError(f"`stride` must be an integer >= 1 or 'auto', got {stride!r}.")
    return stride


def check_snr(snr: str | None, snr_batches: int) -> tuple[str | None, int]:
    """``(snr, snr_batches)`` checked: a :data:`SNR_MODES` value and ``K >= 2``."""
    if snr not in SNR_MODES:
        raise ValueError(f"`snr` must be 'auto', 'unbiased', 'exact' or None, got {snr!r}.")
    if isinstance(snr_batches, bool) or not isinstance(snr_batches, int) or snr_batches < 2:
        raise ValueError(f"`snr_batches` (K) must be an integer >= 2, got {snr_batches!r}.")
    return snr, snr_batches


def resolve_window(window: int | str, k: tuple[int, ...] | str, max_steps: int | None
                   ) -> tuple[int, tuple[int, ...]]:
    """``(N, ks)`` from checked arguments (:func:`check_window_arguments`):
    ``window="auto"`` is one slot per 200 steps of the run within [50, 1000] (1000 when the
    length is unknown), ``k="auto"`` is ``N / 20`` within [3, 50] (the paper's 50 at
    N = 1000).

    Example:
        >>> resolve_window("auto", "auto", 20_000)
        (100, (5,))
    """
    if window == "auto":
        n = _WINDOW_RANGE[1] if not max_steps else max_steps // _STEPS_PER_SLOT
        n = min(max(n, _WINDOW_RANGE[0]), _WINDOW_RANGE[1])
        if isinstance(k, tuple):
            n = max(n, 2 * max(k) + 1)
    else:
        n = int(window)
    ks = k if isinstance(k, tuple) else (min(50, max(3, n // 20), n - 1),)
    return n, ks


@dataclass(frozen=True)
class WindowSpec:
    """What a window is, written once into a run's hyperparameters and read back by the
    report (which then need not re-derive it).

    Attributes:
        window: ``N``, snapshots per window.
        num_parameters: ``D``, numbers per snapshot (the SI group's size).
        dim: ``d``, the intrinsic dimension of the entropy (``D - 1`` on one sphere).
        k: neighbour counts; the first is ``thermo/S``.
        stride: optimiser steps between snapshots at the start (``"auto"`` adapts it).
        radius: the sphere's radius, ``None`` when the weights are not on a sphere.
        estimator: the entropy estimator's name.
        sketch_dim: numbers per snapshot of a CountSketch, ``None`` for the weights themselves.
        shards: processes the window's coordinates are split over (1: not sharded).
    """

    window: int
    num_parameters: int
    dim: int
    k: tuple[int, ...]
    stride: int | str
    radius: float | None
    estimator: str
    sketch_dim: int | None = None
    shards: int = 1

    def as_hparams(self) -> dict[str, Any]:
        """``{"thermo_spec/<field>": value}`` with plain values (lists, numbers, strings)."""
        values = asdict(self)
        values["k"] = list(self.k)
        return {keys.SPEC_PREFIX + name: value for name, value in values.items()}

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> WindowSpec | None:
        """The spec in ``hparams`` (as :meth:`as_hparams` wrote it), or ``None`` when it is
        missing or malformed (hand-edited files)."""
        values = {name[len(keys.SPEC_PREFIX):]: v for name, v in hparams.items()
                  if isinstance(name, str) and name.startswith(keys.SPEC_PREFIX)}
        try:
            ks = values["k"] if isinstance(values["k"], list | tuple) else [values["k"]]
            radius = values.get("radius")
            sketch = values.get("sketch_dim")
            spec = cls(window=int(values["window"]), num_parameters=int(values["num_parameters"]),
                       dim=int(values["dim"]), k=tuple(int(v) for v in ks),
                       stride=values.get("stride", 1),
                       radius=None if radius in (None, "None") else float(radius),
                       estimator=str(values["estimator"]),
                       sketch_dim=None if sketch in (None, "None") else int(sketch),
                       shards=int(values.get("shards", 1)))
        except (KeyError, TypeError, ValueError):
            return None
        return spec
