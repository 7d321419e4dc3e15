"""Low-level TensorBoard summaries the package writes besides scalars: a PNG image as it is,
an hparams session (start and end), the hparams experiment (its columns) and the hparams
plugin's wrapping. Built from TensorBoard's own protos (no TensorFlow); knows nothing of runs
or reports. Write them with ``SummaryWriter._get_file_writer().add_summary(summary)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["experiment_summary", "hparam_value", "png_summary", "session_summaries"]


def png_summary(tag: str, path: Path) -> Any:
    """An image summary holding the PNG file's bytes as they are (no second rendering)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    data = path.read_bytes()
    width, height = (int.from_bytes(data[i:i + 4], "big") for i in (16, 20))  # IHDR
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=data)
    summary = Summary()
    summary.value.add(tag=tag, image=image)
    return summary


def _hparams_summary(tag: str, data: Any) -> Any:
    """A summary holding the hparams plugin's ``data`` (``HParamsPluginData``) under ``tag``,
    as TensorBoard's own writer makes it."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.plugins.hparams import metadata

    summary = Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data),
                      tensor=TensorProto(dtype="DT_FLOAT"))
    return summary


def hparam_value(value: Any) -> bool | str | int | float:
    """``value`` as an hparam: booleans, strings and numbers as they are (numpy's as
    Python's), anything else as its text."""
    import numpy as np

    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    return str(value)


def session_summaries(hparams: Mapping[str, Any]) -> list[Any]:
    """A session's start (its ``hparams``: booleans, numbers, else strings) and end
    (success)."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif isinstance(value, int | float):
            start.hparams[name].number_value = value
        else:
            start.hparams[name].string_value = str(value)
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS,
                                         end_time_secs=time.time())
    return [_hparams_summary(metadata.SESSION_START_INFO_TAG,
                             plugin_data_pb2.HParamsPluginData(session_start_info=start)),
            _hparams_summary(metadata.SESSION_END_INFO_TAG,
                             plugin_data_pb2.HParamsPluginData(session_end_info=end))]


def experiment_summary(columns: Mapping[str, Sequence[Any]], metrics: Sequence[str],
                       first: Sequence[str] = ()) -> Any:
    """The hparams experiment: one column per ``columns`` entry (name -> the values the
    sessions hold; its type from the first) and the ``metrics`` tags. A column whose values
    differ, or named in ``first``, is marked so (TensorBoard shows it first and checked).
    No discrete domains: TensorBoard's filter would hide sessions whose values are not in
    them."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    infos = []
    for name, seen in columns.items():
        kind = (api_pb2.DATA_TYPE_BOOL if isinstance(seen[0], bool) else
                api_pb2.DATA_TYPE_STRING if isinstance(seen[0], str) else
                api_pb2.DATA_TYPE_FLOAT64)
        differs = name in first or len({repr(v) for v in seen}) > 1
        infos.append(api_pb2.HParamInfo(name=name, type=kind, differs=differs))
    metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos,
                                    time_created_secs=time.time())
    return _hparams_summary(metadata.EXPERIMENT_TAG,
                            plugin_data_pb2.HParamsPluginData(experiment=experiment))
