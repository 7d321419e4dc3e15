"""Where a report writes, and what it will never touch.

A report is written into a staging folder inside ``OUT`` (``OUT/.thermo_report.partial-*``)
and installed only when it is complete: its files are moved into ``OUT`` and listed, file by
file, in ``OUT/.thermo_report.json``, the report's manifest (``tensorboard/events...`` for
the files inside ``OUT/tensorboard``). The next report (with ``--force``) replaces exactly the
files that manifest lists, so an earlier report's ``fit.json`` or figure that this one has no
data for goes, and nothing else does: a file the user put into ``OUT`` or into the report's
own ``OUT/tensorboard`` stays, and the new report's files are merged around it. A file the
report did not write is never deleted or rewritten: where one bears a name the report would
write (``runs.csv``, ``snr.png``, a ``tensorboard/`` no report wrote into, ...), the report
refuses that ``OUT``. A report that fails leaves ``OUT`` as it was. ``OUT`` may not be the
folder of runs itself, nor a folder that holds runs, nor a run's folder or a folder inside
one.

Manifests of version 1 (before 2026-12-05) list ``tensorboard`` as a whole folder; of it,
only the event files (``events.out.tfevents.*``, what the report writes there) are taken as
the report's.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from types import TracebackType

__all__ = ["FIGURE_NAMES", "MANIFEST", "REPORT_FILES", "ReportOutput"]

#: the report's manifest: the files of ``OUT`` it wrote
MANIFEST = ".thermo_report.json"
_VERSION = 2
_STAGING = ".thermo_report.partial-"
#: every figure the report can write (``<name>.png``); those without data are not written
FIGURE_NAMES = ("u_s_vs_lr", "u_vs_s", "temperature", "free_energy", "collapse",
                "local_temperature", "snr")
#: every name a report may write into ``OUT`` (``tensorboard`` is a folder of files)
REPORT_FILES = ("temperature.csv", "runs.csv", "free_energy.csv", "fit.json", "collapse.json",
                "messages.txt", "tensorboard", *(f"{name}.png" for name in FIGURE_NAMES))
_EVENTS = "events.out.tfevents."


def _files_under(folder: Path) -> list[str]:
    """Every file (or link) below ``folder``, as posix paths relative to it, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() or p.is_symlink())


def _owned(name: str) -> bool:
    """Whether ``name`` (a manifest entry) is a path a report writes: under one of
    :data:`REPORT_FILES`, relative, without ``..`` (a hand-edited manifest never makes the
    report delete anything else)."""
    path = PurePosixPath(name)
    return (not path.is_absolute() and ".." not in path.parts and len(path.parts) > 0
            and path.parts[0] in REPORT_FILES and (len(path.parts) == 1
                                                   or path.parts[0] == "tensorboard"))


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
        ValueError: ``out`` is the folder of runs, holds runs, is a run's folder or inside
            one.
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
            if target in run.resolve().parents:
                raise ValueError(f"--out {out} holds the run {run}: the report's files would "
                                 "mix with the runs. Choose a folder of its own (default "
                                 f"{Path(logdir) / 'report'}).")
            if run.resolve() == target or run.resolve() in target.parents:
                raise ValueError(f"--out {out} is inside the run folder {run}: a report there "
                                 "would mix with the run's own files. Choose another --out "
                                 f"(default {Path(logdir) / 'report'}).")
        self.previous = self._manifest()
        if self.previous is not None and not force:
            raise FileExistsError(f"{out} already holds a report ({MANIFEST}); pass --force to "
                                  "replace it, or choose another --out.")
        ours = self.previous or []
        foreign = [name for name in REPORT_FILES if (self.out / name).exists() and not any(
            f == name or f.startswith(name + "/") for f in ours)]
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
            data = json.loads(path.read_text())
            files, version = list(data.get("files", [])), data.get("version", 1)
        except (ValueError, AttributeError, TypeError):
            files, version = [], _VERSION
        files = [f for f in files if isinstance(f, str) and _owned(f)]
        if version == 1 and "tensorboard" in files:  # a whole folder then: its event files
            files.remove("tensorboard")
            board = self.out / "tensorboard"
            if board.is_dir() and not board.is_symlink():
                files += [f"tensorboard/{f}" for f in _files_under(board)
                          if PurePosixPath(f).name.startswith(_EVENTS)]
        return files

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
        are removed, the new ones moved in file by file (around any file of the user's in
        ``out/tensorboard``), and the manifest rewritten. Nothing is removed when a staged
        file's place is taken by a file no report wrote. Returns the files installed
        (posix paths relative to ``out``)."""
        assert self.staging is not None, "install inside the `with` block"
        files = _files_under(self.staging)
        unknown = [f for f in files if not _owned(f)]
        assert not unknown, f"the report staged files it does not own: {unknown}"
        ours = set(self.previous or [])
        taken = [f for f in files if f not in ours and self._occupied(f)]
        if taken:  # appeared since the check: not ours
            raise FileExistsError(f"{', '.join(str(self.out / f) for f in taken)} appeared "
                                  "while the report was written; left alone, and the report "
                                  "not installed.")
        for name in sorted(ours):
            path = self.out / name
            if path.is_symlink() or path.is_file():
                path.unlink()
            self._prune(path.parent)
        for name in files:
            target = self.out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / name, target)
        tmp = self.out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"version": _VERSION, "files": files}, indent=2))
        tmp.replace(self.out / MANIFEST)
        return files

    def _occupied(self, name: str) -> bool:
        """Whether ``out/name``, or a folder on its way, is something else than a folder."""
        path = self.out
        for part in PurePosixPath(name).parts:
            path = path / part
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                return True
        return path.exists()

    def _prune(self, folder: Path) -> None:
        """Remove ``folder`` and the folders above it, up to ``out``, while they are empty
        (folders the report's removed files leave)."""
        out = self.out.resolve()
        while folder.resolve() != out and out in folder.resolve().parents:
            if folder.is_symlink() or not folder.is_dir() or any(folder.iterdir()):
                return
            folder.rmdir()
            folder = folder.parent
