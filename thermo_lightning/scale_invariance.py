"""Find and verify the jointly scale-invariant (SI) parameter group of a network.

A network is scale-invariant in a group of parameters ``w`` when ``f(c w) = f(w)`` for every
``c > 0``: convolution and linear layers whose outputs only reach normalisation layers
(BatchNorm, GroupNorm, LayerNorm, InstanceNorm), possibly through positively homogeneous
operations (ReLU, max/average pooling, reshapes, dropout, sums and concatenations of such
branches). In the paper's networks the SI group is every trainable parameter: convolutions
without bias, BatchNorm with ``affine=False`` and a frozen last layer (docs/sphere.md).

- :func:`find_scale_invariant_parameters` finds the group structurally, from a ``torch.fx``
  trace of the model, with a module-order fallback for models that do not trace.
- :func:`verify_scale_invariance` checks it numerically: scales the group by a few factors and
  compares train-mode outputs; on failure it names the tensors that break invariance.
- :func:`parameter_summary` is the table of what is projected.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from thermo_lightning._warnings import ThermoWarning, user_stacklevel

__all__ = [
    "ScaleInvarianceError",
    "ScaleInvarianceReport",
    "check_parameter_spec",
    "find_scale_invariant_parameters",
    "has_own_forward",
    "parameter_summary",
    "resolve_parameters",
    "verify_scale_invariance",
]

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*d, InstanceNorm*d, SyncBatchNorm
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    nn.modules.conv._ConvNd,
)
# modules and functions that map a degree-1 input to a degree-1 output (positively homogeneous)
HOMOGENEOUS_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.Flatten,
    nn.Unflatten,
    nn.modules.dropout._DropoutNd,
    nn.Identity,
    nn.ZeroPad2d,
    nn.Upsample,
)
HOMOGENEOUS_FUNCTIONS: tuple[Any, ...] = (
    torch.relu,
    nn.functional.relu,
    nn.functional.leaky_relu,
    nn.functional.max_pool1d,
    nn.functional.max_pool2d,
    nn.functional.max_pool3d,
    nn.functional.avg_pool1d,
    nn.functional.avg_pool2d,
    nn.functional.avg_pool3d,
    nn.functional.adaptive_avg_pool1d,
    nn.functional.adaptive_avg_pool2d,
    nn.functional.adaptive_max_pool2d,
    nn.functional.dropout,
    torch.flatten,
    torch.reshape,
    torch.cat,
    torch.stack,
    torch.add,
    torch.sub,
    operator.add,
    operator.sub,
    operator.getitem,
    operator.neg,
    torch.neg,
)
HOMOGENEOUS_METHODS = frozenset(
    {"relu", "view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze",
     "unsqueeze", "add", "sub", "neg", "clone", "__getitem__", "expand", "repeat", "mean", "sum"}
)

ParameterSpec = (
    Iterable[nn.Parameter] | Iterable[str] | Callable[[str, nn.Parameter], bool] | None
)


_CHECK_EPS = 1e-30


class ScaleInvarianceError(RuntimeError):
    """The selected parameters are not a scale-invariant group of the model."""


def _is_homogeneous_module(module: nn.Module) -> bool:
    return isinstance(module, HOMOGENEOUS_MODULES)


def has_own_forward(module: nn.Module) -> bool:
    """Whether ``module`` defines ``forward`` itself: not ``nn.Module``'s placeholder nor
    ``LightningModule``'s, which only forwards to it (a LightningModule whose
    ``training_step`` calls ``self.net(x)`` has none)."""
    for cls in type(module).__mro__:
        if "forward" in vars(cls):
            return cls is not nn.Module and not (
                cls.__name__ == "LightningModule"
                and cls.__module__.split(".")[0] in ("lightning", "pytorch_lightning")
            )
    return False


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _layer_params(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters(recurse=False) if p.requires_grad]


def _fx_candidate_layers(model: nn.Module) -> list[str]:
    """Names of weight layers whose every output path reaches a normalisation layer through
    homogeneous operations only. Raises if the model cannot be traced.

    A container without a ``forward`` of its own (a LightningModule whose ``training_step``
    calls ``self.net(x)``, a ``ModuleDict``) is searched child by child."""
    import torch.fx

    if not has_own_forward(model):
        return [f"{name}.{layer}" if layer else name
                for name, child in model.named_children()
                for layer in _fx_candidate_layers(child)]

    gm = torch.fx.symbolic_trace(model)
    modules = dict(gm.named_modules())

    def reaches_norm(node: torch.fx.Node, seen: set[torch.fx.Node]) -> bool:
        if not node.users:
            return False
        for user in node.users:
            if user in seen:
                continue
            seen.add(user)
            if user.op == "call_module":
                mod = modules[str(user.target)]
                if isinstance(mod, NORM_LAYERS):
                    continue
                if _is_homogeneous_module(mod) and reaches_norm(user, seen):
                    continue
                return False
            if user.op == "call_function" and user.target in HOMOGENEOUS_FUNCTIONS:
                if reaches_norm(user, seen):
                    continue
                return False
            if user.op == "call_method" and user.target in HOMOGENEOUS_METHODS:
                if reaches_norm(user, seen):
                    continue
                return False
            return False
        return True

    found = []
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        mod = modules[str(node.target)]
        if isinstance(mod, WEIGHT_LAYERS) and _layer_params(mod) and reaches_norm(node, set()):
            found.append(str(node.target))
    return found


def _order_candidate_layers(model: nn.Module) -> list[str]:
    """Fallback without a trace: a weight layer is SI when the next non-homogeneous leaf module
    in registration order is a normalisation layer."""
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    found = []
    for i, (name, mod) in enumerate(leaves):
        if not (isinstance(mod, WEIGHT_LAYERS) and _layer_params(mod)):
            continue
        for _, nxt in leaves[i + 1 :]:
            if isinstance(nxt, NORM_LAYERS):
                found.append(name)
                break
            if not _is_homogeneous_module(nxt):
                break
    return found


def find_scale_invariant_parameters(
    model: nn.Module, *, method: str = "auto"
) -> list[tuple[str, nn.Parameter]]:
    """Detect the jointly scale-invariant parameters of ``model`` from its structure.

    The weights (and biases) of convolution / linear layers whose every output path reaches a
    normalisation layer through positively homogeneous operations are scale-invariant. Frozen
    parameters (``requires_grad=False``) are never selected.

    Args:
        model: the network (or LightningModule; its ``forward`` is traced).
        method: ``"fx"`` (trace with ``torch.fx``), ``"order"`` (module registration order:
            a weight layer followed by a normalisation layer, skipping activations and
            pooling), or ``"auto"`` (fx, falling back to order with a warning).

    Returns:
        ``[(name, parameter), ...]`` in ``model.named_parameters()`` order (possibly empty).
    """
    if method not in ("auto", "fx", "order"):
        raise ValueError(f"`method` must be 'auto', 'fx' or 'order', got {method!r}.")
    if method in ("auto", "fx"):
        try:
            layers = _fx_candidate_layers(model)
        except Exception as err:
            if method == "fx":
                raise
            warnings.warn(
                f"{type(model).__name__} could not be traced with torch.fx ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); the scale-invariant group is "
                "guessed from module order (a weight layer followed by a normalisation layer). "
                "Check it with verify_scale_invariance or pass `parameters=` explicitly.",
                ThermoWarning, stacklevel=user_stacklevel(),
            )
            layers = _order_candidate_layers(model)
    else:
        layers = _order_candidate_layers(model)
    chosen = {id(p) for name in layers for p in _layer_params(model.get_submodule(name))}
    return [(n, p) for n, p in _trainable(model) if id(p) in chosen]


def check_parameter_spec(spec: Any, name: str = "parameters") -> None:
    """Raise a ValueError naming ``name`` unless ``spec`` has a form that
    :func:`resolve_parameters` accepts (checked at construction, before any model exists)."""
    if spec is None or (callable(spec) and not isinstance(spec, nn.Parameter | Tensor)):
        return
    if isinstance(spec, str | bytes | Tensor) or not isinstance(spec, Iterable):
        raise ValueError(
            f"`{name}` must be None, a list of parameters, a list of parameter names or a "
            f"predicate (name, parameter) -> bool, got {spec!r}."
        )
    items = list(spec) if isinstance(spec, Sequence) else None
    if items is not None and not (all(isinstance(s, str) for s in items)
                                  or all(isinstance(s, Tensor) for s in items)):
        raise ValueError(
            f"`{name}` must hold only parameter names or only parameters, got "
            f"{[type(s).__name__ for s in items]}."
        )


def resolve_parameters(model: nn.Module, spec: ParameterSpec) -> list[tuple[str, nn.Parameter]]:
    """Turn a ``parameters=`` argument into ``[(name, parameter), ...]``.

    Args:
        spec: ``None`` (the model's own ``scale_invariant_parameters()`` method when it has
            one, else auto-detection), an iterable of parameters, an iterable of parameter
            names, or a predicate ``(name, parameter) -> bool``.

    Raises:
        ValueError: unknown names, parameters that do not belong to the model, or an empty
            selection.
    """
    named = dict(model.named_parameters())
    declared = getattr(model, "scale_invariant_parameters", None)
    if spec is None and callable(declared):
        return resolve_parameters(model, list(declared()))
    if spec is None:
        out = find_scale_invariant_parameters(model)
    elif callable(spec) and not isinstance(spec, nn.Parameter | Tensor):
        out = [(n, p) for n, p in named.items() if spec(n, p)]
    else:
        items = list(spec)
        if all(isinstance(s, str) for s in items):
            unknown = [s for s in items if s not in named]
            if unknown:
                raise ValueError(
                    f"`parameters` names {unknown} are not parameters of the model; known names "
                    f"start with {list(named)[:5]}."
                )
            wanted = set(items)
            out = [(n, p) for n, p in named.items() if n in wanted]
        elif all(isinstance(s, Tensor) for s in items):
            by_id = {id(p): n for n, p in named.items()}
            foreign = [tuple(s.shape) for s in items if id(s) not in by_id]
            if foreign:
                raise ValueError(
                    f"`parameters` holds tensors of shapes {foreign} that are not parameters of "
                    "the model."
                )
            wanted_ids = {id(s) for s in items}
            out = [(n, p) for n, p in named.items() if id(p) in wanted_ids]
        else:
            raise ValueError(
                "`parameters` must be None, parameters, parameter names or a predicate "
                "(name, parameter) -> bool."
            )
    if not out:
        raise ScaleInvarianceError(
            "no scale-invariant parameters found. A parameter is scale-invariant when its layer "
            "feeds a normalisation layer: give convolutions/linear layers a BatchNorm (or "
            "GroupNorm/LayerNorm) after them, turn off the normalisation's affine parameters "
            "(`affine=False`), freeze the last layer (`requires_grad_(False)`), or pass "
            "`parameters=` explicitly."
        )
    frozen = [n for n, p in out if not p.requires_grad]
    if frozen:
        raise ValueError(f"`parameters` selects frozen parameters {frozen}; they never move.")
    return out


@dataclass
class ScaleInvarianceReport:
    """Outcome of :func:`verify_scale_invariance`.

    Attributes:
        passed: every factor left the outputs unchanged within ``rtol``.
        max_rel_change: largest relative output change per factor.
        culprits: names of tensors that break invariance (empty when ``passed``).
        per_tensor: for each tensor, the relative output change when every *other* tensor of
            the group is scaled by 2 and it is not (computed only on failure).
        rtol: the tolerance used.
    """

    passed: bool
    max_rel_change: dict[float, float]
    culprits: list[str] = field(default_factory=list)
    per_tensor: dict[str, float] = field(default_factory=dict)
    rtol: float = 1e-4

    def __str__(self) -> str:
        head = "scale invariance: " + ("passed" if self.passed else "FAILED")
        changes = ", ".join(f"x{f:g}: {c:.2e}" for f, c in self.max_rel_change.items())
        text = f"{head} (relative output change {changes}; rtol {self.rtol:g})"
        if self.culprits:
            text += "; tensors that break it: " + ", ".join(self.culprits)
        return text


def _default_forward(model: nn.Module, batch: Any) -> Any:
    if isinstance(batch, Tensor):
        return model(batch)
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], Tensor):
        return model(batch[0])
    if isinstance(batch, dict):
        for key in ("x", "input", "inputs", "image", "images", "pixel_values"):
            if key in batch:
                return model(batch[key])
    raise TypeError(
        f"cannot find the input in a batch of type {type(batch).__name__}; pass `forward=` "
        "(a callable (model, batch) -> output)."
    )


def _flat_outputs(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _flat_outputs(v)]
    if isinstance(out, list | tuple):
        return [t for v in out for t in _flat_outputs(v)]
    return []


def _rel_change(a: list[Tensor], b: list[Tensor]) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        x64, y64 = x.detach().double(), y.detach().double()
        scale = float(x64.abs().max()) if x64.numel() else 0.0
        diff = float((x64 - y64).abs().max()) if x64.numel() else 0.0
        if not math.isfinite(diff):
            return math.inf
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def verify_scale_invariance(
    model: nn.Module,
    parameters: Sequence[nn.Parameter] | Sequence[tuple[str, nn.Parameter]] | None,
    batch: Any,
    factors: Sequence[float] = (0.5, 2.0, 10.0),
    *,
    rtol: float = 1e-4,
    forward: Callable[[nn.Module, Any], Any] | None = None,
) -> ScaleInvarianceReport:
    """Check numerically that scaling the group leaves the train-mode outputs unchanged.

    For each factor ``c`` the group is multiplied by ``c`` and the model is run on ``batch`` in
    train mode (BatchNorm with batch statistics, as the method measures) with the same random
    state; the largest relative change of the outputs must stay below ``rtol``. During the
    check the ``eps`` of normalisation layers is set to ``1e-30`` (torch needs it positive):
    ``eps`` is the one known, intended deviation from exact invariance, and it matters when
    activations are tiny. Parameters,
    buffers (running statistics), module modes, ``eps`` values and the RNG state are restored
    afterwards.

    Args:
        model: the network.
        parameters: the group (parameters or ``(name, parameter)`` pairs); ``None`` detects it
            with :func:`find_scale_invariant_parameters`.
        batch: one input batch (a tensor, or a tuple/list whose first item is the input, or a
            dict with an ``"x"``/``"input"``/``"image"`` key).
        factors: the scales ``c`` to try.
        rtol: tolerance on the relative output change.
        forward: ``(model, batch) -> output``; the default finds the input as above.

    Returns:
        A :class:`ScaleInvarianceReport`; on failure ``culprits`` names the tensors that break
        invariance: leaving them out of the scaling restores it (found greedily, the tensor
        whose exclusion reduces the output change most first).
    """
    if not factors or any(not (f > 0) for f in factors):
        raise ValueError(f"`factors` must be positive numbers, got {factors!r}.")
    fwd = forward or _default_forward
    if parameters is None:
        named = find_scale_invariant_parameters(model)
    else:
        items = list(parameters)
        if items and isinstance(items[0], tuple):
            named = [(str(n), p) for n, p in items]
        else:
            names = {id(p): n for n, p in model.named_parameters()}
            named = [(names.get(id(p), f"param{i}"), p) for i, p in enumerate(items)]
    if not named:
        raise ScaleInvarianceError("`parameters` is empty: nothing to verify.")

    params = [p for _, p in named]
    originals = [p.detach().clone() for p in params]
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    modes = {m: m.training for m in model.modules()}
    norms = [m for m in model.modules() if isinstance(m, NORM_LAYERS) and hasattr(m, "eps")]
    eps = [m.eps for m in norms]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def run(scale: Sequence[float]) -> list[Tensor]:
        with torch.no_grad():
            for p, p0, s in zip(params, originals, scale, strict=True):
                p.copy_(p0 * s)
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
            return [t.float() for t in _flat_outputs(fwd(model, batch))]

    try:
        model.train()
        for m in norms:
            m.eps = _CHECK_EPS
        base = run([1.0] * len(params))
        if not base:
            raise TypeError("the forward returned no tensors to compare; pass `forward=`.")
        changes = {float(f): _rel_change(base, run([f] * len(params))) for f in factors}
        passed = all(c <= rtol for c in changes.values())
        report = ScaleInvarianceReport(passed=passed, max_rel_change=changes, rtol=rtol)
        if not passed:
            report.culprits = _find_culprits(named, base, run, rtol, report.per_tensor)
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, originals, strict=True):
                p.copy_(p0)
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        for m, e in zip(norms, eps, strict=True):
            m.eps = e
        for m, training in modes.items():
            m.train(training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return report


def _find_culprits(
    named: list[tuple[str, nn.Parameter]],
    base: list[Tensor],
    run: Callable[[Sequence[float]], list[Tensor]],
    rtol: float,
    per_tensor: dict[str, float],
    max_rounds: int = 8,
) -> list[str]:
    """Greedily exclude tensors from a x2 scaling until the outputs stop changing."""
    excluded: list[int] = []
    for round_ in range(max_rounds):
        trial = {}
        for i, (name, _) in enumerate(named):
            if i in excluded:
                continue
            scale = [1.0 if j in excluded or j == i else 2.0 for j in range(len(named))]
            trial[i] = _rel_change(base, run(scale))
            if round_ == 0:
                per_tensor[name] = trial[i]
        if not trial:
            break
        best = min(trial, key=trial.__getitem__)
        excluded.append(best)
        if trial[best] <= rtol:
            break
    return [named[i][0] for i in excluded]


def parameter_summary(
    model: nn.Module, scale_invariant: Sequence[tuple[str, nn.Parameter]]
) -> pd.DataFrame:
    """Table of every parameter: ``name, shape, count, group`` with group one of
    ``scale_invariant`` (projected), ``trainable`` (not projected) or ``frozen``."""
    si = {id(p) for _, p in scale_invariant}
    rows = []
    for name, p in model.named_parameters():
        group = "scale_invariant" if id(p) in si else ("trainable" if p.requires_grad else "frozen")
        rows.append({"name": name, "shape": tuple(p.shape), "count": p.numel(), "group": group})
    return pd.DataFrame(rows, columns=["name", "shape", "count", "group"])
