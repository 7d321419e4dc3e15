"""What a worker says about its run: progress lines written and read in one place, and its
warnings found in its log."""

from __future__ import annotations

from pathlib import Path

from thermo_lightning.launch.progress import (
    Progress,
    format_progress,
    last_progress,
    parse_progress,
    progress_summary,
    warnings_in,
)


def test_a_progress_line_is_read_back_as_written() -> None:
    line = format_progress({"lr": 0.01, "batch_size": 64, "seed": 1}, 1300, 13000, 0.4)
    assert line == "lr=0.01 batch_size=64 seed=1 step 1300/13000, window 40%"
    assert parse_progress(line) == Progress("lr=0.01 batch_size=64 seed=1", 1300, 13000, 40)
    unknown = format_progress({"seed": 0, "lr": 2e-4}, 7, None)  # lr first whatever the order
    assert unknown == "lr=0.0002 seed=0 step 7/?"
    assert parse_progress(unknown) == Progress("lr=0.0002 seed=0", 7, None, None)
    # during stride="auto"'s pilot the window is stride 1's, not the run's: not "window 100%"
    pilot = format_progress({"lr": 0.01}, 150, 2000, 1.0, pilot=True)
    assert pilot == "lr=0.01 step 150/2000, stride pilot"
    assert parse_progress(pilot) == Progress("lr=0.01", 150, 2000, None, pilot=True)
    for other in ("noise", "lr=0.01 step x/3", "/x/meter.py:3: ThermoMeter: lr=0.01 step 1/2",
                  ""):
        assert parse_progress(other) is None


def test_the_last_progress_line_of_each_running_worker(tmp_path: Path) -> None:
    lines = [format_progress({"lr": 0.01}, s, 200, s / 200) for s in (2, 4, 6)]
    log = tmp_path / "w.log"
    log.write_text("noise\n" + "\n".join(lines) + "\nWarning: x\n")
    assert last_progress(log) == lines[2] and last_progress(tmp_path / "missing.log") == ""
    # the bar's line over running workers: one that logged nothing yet adds no bare "; "
    missing = tmp_path / "missing.log"
    assert progress_summary([log, missing]) == lines[2]
    assert progress_summary([missing, log, log]) == f"{lines[2]}; {lines[2]}"
    assert progress_summary([missing]) == ""


def test_worker_warnings_are_read_from_its_log(tmp_path: Path) -> None:
    log = tmp_path / "lr=1.00e-02.log"
    log.write_text(
        "lr=0.01 step 100/4000, window 10/50\n"
        "/x/thermo_lightning/meter.py:350: ThermoMeter: the stride is capped at 36.\n"
        "/x/thermo_lightning/meter.py:350: ThermoMeter: the stride is capped at 36.\n"
        "/x/a.py:3: UserWarning: ThermoCallback: the network has not learned.\n"
        "/x/lightning/trainer.py:9: UserWarning: something of Lightning's\n"
        "warning: ThermoMeter: low ESS.\n")  # as the command line now shows them
    assert warnings_in(log) == ["ThermoMeter: the stride is capped at 36.",
                                 "ThermoCallback: the network has not learned.",
                                 "ThermoMeter: low ESS."]
    assert warnings_in(tmp_path / "missing.log") == []




def test_the_command_line_shows_the_packages_warnings_without_source_paths(
        tmp_path: Path, capsys) -> None:
    # a new user's trial: every warning began with /.../site-packages/thermo_lightning/...
    import warnings

    from thermo_lightning import cli
    from thermo_lightning.meter import ThermoMeter

    here = cli._package_line("ThermoMeter: the stride is capped.",
                             ThermoMeter.__module__.replace(".", "/") + ".py")
    inside = cli._package_line("the extra passes compute losses",
                               str(Path(cli.__file__).parent / "probes.py"))
    assert here == "warning: ThermoMeter: the stride is capped.\n"
    assert inside == "warning: the extra passes compute losses\n"
    # others are left to Python (or Lightning's own formatter, once imported)
    assert cli._package_line("of Lightning's", "/x/lightning/a.py") is None
    import io

    out = io.StringIO()  # what the command line writes (Lightning replaces formatwarning)
    cli._show_warning("ThermoMeter: low ESS.", UserWarning,
                      str(Path(cli.__file__).parent / "meter.py"), 229, out)
    assert out.getvalue() == "warning: ThermoMeter: low ESS.\n"
    before = warnings.showwarning
    assert cli.main(["report", str(tmp_path / "none")]) == 2
    assert warnings.showwarning is before  # put back after the command
    assert "not a folder of runs" in capsys.readouterr().err


def test_a_user_running_one_run_sees_a_line_every_ten_seconds(monkeypatch) -> None:
    # a new user's trial: a pasted sweep-run printed a progress line every 1% of its steps
    # (the lines a worker's parent parses); for a person, one per interval
    from thermo_lightning.launch import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    said: list[str] = []
    say = progress.throttled(lambda line, **kw: said.append(line), 10)
    for i in range(100):
        now[0] = i * 0.5  # a line every half second for 50 s
        say(f"step {i}", flush=True)
    assert said == ["step 0", "step 20", "step 40", "step 60", "step 80"]
    every = progress.throttled(lambda line, **kw: said.append(line), 0)
    every("a"), every("b")
    assert said[-2:] == ["a", "b"]
