"""The report's figures (their TensorBoard copy: :mod:`thermo_lightning.report.tensorboard_view`).

Figures are ``matplotlib.figure.Figure`` objects made without pyplot: no backend is selected,
no window opens, nothing global changes, and they work on machines without a screen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thermo_lightning._validation import finite_or_none
from thermo_lightning.functional.temperature import free_energy_curves
from thermo_lightning.report.output import FIGURE_NAMES
from thermo_lightning.report.summary import Regime

__all__ = ["FIGURE_NAMES", "render_report_figures", "save_figures"]


#: a colour per :class:`~thermo_lightning.report.summary.Regime` of a run with ``U`` and ``S``
#: (an ``unmeasured`` run has no point to draw)
REGIME_COLORS = {Regime.CONVERGING.value: "tab:blue", Regime.RELAXING.value: "tab:purple",
                 Regime.STATIONARY.value: "tab:green", Regime.SATURATED.value: "tab:red",
                 Regime.INCOMPLETE.value: "tab:orange", Regime.INVALID.value: "tab:gray",
                 Regime.UNFINISHED.value: "tab:olive"}


def _regime_colors(table: pd.DataFrame) -> list[str]:
    regimes = table["regime"] if "regime" in table else pd.Series(["stationary"] * len(table))
    return [REGIME_COLORS.get(str(r), "black") for r in regimes]


def _legend(ax: Any) -> None:
    """A legend when the axes have labelled artists (none: no empty-legend warning)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _legend_regimes(ax: Any, table: pd.DataFrame) -> None:
    present = set(table["regime"]) if "regime" in table else set()
    for name, color in REGIME_COLORS.items():
        if name in present:
            ax.scatter([], [], color=color, label=name)
    _legend(ax)


def _fig_u_s(table: pd.DataFrame, temperature: pd.DataFrame | None = None) -> Any:
    fig = Figure(figsize=(9, 3.5))
    axes = fig.subplots(1, 2)
    colors = _regime_colors(table)
    several = bool(table["lr"].duplicated().any())  # seeds or grid groups: no single line
    for ax, col, label in ((axes[0], "U", "U (stationary loss)"), (axes[1], "S", "S (entropy)")):
        if not several:
            ax.plot(table["lr"], table[col], color="0.7", lw=1)
        ax.scatter(table["lr"], table[col], c=colors, zorder=3)
        se = f"{col}_se"
        if se in table and table[se].notna().any():  # the runs' tail bootstraps
            ax.errorbar(table["lr"], table[col], yerr=table[se], fmt="none", ecolor="0.3",
                        elinewidth=0.8, capsize=2, label="$\\pm$1 s.e. (within run)")
        if temperature is not None and se in temperature and "n_runs" in temperature:
            seeds = temperature[temperature["n_runs"] >= 2]
            if len(seeds):
                ax.errorbar(seeds["lr"], seeds[f"{col}_raw"] if f"{col}_raw" in seeds
                            else seeds[col], yerr=seeds[se], fmt="D", ms=3, color="k",
                            capsize=2, zorder=4, label="seed mean $\\pm$1 s.e.")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate $\\eta$")
        ax.set_ylabel(label)
    _legend_regimes(axes[0], table)
    fig.suptitle("energy and entropy across the sweep")
    fig.tight_layout()
    return fig


def _fig_u_vs_s(table: pd.DataFrame, temperature: pd.DataFrame) -> Any:
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.scatter(table["S"], table["U"], c=_regime_colors(table), zorder=3)
    for (s_pt, u_pt), text in _spaced_labels(table["S"], table["U"],
                                             [f"{lr:.2g}" for lr in table["lr"]]):
        ax.annotate(text, (s_pt, u_pt), fontsize=7, xytext=(4, -10),
                    textcoords="offset points")
    span = float(np.ptp(table["S"])) if len(table) > 1 else 1.0
    for _, r in temperature[temperature["valid"]].iterrows():
        s = np.array([r["S"] - 0.15 * span, r["S"] + 0.15 * span])
        ax.plot(s, r["U"] + r["T"] * (s - r["S"]), color="tab:orange", lw=0.8)
    ax.set_xlabel("S")
    ax.set_ylabel("U")
    ax.set_title("U against S with supporting lines (slope T)")
    _legend_regimes(ax, table)
    fig.tight_layout()
    return fig


def _spaced_labels(x: Sequence[float], y: Sequence[float], texts: Sequence[str],
                   gap: float = 0.06) -> list[tuple[tuple[float, float], str]]:
    """The points to label so that no two labels overlap: in order, a point is labelled
    unless it lies within ``gap`` (a share of each axis's range) of one already labelled
    (seeds of one learning rate: one label). Non-finite points are skipped."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        return []
    span_x = float(np.ptp(xs[ok])) or 1.0
    span_y = float(np.ptp(ys[ok])) or 1.0
    kept: list[tuple[float, float]] = []
    out = []
    for xi, yi, text, good in zip(xs, ys, texts, ok, strict=True):
        if not good:
            continue
        if all(abs(xi - a) / span_x > gap or abs(yi - b) / span_y > gap for a, b in kept):
            kept.append((xi, yi))
            out.append(((float(xi), float(yi)), text))
    return out


def _fig_temperature(temperature: pd.DataFrame, power_law: tuple[float, float] | None,
                     fit: Mapping[str, Any] | None = None) -> Any:
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    t = temperature
    lo = t["T_lo"].where(t["T_lo"] > 0)
    hi = t["T_hi"].where(t["T_hi"] > 0)
    band = lo.notna() & hi.notna()
    if band.any():
        ax.fill_between(t["lr"][band], lo[band], hi[band], color="tab:orange", alpha=0.25,
                        label="chords [T_lo, T_hi]")
    ok = t["valid"].astype(bool) & (t["T"] > 0)
    interior = ok & band
    ax.scatter(t["lr"][interior], t["T"][interior], color="tab:orange", zorder=3,
               label="T (valid)")
    end = ok & ~band
    if end.any():
        ax.scatter(t["lr"][end], t["T"][end], facecolors="none", edgecolors="tab:orange",
                   zorder=3, label="T (end row: one-sided chord)")
    if {"T_ci_lo", "T_ci_hi"} <= set(t.columns):
        has_ci = ok & t["T_ci_lo"].notna() & t["T_ci_hi"].notna() & (t["T_ci_lo"] > 0)
        if has_ci.any():
            c = t[has_ci]
            level = fit.get("level", 0.95) if fit else 0.95
            # segments, not error bars about T: an interval over seeds is centred on the
            # seeds' mean and a bootstrap one on its draws, either may leave T off-centre
            label = f"{level:.0%} interval" + (f" ({fit['ci_method']})" if fit and fit.get(
                "ci_method") else "")
            ax.vlines(c["lr"], c["T_ci_lo"], c["T_ci_hi"], color="tab:red", lw=1, zorder=4,
                      label=label)
            for col in ("T_ci_lo", "T_ci_hi"):
                ax.scatter(c["lr"], c[col], marker="_", color="tab:red", s=40, zorder=4)
    if "T_true" in t and t["T_true"].notna().any():
        ax.plot(t["lr"], t["T_true"], color="tab:green", lw=1, label="true T (known problem)")
    if "T_conf" in t and (t["T_conf"] > 0).any():  # one run's thermometer, beside the sweep's
        c = t[t["T_conf"] > 0]
        ax.errorbar(c["lr"] * 1.03, c["T_conf"], yerr=[
            (c["T_conf"] - c["T_conf_lo"].clip(lower=0)).to_numpy(),
            (c["T_conf_hi"] - c["T_conf"]).to_numpy()], fmt="s", ms=4, color="tab:purple",
            lw=1, capsize=2, zorder=4, label="T_conf (one run each)")
    marks = t["T"].where(t["T"] > 0).fillna(t["T_lo"].abs()).fillna(t["T_hi"].abs())
    shown = ~ok & (marks > 0)  # a log axis cannot show zero or negative values
    if shown.any():
        ax.scatter(t["lr"][shown], marks[shown], marker="x", color="k", zorder=3,
                   label="not valid")
    if power_law is not None:
        b, a = power_law
        grid = np.geomspace(t["lr"].min(), t["lr"].max(), 50)
        label = f"T = {b:.2g} $\\eta^{{{a:.2f}}}$"
        if fit and finite_or_none(fit.get("a_ci_lo")) is not None and finite_or_none(
                fit.get("a_ci_hi")) is not None:
            label += f", a in [{fit['a_ci_lo']:.2f}, {fit['a_ci_hi']:.2f}]"
        ax.plot(grid, b * grid**a, "k--", lw=1, label=label)
    ax.set_xscale("log")
    if ok.any() or band.any() or shown.any():
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no positive temperature", transform=ax.transAxes, ha="center")
    ax.set_xlabel("learning rate $\\eta$")
    ax.set_ylabel("temperature T")
    _legend(ax)
    ax.set_title("temperature of SGD")
    fig.tight_layout()
    return fig


def _fig_temperature_groups(temperature: pd.DataFrame, along: str) -> Any:
    """``T`` against ``along``, one coloured series per group, with intervals."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    labels = temperature["group"] if "group" in temperature else pd.Series(
        [""] * len(temperature), index=temperature.index)
    cmap = matplotlib.colormaps["viridis"]
    names = list(dict.fromkeys(labels))
    drawn = False  # a positive value on the T axis (a log axis with none cannot be drawn)
    for i, name in enumerate(names):
        t = temperature[labels == name]
        ok = t["valid"].astype(bool) & (t["T"] > 0)
        drawn = drawn or bool(ok.any()) or bool(
            "T_true" in t and (t["T_true"] > 0).any())
        color = cmap(i / max(1, len(names) - 1))
        ax.plot(t[along][ok], t["T"][ok], "o-", color=color, ms=4, lw=1,
                label=name or "T (valid)")
        if {"T_ci_lo", "T_ci_hi"} <= set(t.columns):
            c = t[ok & t["T_ci_lo"].notna() & (t["T_ci_lo"] > 0)]
            ax.vlines(c[along], c["T_ci_lo"], c["T_ci_hi"], color=color, lw=1)
        if "T_true" in t and t["T_true"].notna().any():
            ax.plot(t[along], t["T_true"], ":", color=color, lw=1)
    if "T_true" in temperature and temperature["T_true"].notna().any():
        ax.plot([], [], "k:", lw=1, label="true T (known problem)")
    ax.set_xscale("log")
    if drawn:
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no valid positive temperature", transform=ax.transAxes,
                ha="center")
    ax.set_xlabel(along if along != "lr" else "learning rate $\\eta$")
    ax.set_ylabel("temperature T")
    has_ci = "T_ci_lo" in temperature and temperature["T_ci_lo"].notna().any()
    ax.set_title("temperature of SGD, per group" + (" (bars: intervals)" if has_ci else ""))
    _legend(ax)
    fig.tight_layout()
    return fig


def _fig_collapse(temperature: pd.DataFrame, collapse: Mapping[str, Any]) -> Any:
    """``T`` against ``eta / B`` for every batch size, with the joint power law."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    t = temperature[temperature["valid"].astype(bool) & (temperature["T"] > 0)]
    fitted = t["T_lo"].notna() & t["T_hi"].notna()  # the rows of the joint fit
    cmap = matplotlib.colormaps["viridis"]
    sizes = sorted(t["batch_size"].unique())
    for i, b in enumerate(sizes):
        color = cmap(i / max(1, len(sizes) - 1))
        g, inner = t[t["batch_size"] == b], fitted[t["batch_size"] == b]
        ax.plot(g["lr"][inner] / b, g["T"][inner], "o", color=color, ms=5, label=f"B = {b}")
        ax.plot(g["lr"][~inner] / b, g["T"][~inner], "o", mfc="none", color=color, ms=5)
    if (~fitted).any():
        ax.plot([], [], "o", mfc="none", color="0.4", label="end rows (not fitted)")
    if len(t):
        x = t["lr"] / t["batch_size"]
        grid = np.geomspace(float(x.min()), float(x.max()), 50)
        ax.plot(grid, collapse["b"] * grid ** collapse["a"], "k--", lw=1,
                label=f"T = {collapse['b']:.2g} $(\\eta/B)^{{{collapse['a']:.2f}}}$, a in "
                      f"[{collapse['a_ci_lo']:.2f}, {collapse['a_ci_hi']:.2f}]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$\\eta / B$")
    ax.set_ylabel("temperature T")
    ax.set_title(f"collapse in $\\eta/B$: groups {collapse['spread']:.1%} apart "
                 f"(in $\\eta$ alone: {collapse['spread_lr_only']:.0%})", fontsize=10)
    _legend(ax)
    fig.tight_layout()
    return fig


def _fig_free_energy(temperature: pd.DataFrame) -> Any:
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ok = temperature[temperature["valid"]]
    fitted = False
    if len(ok) >= 1:
        # the convex construction's T is a slope of its fitted curve: F_T on that curve has
        # its minimum where the construction says (on the measured points, noise moves it)
        fitted = {"U_fit", "S_fit"} <= set(temperature) and temperature[
            ["U_fit", "S_fit"]].notna().all().all()
        u, s = ((temperature["U_fit"], temperature["S_fit"]) if fitted else
                (temperature["U"], temperature["S"]))
        temps = ok["T"].to_numpy(float)  # rows of one straight stretch share T: one curve
        counts = {}
        for value in temps:
            same = next((k for k in counts if abs(k - value) <= 1e-9 * abs(value)), value)
            counts[same] = counts.get(same, 0) + 1
        curves = free_energy_curves(temperature["lr"], u, s, list(counts))
        cmap = matplotlib.colormaps["viridis"]
        for i, (t, f) in enumerate(zip(curves.temperatures, curves.free_energy, strict=True)):
            color = cmap(i / max(1, len(curves.temperatures) - 1))
            shifted = f - f.min()
            ax.plot(curves.lrs, shifted, color=color, lw=1)
            # every point at the minimum: an end row's T is the chord to its neighbour, and F
            # at that T ties between the two (marking one would pick a side)
            tied = np.flatnonzero(shifted <= 1e-9 * max(float(np.nanmax(np.abs(f))), 1e-300))
            ax.scatter(curves.lrs[tied], shifted[tied], color=color, zorder=3, s=15)
            rows = counts[float(t)]
            ax.plot([], [], color=color, label=f"T = {t:.3g}" + (f" ({rows} rows)" if rows > 1
                                                                 else ""))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=1 if len(curves.temperatures) <= 6 else 2,
                      title="one curve per T (dots: its minimum; several: a tie)", title_fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate $\\eta'$")
    ax.set_ylabel("$F_T(\\eta') - \\min F_T$" + (" (on the fitted curve)" if fitted
                                                     else ""))
    ax.set_title("free energy $U - T S$, minima marked")
    fig.tight_layout()
    return fig


def _fig_local_temperature(local: Mapping[float, tuple[np.ndarray, np.ndarray]]) -> Any:
    """``T(t) = dU/dS`` along converging runs (called when one has a positive value)."""
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    for lr, (steps, temps) in sorted(local.items()):
        good = np.isfinite(temps) & (temps > 0)
        if good.any():
            ax.plot(steps[good], temps[good], marker=".", label=f"$\\eta$ = {lr:.2g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("$T(t) = dU/dS$")
    ax.set_title("temperature along converging runs")
    _legend(ax)
    fig.tight_layout()
    return fig


def _fig_snr(table: pd.DataFrame) -> Any:
    """The runs' tail SNR against the learning rate (called when some run has one)."""
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    t = table[table["snr"].notna()]
    ax.scatter(t["lr"], t["snr"], c=_regime_colors(t), zorder=3)
    if not t["lr"].duplicated().any():  # seeds or groups: no single line through them
        ax.plot(t["lr"], t["snr"], color="0.7", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate $\\eta$")
    ax.set_ylabel("gradient SNR")
    ax.set_title("signal-to-noise ratio of the gradient")
    _legend_regimes(ax, t)
    fig.tight_layout()
    return fig


def render_report_figures(
    table: pd.DataFrame,
    temperature: pd.DataFrame,
    power_law: tuple[float, float] | None,
    local: Mapping[float, tuple[np.ndarray, np.ndarray]],
    fit: Mapping[str, Any] | None = None,
    *,
    along: str = "lr",
    collapse: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's figures by name (figures whose data is missing are left out); ``fit``
    (``fit.json``'s content) puts the exponent's interval in the legend. With groups (a
    ``group`` column: a grid of several axes) or ``along`` another axis than ``lr``,
    ``temperature`` draws one series per group against ``along`` and the free-energy curves
    are left out; ``collapse`` (:func:`~thermo_lightning.report.batch_size_collapse`) adds
    ``collapse.png``."""
    makers: list[tuple[str, Any]] = []
    grouped = "group" in temperature or along != "lr"
    if {"U", "S"} <= set(table.columns) and len(table):
        makers += [("u_s_vs_lr", lambda: _fig_u_s(table, None if grouped else temperature)),
                   ("u_vs_s", lambda: _fig_u_vs_s(table, temperature))]
    if len(temperature) and grouped:
        makers += [("temperature", lambda: _fig_temperature_groups(temperature, along))]
    elif len(temperature):
        makers += [("temperature", lambda: _fig_temperature(temperature, power_law, fit)),
                   ("free_energy", lambda: _fig_free_energy(temperature))]
    if collapse is not None:
        makers += [("collapse", lambda: _fig_collapse(temperature, collapse))]
    if any((np.isfinite(t) & (t > 0)).any() for _, t in local.values()):
        makers += [("local_temperature", lambda: _fig_local_temperature(local))]
    if len(table) and "snr" in table and table["snr"].notna().any():
        makers += [("snr", lambda: _fig_snr(table))]
    figures = {name: make() for name, make in makers}
    for figure in figures.values():
        _quiet_minor_log_ticks(figure)
    return figures


def _quiet_minor_log_ticks(figure: Any) -> None:
    """Drop the minor tick labels of log axes: on a range under a decade matplotlib labels
    every minor tick and the labels overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for ax in figure.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale != "log":
                continue
            axis.set_minor_formatter(NullFormatter())
            if len([t for t in axis.get_majorticklocs() if _in_view(axis, t)]) < 2:
                # under two decades in view: the fewest ticks per decade that put three in
                # view (with fewer, matplotlib falls back to crowded linear ticks; two left
                # most of a sweep's learning rates unlabelled)
                lo, hi = sorted(axis.get_view_interval())
                subs = next((c for c in _LOG_SUBS if _ticks_in(c, lo, hi) >= 3), _LOG_SUBS[-1])
                axis.set_major_locator(LogLocator(base=10, subs=subs))
                # every one of them labelled (matplotlib's log formatter leaves some of a
                # short range's ticks blank: 0.02-0.08 showed one label), as plain numbers
                axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.3g}"))


#: ticks per decade to try on a log axis shorter than two decades, sparsest first
_LOG_SUBS = ((1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0))


def _ticks_in(subs: Sequence[float], lo: float, hi: float) -> int:
    """How many of ``subs * 10^d`` lie in ``[lo, hi]`` (``lo > 0``)."""
    if not (lo > 0 and hi > lo):
        return 0
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    return sum(lo <= f * 10.0**d <= hi for d in decades for f in subs)


def _in_view(axis: Any, value: float) -> bool:
    lo, hi = sorted(axis.get_view_interval())
    return lo <= value <= hi


def save_figures(figures: Mapping[str, Any], out: Path) -> list[Path]:
    """Save every figure as ``out/<name>.png``."""
    paths = []
    for name, figure in figures.items():
        path = out / f"{name}.png"
        figure.savefig(path, dpi=110)
        paths.append(path)
    return paths
