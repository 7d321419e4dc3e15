"""The uniform-sphere reference of each run: the entropy estimator's value for uniform points
on the run's own sphere at its own ``(N, D, k)``, the level a saturated run's ``S`` reaches
(:class:`~thermo_lightning.report.summary.Regime`)."""

from __future__ import annotations

from collections.abc import Iterable

from thermo_lightning._validation import finite_number as number
from thermo_lightning.runs.read import RunData

__all__ = ["uniform_references"]


def _reference_inputs(run: RunData, estimator_default: str) -> tuple | None:
    """What the uniform-sphere reference of ``run`` needs, ``(N, D, k, estimator, dim,
    radius)``; ``()`` when the run says there is none (no sphere, a sketch, an unknown
    estimator); ``None`` when the run does not say (no window spec, no version-0 fields)."""
    spec = run.window_spec
    if spec is not None:
        if spec.radius is None or spec.sketch_dim is not None or spec.window <= spec.k[0]:
            return ()  # no sphere, or a sketch: no uniform reference
        return (spec.window, spec.num_parameters, spec.k[0], spec.estimator, spec.dim,
                spec.radius)
    record, hp = run.record, run.hparams
    if record is None:
        return None
    n_feat, dim = record.num_parameters, record.entropy_dim
    ks = hp.get("k")
    window, k0 = number(hp.get("window")), number(ks[0] if isinstance(ks, list) and ks else ks)
    if not (n_feat and dim and window and k0):
        return None
    estimator = hp.get("estimator", estimator_default)
    if int(window) <= int(k0) or min(n_feat, dim, window, k0) < 1 or estimator not in (
            "knn_graph", "kozachenko_leonenko"):
        return ()
    return int(window), int(n_feat), int(k0), estimator, int(dim), 1.0


def uniform_references(runs: Iterable[RunData], estimator_default: str = "knn_graph"
                       ) -> dict[str, tuple[float | None, int | None]]:
    """Each run's uniform-sphere reference ``(S_uniform, dim)``: the estimator's value for
    uniform points on the run's sphere at its own ``(N, D, k)`` (its window spec, radius
    included; a version-0 record: its ``num_parameters``, ``entropy_dim`` and ``window``,
    ``k`` settings), so that a grid over ``dim`` or ``window`` tests each run against its
    own; ``(None, None)`` without a sphere, with a sketch or an unknown estimator. A run that
    says nothing (a Lightning folder without the callback's spec) gets the first reference
    of the others."""
    from thermo_lightning.functional.entropy import uniform_sphere_knn_entropy

    runs = list(runs)
    computed: dict[tuple, tuple[float | None, int | None]] = {(): (None, None)}
    own: dict[str, tuple[float | None, int | None] | None] = {}
    for run in runs:
        inputs = _reference_inputs(run, estimator_default)
        if inputs is not None and inputs not in computed:
            n, d_ambient, k, estimator, dim, radius = inputs
            try:
                s_uni = uniform_sphere_knn_entropy(n, d_ambient, k, estimator=estimator,
                                                   dim=dim, radius=radius)
                computed[inputs] = (float(s_uni), dim)
            except ValueError:  # an estimator this process has not registered
                computed[inputs] = (None, None)
        own[run.name] = None if inputs is None else computed[inputs]
    first = next((ref for ref in own.values() if ref is not None), (None, None))
    return {name: first if ref is None else ref for name, ref in own.items()}
