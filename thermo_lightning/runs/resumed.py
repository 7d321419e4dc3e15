"""Lightning's own log folders of one training cut in two: a fit interrupted in
``lightning_logs/version_4`` and resumed from its checkpoint (``ckpt_path=...``) logs on into a
new ``version_5`` (the default ``TensorBoardLogger`` and ``CSVLogger`` take a new version per
fit). Read apart, the first looks like a short run of its own and the second like a run
without its beginning.

:func:`join_resumed` reads them as one run, by the marks the callback logs
(``thermo/fit_start`` at the step a fit starts from, ``thermo/fit_end`` when it ends): a folder
whose fit starts at step ``k > 0`` continues the unfinished folder beside it (same parent,
same learning rate and window) whose fit started last before ``k``; the joined run holds the
earlier folder's points up to step ``k`` (the checkpoint's) and the later folder's after it,
under the later folder's name. A cut fit resumed more than once has branches that share
its beginning: only the newest (the highest version) is read. A sweep's runs (with a
``run.json``) resume into their own folder and are left as they are. Pure: pandas, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from thermo_lightning.runs.read import UNFINISHED_PROBLEM, RunData

__all__ = ["join_resumed"]


def _continues(earlier: RunData, later: RunData) -> bool:
    """Whether ``later`` can be the resumed fit of ``earlier``."""
    return (earlier is not later and earlier.record is None and earlier.fit_ended is False
            and earlier.fit_start is not None and later.fit_start is not None
            and earlier.fit_start < later.fit_start and earlier.path.parent == later.path.parent
            and earlier.lr == later.lr and earlier.window_spec == later.window_spec
            # the same training, where both logs say which (two fits of one learning rate
            # cut at the same step are told apart only by it)
            and (earlier.fit_id is None or later.fit_id is None
                 or earlier.fit_id == later.fit_id))


def _creation_order(run: RunData) -> tuple[object, ...]:
    """Lightning numbers its versions in the order they are made: ``version_10`` after
    ``version_9`` (the digits compare as numbers)."""
    return tuple(int(part) if part.isdigit() else part
                 for part in re.split(r"(\d+)", run.path.name))


def join_resumed(runs: Sequence[RunData]) -> tuple[list[RunData], list[str]]:
    """``runs`` with each resumed fit joined to the fit it continues (module docstring), and
    a message per join. The earlier folder is no longer a run of its own; a fit resumed from a
    folder that is not found is said and read as it is. A cut fit resumed more than once
    (from the same or different checkpoints) has branches that share its beginning: the
    newest (the highest version) is its continuation, the others are left out, said."""
    runs = list(runs)
    messages: list[str] = []
    resumed = sorted((r for r in runs if r.record is None and r.fit_start), key=lambda r: (
        r.fit_start, _creation_order(r)))
    before_of: dict[int, tuple[RunData, int]] = {}  # id(later) -> (earlier, candidates)
    for later in resumed:
        candidates = [r for r in runs if _continues(r, later)]
        if candidates:
            earlier = max(candidates, key=lambda r: (r.fit_start, _creation_order(r)))
            before_of[id(later)] = (earlier, len(candidates))
    for later in resumed:
        if id(later) not in before_of:
            continue
        earlier = before_of[id(later)][0]
        branches = [r for r in resumed if id(r) in before_of and before_of[id(r)][0] is earlier]
        newest = max(branches, key=_creation_order)
        if later is not newest:
            runs = [r for r in runs if r is not later]
            messages.append(
                f"{later.name}: left out, an earlier continuation of {earlier.name} (resumed "
                f"at step {later.fit_start}); {newest.name} continues it too, from step "
                f"{newest.fit_start}, and is newer: its training is the one read (the two "
                "share their beginning, so they are not independent repeats)")
    for later in resumed:
        if not any(r is later for r in runs):
            continue
        if id(later) not in before_of:
            messages.append(
                f"{later.name}: its fit was resumed at step {later.fit_start} (from a "
                "checkpoint) but no unfinished log of the fit before it was found beside it; "
                f"its points start at step {later.fit_start}")
            continue
        original, n_candidates = before_of[id(later)]
        earlier = next(r for r in runs if r.path == original.path)  # joined before, maybe
        k = later.fit_start
        assert k is not None
        before = earlier.history[earlier.history["step"] <= k] if "step" in earlier.history \
            else earlier.history
        history = pd.concat([before, later.history], ignore_index=True)
        problems = [p for p in earlier.problems if p != UNFINISHED_PROBLEM]
        joined = replace(later, history=history, fit_start=earlier.fit_start,
                         problems=[*problems, *later.problems],
                         incomplete=earlier.incomplete or later.incomplete)
        runs = [joined if r is later else r for r in runs if r is not earlier]
        note = (f" ({n_candidates} unfinished folders beside it started before step {k}; "
                f"the last to start, {earlier.name}, is taken)" if n_candidates > 1 else "")
        messages.append(
            f"{original.name}: continued by {later.name} (a fit resumed from its checkpoint "
            f"at step {k}): read as one run, {later.name}, with the points of "
            f"{original.name} up to step {k}{note}")
    return runs, messages
