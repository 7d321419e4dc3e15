"""Writing only: metrics, the TensorBoard custom-scalars layout and the window's description
to every logger attached to a Trainer. The names live in :mod:`thermo_lightning.keys`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from thermo_lightning.keys import custom_scalars_layout

__all__ = ["log_hyperparams", "log_metrics", "merge_layouts", "write_layout"]


def write_layout(trainer: pl.Trainer) -> None:
    """Write the custom-scalars layout to every TensorBoard logger (global rank 0 only),
    merged with the user's own.

    TensorBoard shows the last layout a run wrote. A layout the user wrote before (in the
    module's ``setup``, or on the logger before ``fit``) is read back from the writer's event
    file and merged with this one; the writer's ``add_custom_scalars`` then merges this
    layout into any the user writes later. The user's charts win a name clash."""
    if trainer.global_rank != 0:
        return
    ours = custom_scalars_layout()
    for logger in trainer.loggers:
        if not isinstance(logger, TensorBoardLogger):
            continue
        writer = logger.experiment
        add = getattr(writer, "_thermo_add_custom_scalars", writer.add_custom_scalars)
        earlier = _last_layout(writer)
        add(merge_layouts(ours, earlier) if earlier else ours)

        def merged(layout: dict, _add: Any = add) -> None:
            _add(merge_layouts(ours, layout))

        writer._thermo_add_custom_scalars = add
        writer.add_custom_scalars = merged


def merge_layouts(base: Mapping[str, Mapping[str, Any]], *others: Mapping[str, Mapping[str, Any]]
                  ) -> dict[str, dict[str, Any]]:
    """Custom-scalars layouts (``{category: {chart: ["Multiline", tags] or ["Margin",
    [value, lower, upper]]}}``) merged: every category and chart of each; a chart of the same
    category and title is the later layout's."""
    out: dict[str, dict[str, Any]] = {}
    for layout in (base, *others):
        for category, charts in layout.items():
            out.setdefault(category, {}).update(charts)
    return out


def _last_layout(writer: Any) -> dict[str, dict[str, Any]] | None:
    """The last custom-scalars layout in the newest event file of ``writer``'s folder (what
    the user wrote through it so far), as the dict ``add_custom_scalars`` takes; ``None``
    when there is none or it cannot be read."""
    from pathlib import Path

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.custom_scalar import layout_pb2

    writer.flush()
    files = sorted(Path(writer.get_logdir()).glob("events.out.tfevents.*"),
                   key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    content = None
    try:
        for event in EventFileLoader(str(files[-1])).Load():
            for value in event.summary.value if event.HasField("summary") else ():
                if value.tag == "custom_scalars__config__":
                    content = value.tensor.string_val[0]
    except Exception:  # a file cut or being written elsewhere: no layout to merge
        return None
    if content is None:
        return None
    proto = layout_pb2.Layout()
    proto.ParseFromString(content)
    layout: dict[str, dict[str, Any]] = {}
    for category in proto.category:
        charts = layout.setdefault(category.title, {})
        for chart in category.chart:
            if chart.HasField("margin") and chart.margin.series:
                series = chart.margin.series[0]
                charts[chart.title] = ["Margin", [series.value, series.lower, series.upper]]
            else:
                charts[chart.title] = ["Multiline", list(chart.multiline.tag)]
    return layout


def log_metrics(trainer: pl.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """Send ``metrics`` at ``step`` to every attached logger (loggers write on rank 0)."""
    if not metrics:
        return
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=step)


def log_hyperparams(trainer: pl.Trainer, params: Mapping[str, Any]) -> None:
    """Add ``params`` to every attached logger's hyperparameters (Lightning's own loggers merge
    them with the module's, e.g. into ``hparams.yaml``).

    A ``TensorBoardLogger`` only merges them into its ``hparams`` (its ``hparams.yaml``):
    its ``log_hyperparams`` would also write an hparams session, and TensorBoard shows a run's
    first session only, which would hide the module's own (its ``lr``) behind this one."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and isinstance(logger.hparams, dict):
            logger.hparams.update(dict(params))
        else:
            logger.log_hyperparams(dict(params))
