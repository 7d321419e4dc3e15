"""Generate docs/api.md from the docstrings of the public API.

Usage::

    python docs/gen_api.py > docs/api.md     # a test checks the file is up to date
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys

SECTIONS = [
    ("thermo_lightning", ["SphereProjectionStrategy", "DDPSphereProjectionStrategy",
                          "ThermoCallback", "find_scale_invariant_parameters",
                          "verify_scale_invariance", "ScaleInvarianceError",
                          "ThermoWarning"]),
    ("thermo_lightning.meter", ["ThermoMeter", "WindowSpec"]),
    ("thermo_lightning.pilot", ["CorrelationPilot"]),
    ("thermo_lightning.projector", ["SphereProjector"]),
    ("thermo_lightning.keys", ["entropy_key", "custom_scalars_layout"]),
    ("thermo_lightning.functional", None),
    ("thermo_lightning.knn", ["knn_distances", "TorchKnn", "FaissKnn", "KnnBackend",
                              "pairwise_sq_distances", "knn_from_sq_distances"]),
    ("thermo_lightning.buffer", ["TrajectoryBuffer", "WindowMemoryError"]),
    ("thermo_lightning.schedules", ["LogSpacedSchedule", "EveryNSteps"]),
    ("thermo_lightning.models", None),
    ("thermo_lightning.data", None),
    ("thermo_lightning.spec", ["WindowSpec", "resolve_window", "check_window_arguments",
                               "PAPER_PROTOCOL"]),
    ("thermo_lightning.runs.layout", ["RunSpec", "run_dir_name", "parse_run_dir_name",
                                      "find_runs", "run_event_folder", "lr_from_name"]),
    ("thermo_lightning.runs.record", ["RunRecord", "RunStatus", "upgrade",
                                      "SCHEMA_VERSION"]),
    ("thermo_lightning.runs.read", ["RunData", "read_run"]),
    ("thermo_lightning.runs.resumed", ["join_resumed"]),
    ("thermo_lightning.sweep", ["SweepConfig", "RunSpec", "run_sweep", "run_one", "run_spec",
                                "lr_grid", "SweepSettingsError", "RunLockedError",
                                "langevin_noise_std"]),
    ("thermo_lightning.sweep.recipes", ["Recipe", "register_recipe", "recipe_for", "RECIPES",
                                        "FACTORY"]),
    ("thermo_lightning.sweep.plan", ["write_plan", "read_plan"]),
    ("thermo_lightning.launch", ["Launcher", "SweepPlan", "PlannedRun", "RunHandle", "watch",
                                 "LocalLauncher", "RayLauncher", "SlurmLauncher",
                                 "launcher_flags", "stop_with_parent"]),
    ("thermo_lightning.launch.progress", ["format_progress", "parse_progress"]),
    ("thermo_lightning.report", ["make_report", "ReportResult", "Regime", "Exclusion",
                                 "RunSummary", "summarize_run", "classify_regime",
                                 "batch_size_collapse", "tail_bootstrap_of",
                                 "free_energy_along_runs", "final_stride_points"]),
    ("thermo_lightning.report.output", ["ReportOutput", "MANIFEST", "REPORT_FILES"]),
    ("thermo_lightning.report.tensorboard_view", ["write_report_entry", "write_run_entries",
                                                  "report_layout", "HPARAM_METRICS"]),
    ("thermo_lightning.report.intervals", ["seed_intervals", "pooled_log_intervals",
                                           "bootstrap_intervals", "tail_bootstrap",
                                           "tail_block_length", "SeedIntervals",
                                           "TailBootstrap", "t_interval"]),
    ("thermo_lightning.summaries", ["png_summary", "session_summaries",
                                    "experiment_summary"]),
    ("thermo_lightning.paper", ["PAPER_SETUPS", "paper_lr_grid"]),
]


def _first_paragraph(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _signature(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    # a function as a default shows its name, not its address (which changes every run)
    return re.sub(r"<function ([\w.]+) at 0x[0-9a-f]+>", r"\1", text)


def render() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/gen_api.py > docs/api.md`; the full",
             "docstrings (formulas, arguments, shapes, examples) are in the source and in",
             "`help(...)`.", ""]
    for module_name, names in SECTIONS:
        module = importlib.import_module(module_name)
        names = names or list(module.__all__)
        lines += [f"## `{module_name}`", ""]
        summary = _first_paragraph(module)
        if summary:
            lines += [summary, ""]
        for name in names:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                kind = "class" if inspect.isclass(obj) else "def"
                lines.append(f"- **`{name}`**`{_signature(obj)}` ({kind})")
            else:
                lines.append(f"- **`{name}`**")
            is_def = inspect.isclass(obj) or inspect.isfunction(obj)
            text = _first_paragraph(obj) if is_def else ""
            if text:
                lines.append(f"  {text}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
