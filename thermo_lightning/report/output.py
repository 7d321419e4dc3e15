"""Where a report writes, and what it will never touch.

A report is written into a staging folder inside ``OUT`` (``OUT/.thermo_report.partial-*``)
and installed only when it is complete: its files are moved into ``OUT`` and listed in
``OUT/.thermo_report.json``, the report's manifest. The next report (with ``--force``)
replaces exactly the files that manifest lists, so an earlier report's ``fit.json`` or figure
that this one has no data for goes, and nothing else does. A file in ``OUT`` that the report
did not write is never deleted or rewritten: where it bears a name the report would write
(``runs.csv``, ``snr.png``, ``tensorboard/``, ...), the report refuses that ``OUT``. A report
that fails leaves ``OUT`` as it was. ``OUT`` may not be the folder of runs itself, nor a run's
folder or a folder inside one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

__all__ = ["FIGURE_NAMES", "MANIFEST", "REPORT_FILES", "ReportOutput"]

#: the report's manifest: the files of ``OUT`` it wrote
MANIFEST = ".thermo_report.json"
_STAGING = ".thermo_report.partial-"
#: every figure the report can write (``<name>.png``); those without data are not written
FIGURE_NAMES = ("u_s_vs_lr", "u_vs_s", "temperature", "free_energy", "collapse",
                "local_temperature", "snr")
#: every name a report may write into ``OUT``
REPORT_FILES = ("temperature.csv", "runs.csv", "free_energy.csv", "fit.json", "collapse.json",
                "messages.txt", "tensorboard", *(f"{name}.png" for name in FIGURE_NAMES))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class ReportOutput:
    """The report's folder ``out``, checked; a staging folder to write into (a context
    manager: removed on an error), and :meth:`install`.

    Args:
        out: the report's folder.
        logdir: the folder of runs.
        runs: the run folders found under it.
        force: replace a report already in ``out`` (one with a manifest).

    Raises:
        NotADirectoryError: ``out`` is a file.
        ValueError: ``out`` is the folder of runs, a run's folder or inside one.
        FileExistsError: ``out`` holds a report and ``force`` is false; or it holds files
            with the report's names that no report wrote (whatever ``force`` says).
    """

    def __init__(self, out: Path, logdir: Path, runs: Iterable[Path], force: bool) -> None:
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise NotADirectoryError(f"--out {out} is a file; the report needs a folder there.")
        target = self.out.resolve()
        if target == Path(logdir).resolve():
            raise ValueError(f"--out {out} is the folder of runs itself; the report goes into a "
                             f"folder of its own (default {Path(logdir) / 'report'}).")
        for run in runs:
            if run.resolve() == target or run.resolve() in target.parents:
                raise ValueError(f"--out {out} is inside the run folder {run}: a report there "
                                 "would mix with the run's own files. Choose another --out "
                                 f"(default {Path(logdir) / 'report'}).")
        self.previous = self._manifest()
        if self.previous is not None and not force:
            raise FileExistsError(f"{out} already holds a report ({MANIFEST}); pass --force to "
                                  "replace it, or choose another --out.")
        foreign = [name for name in REPORT_FILES if (self.out / name).exists()
                   and name not in (self.previous or [])]
        if foreign:
            raise FileExistsError(
                f"{out} holds {', '.join(foreign)}, which the report would write, but no "
                f"report wrote them there (they are not in its manifest {MANIFEST}; reports "
                "written before the manifest existed have none), so they are left alone: "
                "choose another --out, or move them away first.")
        self.staging: Path | None = None
        self._made_out = False

    def _manifest(self) -> list[str] | None:
        """The files an earlier report wrote into ``out`` (``None``: no report there)."""
        path = self.out / MANIFEST
        if not path.is_file():
            return None
        try:
            files = json.loads(path.read_text()).get("files", [])
        except (ValueError, AttributeError):
            files = []
        # only names a report writes: a hand-edited manifest never deletes anything else
        return [f for f in files if f in REPORT_FILES]

    def __enter__(self) -> Path:
        self._made_out = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        self.staging = self.out / f"{_STAGING}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        return self.staging

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        if kind is not None and self._made_out and self.out.is_dir() and not any(
                self.out.iterdir()):
            self.out.rmdir()  # a failed report leaves no folder it made

    def install(self) -> list[str]:
        """Move the staged report into ``out``: the earlier report's files (its manifest)
        are removed, the new ones moved in, and the manifest rewritten. Returns the names
        installed."""
        assert self.staging is not None, "install inside the `with` block"
        names = sorted(p.name for p in self.staging.iterdir())
        unknown = [n for n in names if n not in REPORT_FILES]
        assert not unknown, f"the report staged files it does not own: {unknown}"
        for name in self.previous or []:
            _remove(self.out / name)
        for name in names:
            if (self.out / name).exists():  # appeared since the check: not ours
                raise FileExistsError(f"{self.out / name} appeared while the report was "
                                      "written; it is left alone and the report not installed.")
            os.replace(self.staging / name, self.out / name)
        tmp = self.out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"version": 1, "files": names}, indent=2))
        tmp.replace(self.out / MANIFEST)
        return names
