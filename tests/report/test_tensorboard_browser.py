"""``thermo-lightning demo --quick``, then a real ``tensorboard --logdir`` on its folder (two
sweeps, their reports): checked through TensorBoard's HTTP data API (which says what is
missing) and in headless Chromium (what a user sees: the free-energy charts, the hparams
table, the report's images)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import tensorboard_browser as tb
from thermo_lightning.cli import main
from thermo_lightning.keys import custom_scalars_layout
from thermo_lightning.report import tensorboard_view as board

pytestmark = pytest.mark.slow

SWEEPS = ("known-temperature", "digits-convnet")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The quick demo's folder and what it printed."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def served(demo: tuple[Path, str]) -> Iterator[tuple[str, Path]]:
    out, _ = demo
    with tb.tensorboard_server(out) as url:
        yield url, out


def test_demo_quick(demo: tuple[Path, str]) -> None:
    out, printed = demo
    assert all(name in printed for name in SWEEPS)
    assert "T_ci_lo" in printed  # the intervals are printed
    assert printed.strip().splitlines()[-1] == f"To browse both: tensorboard --logdir {out}"
    for name in SWEEPS:
        assert (out / name / "report" / "runs.csv").exists()
    # the known-temperature sweep runs 3 seeds: its rows carry intervals
    t = pd.read_csv(out / "known-temperature" / "report" / "temperature.csv")
    assert len(t) == 5 and (t["n_runs"] == 3).all()
    inner = t[~t["end"]]  # the end rows: one chord, not valid, no interval (issue 27)
    assert inner["T_ci_lo"].notna().all() and (inner["T_ci_lo"] <= inner["T_ci_hi"]).all()
    assert t.loc[t["end"], "T_ci_lo"].isna().all()


def _names(out: Path) -> list[str]:
    """The runs' TensorBoard entries: ``SWEEP/lr=...[,seed=N]/tensorboard``."""
    return sorted(f"{p.relative_to(out).as_posix()}/tensorboard" for name in SWEEPS
                  for p in (out / name).glob("lr=*") if p.is_dir())


def _t_valid(out: Path) -> dict[str, bool]:
    """Each run entry's ``T_valid`` (its row of ``T(eta)`` is valid), from the reports'
    ``runs.csv``."""
    valid = {}
    for sweep in SWEEPS:
        table = pd.read_csv(out / sweep / "report" / "runs.csv")
        for run, ok in zip(table["run"], table.get("T_valid", pd.Series(False, table.index)),
                           strict=True):
            valid[f"{sweep}/{run}/tensorboard"] = bool(ok) if pd.notna(ok) else True
    return valid


def test_data_api_one_entry_per_run_and_the_report(served: tuple[str, Path]) -> None:
    url, out = served
    names = _names(out)
    assert len(names) == 15 + 3  # 5 LRs x 3 seeds, 3 LRs
    reports = [f"{name}/report/tensorboard" for name in SWEEPS]
    runs = tb.get_json(url, "/data/runs")
    assert sorted(runs) == sorted([*names, *reports]), runs  # nothing else
    tags = tb.get_json(url, "/data/plugin/scalars/tags")
    known = pd.read_csv(out / "known-temperature" / "report" / "temperature.csv")
    ends = {f"lr={lr:.4g}" for lr in known.loc[known["end"], "lr"]}
    valid = _t_valid(out)
    for name in names:
        # a run whose row's T is not valid has its T and F under tags that say so (issue 30)
        mark = "" if valid[name] else "_not_valid"
        wanted = {"thermo/U", "thermo/U_window", "thermo/S", f"thermo/F{mark}", "stationary/U",
                  f"stationary/F{mark}", "stationary/U_mean", "stationary/S_mean",
                  f"stationary/T{mark}"}
        lr = name.split("/")[1].split(",")[0]  # lr=2.00e-02
        if name.startswith("known-temperature") and f"lr={float(lr[3:]):.4g}" not in ends:
            wanted |= {"stationary/T_ci_lo", "stationary/T_ci_hi"}  # 3 seeds: an interval
        missing = wanted - set(tags[name])
        assert not missing, (name, missing)
    images = tb.get_json(url, "/data/plugin/images/tags")
    for report in reports:
        assert {"sweep/lr", "sweep/T", "report/eta_star"} <= set(tags[report]), report
        assert any(t.startswith("free_energy/row") for t in tags[report]), report
        assert {"report/temperature", "report/free_energy", "report/u_vs_s"} <= set(
            images[report]), images
    # the known problem: the true T, and the seeds' intervals
    assert {"sweep/T_true", "sweep/T_ci_lo", "sweep/T_ci_hi"} <= set(tags[reports[0]])

    layout = tb.get_json(url, "/data/plugin/custom_scalars/layout")
    charts = {cat["title"]: [c["title"] for c in cat["chart"]] for cat in layout["category"]}
    expected = {**custom_scalars_layout(), **board.report_layout()}
    assert set(charts) == set(expected), charts
    # every run and both reports wrote the same layouts: each chart once
    for title, chart_titles in charts.items():
        assert sorted(chart_titles) == sorted(expected[title]), title

    groups = tb.session_groups(url)
    sessions = [s["name"] for g in groups["sessionGroups"] for s in g["sessions"]]
    assert sorted(sessions) == names  # one row per run, each run's own entry
    experiment = tb.get_json(url, "/data/plugin/hparams/experiment", {"experimentName": ""})
    columns = {h["name"] for h in experiment["hparamInfos"]}
    assert {"lr", "seed", "regime", "in_T_eta"} <= columns, columns
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert metrics == list(board.HPARAM_METRICS)
    for group in groups["sessionGroups"]:
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        (session,) = group["sessions"]
        shown = {"stationary/U_mean", "stationary/S_mean"} | (
            {"stationary/T"} if valid[session["name"]] else set())  # a T not valid: blank
        assert shown <= set(values), (group["name"], values)


REQUIRED = bool(os.environ.get("THERMO_REQUIRE_BROWSER") or os.environ.get("CI"))


@pytest.mark.skipif(tb.browser_available() is not None and not REQUIRED,
                    reason=str(tb.browser_available()))
def test_in_chromium(served: tuple[str, Path], tmp_path: Path) -> None:
    # in CI (.ci/run installs the browser) a missing one is a failure, not a skip
    assert tb.browser_available() is None, tb.browser_available()
    url, out = served
    n_runs = len(_names(out))
    with tb.chromium() as driver:
        # ready once the charts' series arrived ("Matches (0)" before)
        text = tb.open_tab(driver, url, "custom_scalars",
                           lambda t: tb.matches_after(t, "F along training") == n_runs
                           and (tb.matches_after(t, "one line per T") or 0) > 0)
        for title in ("free energy F_T(eta) - min F_T, one line per T",
                      "T(eta) (valid rows), the rows not valid, and the true T where known",
                      "energy U where the window is full (no first steps)"):
            assert title in text, title
        # the chart's series: thermo/F of every run; the family's lines in the report entry
        assert tb.matches_after(text, "F along training") == n_runs
        assert tb.matches_after(text, "one line per T") >= 2
        driver.save_screenshot(str(tmp_path / "custom_scalars.png"))

        groups = r"Number of matching session groups: (\d+)"
        text = tb.open_tab(driver, url, "hparams", lambda t: re.search(groups, t) is not None)
        found = re.search(groups, text)
        assert found and int(found.group(1)) == n_runs, text[:500]
        for column in ("stationary/T", "regime", "in_T_eta"):
            assert column in text, column
        driver.save_screenshot(str(tmp_path / "hparams.png"))

        tb.open_tab(driver, url, "images", lambda t: "report/temperature" in t)
        loaded = _loaded_images(driver)
        assert len(loaded) >= 3, loaded  # rendered, not broken links
        driver.save_screenshot(str(tmp_path / "images.png"))
    for name in ("custom_scalars", "hparams", "images"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def _loaded_images(driver: object, timeout: float = 30.0) -> list[str]:
    """The report images the page has loaded (naturalWidth > 0), waiting for them."""
    import time

    deadline = time.monotonic() + timeout
    loaded: list[str] = []
    while time.monotonic() < deadline:
        images = driver.execute_script(tb.DEEP_IMAGES)  # type: ignore[attr-defined]
        loaded = [src for src, width in images if "individualImage" in src and width > 0]
        if len(loaded) >= 3:
            break
        time.sleep(0.5)
    return loaded
