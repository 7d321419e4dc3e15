"""The configurational temperature in the report: each run's ``T_conf`` from the terms its
callback logged (``thermo/conf_grad_sq``, ``thermo/conf_laplacian``; ``ThermoCallback(
conf_temperature=True)``), and the temperature table's ``T_conf`` beside the sweep's ``T``.

A run's ``T_conf`` averages the logging points of its stationary stretch (those its trend test
covers: the last few window spans, at least the tail), with the standard error of
:func:`~thermo_lightning.functional.configurational_temperature` (``runs.csv``: ``T_conf``,
``T_conf_se``, ``conf_points``). A row of ``temperature.csv`` takes the mean of its runs'
``T_conf`` (seeds) with the standard error of that mean (``sqrt(sum se^2) / n``) and a normal
interval at the report's level (``T_conf_lo``, ``T_conf_hi``). Where that interval and the row's
``T`` interval do not overlap, a note says so: the stationary law is not Gibbs-like there (or
one of the two estimates is off). Pure: pandas and numpy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from thermo_lightning import keys
from thermo_lightning.functional.configurational import configurational_temperature

__all__ = ["add_conf_columns", "one_run_line", "run_conf_temperature"]


def run_conf_temperature(history: pd.DataFrame, first_step: float) -> dict[str, Any]:
    """``{"T_conf", "T_conf_se", "conf_points"}`` over the points at or after ``first_step``
    that carry both terms, and ``fdr``, the run's last ``thermo/fdr`` (plain SGD only), with
    its standard error ``fdr_se``;
    empty when the run logged none (or fewer than 3, or a mean
    Laplacian that is not positive: ``T_conf`` NaN with ``conf_points``)."""
    if keys.CONF_GRAD_SQ not in history or keys.CONF_LAPLACIAN not in history:
        return {}
    part = history[history["step"] >= first_step].dropna(
        subset=[keys.CONF_GRAD_SQ, keys.CONF_LAPLACIAN])
    if part.empty:
        return {}
    extra = _fdr_with_error(history)
    try:
        result = configurational_temperature(part[keys.CONF_GRAD_SQ], part[keys.CONF_LAPLACIAN])
    except ValueError:
        return {"T_conf": math.nan, "T_conf_se": math.nan, "conf_points": len(part), **extra}
    return {"T_conf": result.T, "T_conf_se": result.se, "conf_points": result.n, **extra}


def _fdr_with_error(history: pd.DataFrame) -> dict[str, float]:
    """``{"fdr", "fdr_se"}``: the run's last ``thermo/fdr`` (the callback's ratio over the
    later half of the run) and its standard error, ``fdr`` times the relative error of
    ``mean(grad_sq) / mean(gHg)`` over the same points (the ratio estimator of
    :func:`~thermo_lightning.functional.configurational_temperature`, autocorrelation
    counted); ``{"fdr"}`` alone where ``thermo/conf_gHg`` was not read, nothing without
    ``thermo/fdr`` (not plain SGD)."""
    fdr = history[keys.FDR].dropna() if keys.FDR in history else pd.Series(dtype=float)
    if not len(fdr):
        return {}
    out = {"fdr": float(fdr.iloc[-1])}
    if keys.CONF_GHG in history:
        last = float(history.loc[fdr.index[-1], "step"])
        half = history[history["step"].between(last / 2, last)].dropna(
            subset=[keys.CONF_GRAD_SQ, keys.CONF_GHG])
        try:
            balance = configurational_temperature(half[keys.CONF_GRAD_SQ], half[keys.CONF_GHG])
        except ValueError:  # fewer than 3 points, or E[g^T H g] not positive
            return out
        out["fdr_se"] = abs(out["fdr"]) * balance.se / abs(balance.T)
    return out


def one_run_line(run: Any) -> str:
    """A run's own thermometer in one line, for a report without a ``T(eta)`` table (``run``:
    a row of ``runs.csv``): ``T_conf`` with its standard error and, where measured, the
    fluctuation-dissipation ratio with its own (1 at stationarity), and ``T_true`` where the
    problem knows it."""
    fdr, fdr_se, truth = (float(run.get(c, math.nan)) for c in ("fdr", "fdr_se", "T_true"))
    balance = (f", fdr {fdr:.2f} +- {fdr_se:.2g}" if math.isfinite(fdr_se) else
               f", fdr {fdr:.2f}" if math.isfinite(fdr) else "")
    balance += f", T_true {truth:.4g}" if math.isfinite(truth) else ""
    return (f"  {run['run']}: T_conf = {run['T_conf']:.4g} +- {run['T_conf_se']:.2g} (one run, "
            f"{int(run['conf_points'])} points{balance}; runs.csv)")


def add_conf_columns(temperature: pd.DataFrame, runs: pd.DataFrame, level: float,
                     messages: list[str], along: str = "lr") -> None:
    """``T_conf``, ``T_conf_lo``, ``T_conf_hi`` in ``temperature`` (by its ``lr`` column,
    the axis values) from the runs' ``T_conf`` and ``T_conf_se`` (``runs``, same axis column
    ``lr``), in place; a note per row whose intervals disagree. Nothing when no run has
    ``T_conf``."""
    if "T_conf" not in runs or runs["T_conf"].notna().sum() == 0 or temperature.empty:
        return
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    values, lows, highs = [], [], []
    for x in temperature["lr"]:
        group = runs[np.isclose(runs["lr"].astype(float), float(x))].dropna(
            subset=["T_conf", "T_conf_se"])
        if group.empty:
            values.append(math.nan), lows.append(math.nan), highs.append(math.nan)
            continue
        mean = float(group["T_conf"].mean())
        se = float(np.sqrt((group["T_conf_se"] ** 2).sum())) / len(group)
        values.append(mean), lows.append(mean - z * se), highs.append(mean + z * se)
    temperature["T_conf"], temperature["T_conf_lo"], temperature["T_conf_hi"] = (
        values, lows, highs)
    if not {"T_ci_lo", "T_ci_hi"} <= set(temperature.columns):
        return
    for _, r in temperature.iterrows():
        if not all(math.isfinite(float(r[c])) for c in ("T_ci_lo", "T_ci_hi", "T_conf_lo",
                                                           "T_conf_hi")):
            continue
        if r["T_conf_hi"] < r["T_ci_lo"] or r["T_conf_lo"] > r["T_ci_hi"]:
            messages.append(
                f"{along}={float(r['lr']):.3g}: T_conf {float(r['T_conf']):.4g} "
                f"[{float(r['T_conf_lo']):.4g}, {float(r['T_conf_hi']):.4g}] and T "
                f"[{float(r['T_ci_lo']):.4g}, {float(r['T_ci_hi']):.4g}] disagree beyond "
                "their intervals: the stationary law is not Gibbs-like there (anisotropic "
                "noise), or one estimate is off (docs/configurational.md)")
