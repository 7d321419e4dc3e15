"""The job a remote worker runs for one run (a Ray task, a SLURM array task): start the
run's ``sweep-run`` command, told to stop when this worker dies, its output appended to the
run's log; the exit status. A worker that is stopped (a cancelled job: SIGINT) stops its run
first, so that no run outlives its worker."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["run_command"]


def run_command(command: Sequence[str], log: str, pid_file: str | None = None) -> int:
    """Run ``command`` (plus ``--parent-pid`` of this process) with its output appended to
    ``log``; ``pid_file``: where to write this worker's pid (tests find the worker there)."""
    if pid_file is not None:
        Path(pid_file).write_text(str(os.getpid()))
    with open(log, "a") as f:
        proc = subprocess.Popen([*command, "--parent-pid", str(os.getpid())], stdout=f,
                                stderr=subprocess.STDOUT)
        try:
            return proc.wait()
        except BaseException:  # the worker is stopped (a job cancelled): so is its run
            proc.terminate()  # SIGTERM: the run is marked interrupted and resumes later
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
