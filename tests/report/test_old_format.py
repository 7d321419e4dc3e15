"""A sweep folder written before the run folder had one owner (``tests/fixtures/old_format``,
thermo_lightning 6ed3ab5) is read by today's report with the same results."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from thermo_lightning.report import make_report
from thermo_lightning.report.intervals import MIN_BLOCKS
from thermo_lightning.report.temperature import END_REASON

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES / "tools"))
from cases import CASES  # noqa: E402

#: what the report deliberately computes differently since 6ed3ab5: the trend test covers the
#: last windows at the final stride and counts overlapping windows once (issue 26), so its
#: slopes, t-statistics and the new trend_points column differ, and runs with too few
#: windows for it are said in one message. Regimes, T and fits are unchanged.
CHANGED_COLUMNS = ["U_slope", "U_slope_t", "S_slope", "S_slope_t", "trend_points",
                   "stride_capped",  # (new in issue 27; no fixture run is capped)
                   "T_valid",  # new in issue 30: whether the run's row of T(eta) is valid
                   "uniform_gap"]  # new in issue 27: (S_uniform - S) / d
#: the seeds' intervals are about each row's own T since issue 27 (they were about the
#: seeds' geometric mean), the end rows have none, and the others' widths pool the interior
#: rows' spread: centred on T (checked, then left out)
CENTRED = ["T_ci_lo", "T_ci_hi"]
NEW_MESSAGES = ("too few to test for a trend",  # the trend test (issue 26)
                "left out of T(eta) (", "outside --lr-range left out of T(eta)",  # issue 30
                "refilled inside the tail",  # issue 26, second round
                "have one chord each, a biased slope",  # the end rows (issue 27)
                "fewer than 2 seeds have a valid T there",  # why no interval (issue 26)
                "the exponent's interval: none",
                "had windows with a low ESS during training")  # issue 30, a new user's trial
#: messages reworded since: a list of runs as "a, b, c and 5 more" (was "a, b, c, ..."),
#: "needs at least 3 ... with runs in it" (was "3 stationary ..."):
#: compared up to the changed words
REWORDED = ("have no TensorBoard log (", "needs at least 3")


def _reworded(line: str) -> str:
    for start in REWORDED:
        if start in line:
            return line[:line.index(start) + len(start)] + "...\n"
    return line


def _ends(table: pd.DataFrame, temperature: pd.DataFrame) -> np.ndarray:
    """Which rows of ``table`` (``temperature.csv`` or ``runs.csv``) belong to an end row of
    ``temperature`` (one chord: no interval since issue 27)."""
    if "end" in table:
        return table["end"].to_numpy(bool)
    key = [c for c in temperature.columns[:list(temperature.columns).index("U")]
           if c != "group"]
    ends = temperature.loc[temperature["end"], key].assign(_end=True)
    return table[key].merge(ends, on=key, how="left")["_end"].fillna(False).to_numpy(bool)


def _centred_about_t(got: pd.DataFrame, want: pd.DataFrame, ends: np.ndarray) -> None:
    """``got``'s intervals are centred (geometrically) on
    each row's ``T``; rows without an interval stay without, and the end rows have none."""
    assert got.loc[ends, "T_ci_lo"].isna().all()
    got, want = got[~ends], want[~ends]
    assert got["T_ci_lo"].isna().tolist() == want["T_ci_lo"].isna().tolist()
    g = got.dropna(subset=CENTRED)
    if g.empty:
        return
    # the widths: the seeds' spread pooled over the interior rows only since issue 27 (the
    # end rows' chords are not valid), so no longer the old ones; a positive width still
    assert (np.log(g["T_ci_hi"] / g["T_ci_lo"]).to_numpy() > 0).all()
    centre = np.sqrt(g["T_ci_lo"] * g["T_ci_hi"]).to_numpy()
    assert centre == pytest.approx(g["T"].to_numpy(), rel=1e-9)


def _capped_block_need(got: pd.DataFrame, want: pd.DataFrame, tail: float) -> None:
    """Since issue 27 an autocorrelation time is at most its series' length (a lag-1
    correlation near 1 gave 2e12 steps from 150 values), so a block is at most twice the
    tail: ``tail_for_bootstrap`` (``MIN_BLOCKS * block * tail / tail_points``) is the old one
    where that was below ``2 MIN_BLOCKS tail`` and at least that bound (at most the old
    value) above it. Checked, then made equal."""
    if "tail_for_bootstrap" not in want:
        return
    cap = 2 * MIN_BLOCKS * tail
    old, new = want["tail_for_bootstrap"].to_numpy(), got["tail_for_bootstrap"].to_numpy()
    below = ~(old > cap * (1 + 1e-12))  # (NaN: no bootstrap then, none now)
    np.testing.assert_allclose(new[below], old[below], rtol=1e-12)
    assert ((new[~below] >= cap * (1 - 1e-12)) & (new[~below] <= old[~below])).all()
    want["tail_for_bootstrap"] = got["tail_for_bootstrap"]


def _exponent_centred(fit: dict, old: dict) -> None:
    """The exponent's interval is about the fitted ``a`` since issue 26 (it was about the
    seeds' mean exponent): same width, holds ``a``; checked, then left out of both."""
    if fit.get("a_ci_lo") is None or old.get("a_ci_lo") is None:
        return
    assert fit["a_ci_lo"] <= fit["a"] <= fit["a_ci_hi"]
    assert fit["a_ci_hi"] - fit["a_ci_lo"] == pytest.approx(old["a_ci_hi"] - old["a_ci_lo"],
                                                            rel=1e-9)
    for side in ("a_ci_lo", "a_ci_hi"):
        fit.pop(side), old.pop(side)


def _same_json(got: object, want: object) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and all(
            _same_json(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            _same_json(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, float) and isinstance(got, int | float):
        return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300)
    return got == want


#: cases whose 6ed3ab5 report came from a bug fixed since, checked by their own test below
FIXED = {"lightning_logs": "its TensorBoard versions (3-5) were read without thermo/stride, "
                           "so their tails mixed the pilot's windows in (issue 27)"}


@pytest.mark.parametrize("case", sorted(set(CASES) - set(FIXED)))
def test_an_old_sweep_folder_gives_the_same_report(case: str, tmp_path: Path) -> None:
    folder, kwargs = CASES[case]
    logdir = tmp_path / folder
    shutil.copytree(FIXTURES / "old_format" / folder, logdir)
    out = tmp_path / "report"
    make_report(logdir, out, construction="bracket", **kwargs)  # the construction of then
    expected = FIXTURES / "old_format_expected" / case
    written = {p.name for p in out.iterdir() if p.suffix in (".csv", ".json", ".txt")
               and not p.name.startswith(".")}  # the manifest is new (issue 26)
    assert written == {p.name for p in expected.iterdir()}
    for want in sorted(expected.iterdir()):
        got = (out / want.name).read_text().replace(str(logdir), "<logdir>")
        if want.suffix == ".csv":
            from io import StringIO

            got_table, want_table = pd.read_csv(StringIO(got)), pd.read_csv(want)
            if set(CENTRED) <= set(want_table):
                temperature = pd.read_csv(out / "temperature.csv")
                _centred_about_t(got_table, want_table, _ends(got_table, temperature))
                got_table = got_table.drop(columns=CENTRED)
                want_table = want_table.drop(columns=CENTRED)
            if "end" in got_table and "end" not in want_table:  # issue 27: end rows are
                assert (got_table["valid"] == want_table["valid"] & ~got_table["end"]).all()
                got_table = got_table.drop(columns=["end"])  # marked, and not valid
                want_table["valid"] = got_table["valid"]
                if "reason" in want_table:
                    reason = got_table.pop("reason").astype(object).fillna("").astype(str)
                    assert reason.where(reason != END_REASON, "").tolist() == \
                        want_table.pop("reason").astype(object).fillna("").astype(str).tolist()
            if "halves" in got_table and "halves" not in want_table:  # issue 27: old runs
                assert not got_table.pop("halves").any()  # logged no thermo/halves_chi2
            if "near_uniform" in got_table and "near_uniform" not in want_table:  # issue 27
                assert not got_table.pop("near_uniform").any()  # none near the uniform S
            if "unchecked" in got_table and "unchecked" not in want_table:  # issue 27: the
                assert not got_table.pop("unchecked").any()  # bracket needs no errors
            if want.name == "runs.csv":
                assert not got_table.get("stride_capped", pd.Series(dtype=bool)).any()
                _capped_block_need(got_table, want_table, kwargs.get("tail", 0.15))
                got_table = got_table.drop(columns=[c for c in CHANGED_COLUMNS
                                                    if c in got_table])
                want_table = want_table.drop(columns=[c for c in CHANGED_COLUMNS
                                                      if c in want_table])
            pd.testing.assert_frame_equal(got_table, want_table,
                                          check_exact=False, rtol=1e-12, atol=0)
        elif want.suffix == ".json":
            loaded, wanted_json = json.loads(got), json.loads(want.read_text())
            for fit in [loaded, *loaded.get("groups", {}).values()]:
                fit.pop("construction", None)  # new: the report's construction (issue 27)
            for fit, old in zip([loaded, *loaded.get("groups", {}).values()],
                                [wanted_json, *wanted_json.get("groups", {}).values()],
                                strict=True):
                _exponent_centred(fit, old)
            assert _same_json(loaded, wanted_json), want.name
        else:
            kept = [_reworded(line) for line in got.splitlines(keepends=True)
                    if not any(m in line for m in NEW_MESSAGES)]
            wanted = [_reworded(line) for line in want.read_text().splitlines(keepends=True)]
            assert kept == wanted, want.name


def test_old_lightning_logs_give_the_table_of_the_same_runs_history(tmp_path: Path) -> None:
    # lightning_logs/ holds the seeds folder's seed-1 runs as Lightning folders (versions 0-2
    # metrics.csv, 3-5 TensorBoard events): read either way, the same runs, the same table
    logs = tmp_path / "lightning_logs"
    shutil.copytree(FIXTURES / "old_format" / "lightning_logs", logs)
    plain = tmp_path / "seed1"
    for run in sorted((FIXTURES / "old_format" / "seeds").glob("lr=*,seed=1")):
        shutil.copytree(run, plain / run.name)
    own = make_report(logs, tmp_path / "own")
    ref = make_report(plain, tmp_path / "ref")
    got, want = (r.runs.set_index("lr").sort_index() for r in (own, ref))
    assert got["regime"].tolist() == want["regime"].tolist()
    assert got["tail_points"].tolist() == want["tail_points"].tolist()
    for col in ("U", "S"):  # TensorBoard and metrics.csv keep float32
        assert got[col].to_numpy() == pytest.approx(want[col].to_numpy(), rel=1e-6)
    pd.testing.assert_series_equal(own.temperature.set_index("lr")["T"],
                                   ref.temperature.set_index("lr")["T"], rtol=1e-5)
    # the metrics.csv versions read as 6ed3ab5 read them
    expected = pd.read_csv(FIXTURES / "old_format_expected" / "lightning_logs" / "runs.csv")
    csv_versions = expected[expected["run"].isin(["version_0", "version_1", "version_2"])]
    mine = own.runs.set_index("run").loc[csv_versions["run"]]
    for col in ("U", "S"):
        assert mine[col].tolist() == pytest.approx(csv_versions[col].tolist(), rel=1e-12)
    for col in ("tail_points", "regime"):
        assert mine[col].tolist() == csv_versions[col].tolist()
