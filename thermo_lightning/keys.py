"""Names shared by the writers (callback, meter, sweep) and the readers (report, figures).

Pure: no torch, no lightning. Metric keys are what every logger receives; the spec keys are
the window's description (:class:`~thermo_lightning.spec.WindowSpec`) as it is written once
into the hyperparameters of a run and read back by the report.
"""

from __future__ import annotations

__all__ = [
    "CONF_GHG",
    "CONF_GRAD_SQ",
    "CONF_LAPLACIAN",
    "CORRELATION_TIME",
    "DUPLICATES",
    "ELR",
    "ENERGY",
    "ENERGY_WINDOW",
    "ENTROPY",
    "ESS",
    "FDR",
    "FIT_END",
    "FIT_ID",
    "FIT_START",
    "FREE_ENERGY",
    "GRAD_NORM",
    "HALVES",
    "LOW_ESS",
    "METRICS",
    "NOISE_SCALE",
    "PREFIX",
    "SKIPPED",
    "SNR",
    "SPEC_PREFIX",
    "STOCH_GRAD_NORM",
    "STRIDE",
    "TRAIN_ACC",
    "T_CONF",
    "T_LOCAL",
    "WEIGHT_NORM",
    "WINDOW_FILL",
    "custom_scalars_layout",
    "entropy_key",
]

PREFIX = "thermo/"
ENERGY = PREFIX + "U"  #: mean training loss over the window (or the full-data loss)
ENERGY_WINDOW = PREFIX + "U_window"  #: U where the window is full (where S exists)
ENTROPY = PREFIX + "S"  #: entropy of the window for the first k
T_LOCAL = PREFIX + "T_local"  #: dU/dS along the run, where U and S drift together
FREE_ENERGY = PREFIX + "F"  #: U - T S for a given temperature
SNR = PREFIX + "snr"  #: gradient signal-to-noise ratio
GRAD_NORM = PREFIX + "grad_norm"  #: ||g||, full-data gradient norm (estimated or exact)
STOCH_GRAD_NORM = PREFIX + "stoch_grad_norm"  #: mean_b ||g_b||
NOISE_SCALE = PREFIX + "noise_scale"  #: tr(Sigma) / ||g||^2
ELR = PREFIX + "elr"  #: effective learning rate lr / ||w||^2
WEIGHT_NORM = PREFIX + "weight_norm"  #: joint norm of the scale-invariant group
ESS = PREFIX + "ess"  #: effective sample size of the window
LOW_ESS = PREFIX + "low_ess"  #: 1 when a window's ESS is below a quarter of its snapshots
#: mean z^2 of the difference between a window's two halves (about 1 when both sample one
#: law; far above: a hop between modes, or a drift slower than the window)
HALVES = PREFIX + "halves_chi2"
CORRELATION_TIME = PREFIX + "corr_time"  #: the weights' correlation time (stride="auto")
WINDOW_FILL = PREFIX + "window_fill"  #: fraction of the window filled
STRIDE = PREFIX + "stride"  #: steps between snapshots
DUPLICATES = PREFIX + "duplicates"  #: snapshots whose nearest neighbour is identical
SKIPPED = PREFIX + "skipped"  #: snapshots dropped for NaN/Inf (total)
CONF_GRAD_SQ = PREFIX + "conf_grad_sq"  #: ||grad_S U||^2 at a logging point (unbiased)
CONF_LAPLACIAN = PREFIX + "conf_laplacian"  #: Delta_S U at a logging point (Hutchinson)
T_CONF = PREFIX + "T_conf"  #: configurational temperature over the later half of the run so far
CONF_GHG = PREFIX + "conf_gHg"  #: E[g_b^T H g_b] at a logging point (mini-batch gradients)
FDR = PREFIX + "fdr"  #: ||grad U||^2 / (lr/2 E[g_b^T H g_b]): 1 at stationarity (plain SGD)
FIT_START = PREFIX + "fit_start"  #: the step a fit's training starts at (> 0: resumed)
FIT_END = PREFIX + "fit_end"  #: the step a fit's training ended at (absent: it was cut)
#: a training's identity, logged at each fit's start: a random number drawn at its first fit,
#: kept in the callback's checkpoint state, so a fit resumed from it logs the same one
FIT_ID = PREFIX + "fit_id"
TRAIN_ACC = "train/acc"  #: training accuracy (logged by the classification task)

#: every fixed metric key, in the order the documentation lists them
METRICS = (ENERGY, ENERGY_WINDOW, ENTROPY, T_LOCAL, FREE_ENERGY, SNR, GRAD_NORM,
           STOCH_GRAD_NORM, NOISE_SCALE, ELR, WEIGHT_NORM, ESS, LOW_ESS, HALVES, CORRELATION_TIME,
           WINDOW_FILL, STRIDE, DUPLICATES, SKIPPED, T_CONF, CONF_GRAD_SQ, CONF_LAPLACIAN,
           FDR, CONF_GHG, FIT_START, FIT_END, FIT_ID)

#: prefix of the window's description in a run's hyperparameters (``thermo_spec/window``, ...)
SPEC_PREFIX = "thermo_spec/"


def entropy_key(k: int) -> str:
    """``thermo/S_k{k}``."""
    return f"{PREFIX}S_k{k}"


def custom_scalars_layout() -> dict:
    """TensorBoard custom-scalars layout: one "thermo" category, one scale per chart.

    Tags are regular expressions (anchored at the start), so the layout is the same for
    every run whatever its ``k`` (``thermo/S_k20``, ``thermo/S_k50``, ...) and TensorBoard
    shows each chart once over many runs and sweeps. ``thermo/T_local`` is left to the
    Time Series tab (a noisy estimate; the report's ``T(eta)`` is the temperature)."""
    def lines(*tags: str) -> list:
        return ["Multiline", [f"{t}$" for t in tags]]

    return {
        "thermo": {
            "energy U": lines(ENERGY),
            "energy U where the window is full (no first steps)": lines(ENERGY_WINDOW),
            "entropy S (every k)": lines(ENTROPY + r"(_k\d+)?"),
            # (``_not_valid``: the report's T for the run's row is not valid)
            "F along training (F = U - T S)": lines(FREE_ENERGY + "(_report)?(_not_valid)?"),
            "gradient SNR": lines(SNR),
            "gradient noise scale": lines(NOISE_SCALE),
            "gradient norms": lines(GRAD_NORM, STOCH_GRAD_NORM),
            "weight norm": lines(WEIGHT_NORM),
            "effective learning rate": lines(ELR),
            "window ESS": lines(ESS),
            "window halves (about 1 where the window samples its law)": lines(HALVES),
            "window fill": lines(WINDOW_FILL),
            "stride": lines(STRIDE),
            "duplicate and skipped snapshots": lines(DUPLICATES, SKIPPED),
        }
    }
