"""Extra forward/backward passes at logging points, without disturbing training.

The gradient SNR needs gradients of fresh mini-batches at the current weights, and the paper's
energy is the full-training-set loss with BatchNorm in train mode. Both run forward passes
that would otherwise change BatchNorm running statistics and consume random numbers (dropout);
:func:`preserved_state` restores both, so a run measured by the callback follows the same
trajectory as one that is not.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from thermo_lightning.functional.configurational import split_like
from thermo_lightning.functional.snr import GradientSNRAccumulator
from thermo_lightning.functional.sphere import tangent_projection

__all__ = [
    "ConfigurationalTerms",
    "batch_energy",
    "configurational_terms_from_batches",
    "default_loss_fn",
    "flat_gradient",
    "full_gradient_and_loss",
    "preserved_rng",
    "preserved_state",
    "random_weight_loss",
    "snr_from_batches",
    "training_step_energy",
    "training_step_loss",
    "uses_batch_statistics",
]

LossFn = Callable[[nn.Module, Any], Tensor]


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the random states on exit: torch's CPU and CUDA generators, Python's
    ``random`` and NumPy's global one (a dataset's transforms may use any of them)."""
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    py_rng = random.getstate()
    np_rng = np.random.get_state()  # noqa: NPY002 (the global state a dataset may use)
    try:
        yield
    finally:
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        random.setstate(py_rng)
        np.random.set_state(np_rng)  # noqa: NPY002


@contextlib.contextmanager
def preserved_state(module: nn.Module) -> Iterator[None]:
    """Restore the module's buffers (BatchNorm statistics) and the random states
    (:func:`preserved_rng`) on exit."""
    buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
    try:
        with preserved_rng():
            yield
    finally:
        with torch.no_grad():
            for n, b in module.named_buffers():
                if n in buffers:
                    b.copy_(buffers[n])


def batch_energy(outputs: Any, *, accumulate: int = 1) -> Tensor | None:
    """The batch's loss as a ``training_step`` returned it (a tensor, or a dict's ``"energy"``
    entry, else its ``"loss"``), a 0-d float64 tensor; ``None`` when it returned none.

    Under automatic optimisation with gradient accumulation Lightning hands callbacks the loss
    divided by ``accumulate_grad_batches`` (what is back-propagated); pass that factor as
    ``accumulate`` and it is undone (an ``"energy"`` entry is never divided).
    """
    value, scaled = outputs, True
    if isinstance(outputs, dict):
        scaled = "energy" not in outputs
        value = outputs.get("energy", outputs.get("loss"))
    if not (isinstance(value, Tensor) and value.numel() == 1):
        return None
    value = value.detach().reshape(()).to(torch.float64)
    return value * accumulate if scaled and accumulate > 1 else value


def _module_loss(module: nn.Module, batch: Any) -> Tensor:
    """``module.loss(batch)`` (its first element when it returns a tuple)."""
    out = module.loss(batch)  # type: ignore[operator]
    return out[0] if isinstance(out, tuple | list) else out


def default_loss_fn(module: nn.Module, *, warn: Callable[[str], Any] | None = None
                    ) -> Callable[[nn.Module, Any], Tensor]:
    """The loss of a module's extra passes (SNR, full-data energy, T_conf): its own
    ``loss(batch)`` when it has one, else :func:`training_step_loss` (automatic optimisation
    only; ``warn`` is told so).

    Raises:
        ValueError: manual optimisation without a ``loss`` method (``training_step`` would
            step the optimiser).
    """
    if callable(getattr(module, "loss", None)):
        return _module_loss
    if not getattr(module, "automatic_optimization", True):
        raise ValueError(
            "the extra passes (SNR, full-data energy, configurational temperature) need a "
            "loss: under manual optimisation define `loss(self, batch)` on the module or pass "
            "`loss_fn=`."
        )
    if warn is not None:
        warn("the extra passes (SNR, full-data energy, configurational temperature) compute "
             "losses with training_step (logging off); define `loss(self, batch)` on the module "
             "or pass `loss_fn=` to be explicit.")
    return training_step_loss


def training_step_loss(module: nn.Module, batch: Any) -> Tensor:
    """The loss of ``module.training_step(batch, 0)`` with the module's ``log`` and
    ``log_dict`` switched off: the loss of any LightningModule under automatic optimisation,
    with or without ``forward``. A dict output gives its ``"loss"`` entry.

    Raises:
        TypeError: ``training_step`` returned no loss tensor.
    """
    out = _training_step_output(module, batch)
    if isinstance(out, dict):
        out = out.get("loss")
    if not isinstance(out, Tensor):
        raise TypeError(
            "training_step returned no loss tensor; pass `loss_fn=` (callback) or "
            "`verify_forward=` (strategy)."
        )
    return out


def training_step_energy(module: nn.Module, batch: Any) -> Tensor | None:
    """What the callback averages as ``U`` for ``batch`` (:func:`batch_energy` of
    ``training_step``'s output, logging off): its ``"energy"`` entry, else its loss; ``None``
    when it returns neither. Automatic optimisation only (``training_step`` would step the
    optimiser otherwise)."""
    return batch_energy(_training_step_output(module, batch))


def _training_step_output(module: nn.Module, batch: Any) -> Any:
    """``module.training_step(batch, 0)`` with the module's ``log`` and ``log_dict``
    switched off."""
    saved = module.__dict__.get("log"), module.__dict__.get("log_dict")
    module.log = lambda *a, **k: None  # type: ignore[method-assign]
    module.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    try:
        out = module.training_step(batch, 0)  # type: ignore[operator]
    finally:
        for name, value in zip(("log", "log_dict"), saved, strict=True):
            if value is None:
                module.__dict__.pop(name, None)
            else:
                module.__dict__[name] = value
    return out


def flat_gradient(loss: Tensor, params: Sequence[nn.Parameter]) -> Tensor:
    """Gradient of ``loss`` with respect to ``params``, flattened into one vector (zeros for
    parameters the loss does not use). Leaves ``.grad`` untouched.

    The dtype is float64 when any parameter is float64 (gradients of fp64 models can be far
    below float32's range: 1e-88 in the paper's toy problem), else float32 (half-precision
    gradients are widened)."""
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    dtype = torch.float64 if any(p.dtype == torch.float64 for p in params) else torch.float32
    return torch.cat([
        (g if g is not None else torch.zeros_like(p)).reshape(-1).to(dtype)
        for g, p in zip(grads, params, strict=True)
    ])


def uses_batch_statistics(module: nn.Module) -> bool:
    """Whether ``module`` normalises with each batch's own statistics (a BatchNorm layer in
    training mode, or one without running statistics): its gradient on an example depends
    on the other examples of its batch."""
    from torch.nn.modules.batchnorm import _BatchNorm

    return any(isinstance(m, _BatchNorm) and (m.training or not m.track_running_stats)
               for m in module.modules())


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Tensor):
        return batch.shape[0]
    if isinstance(batch, list | tuple) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return 1


def full_gradient_and_loss(
    module: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    params: Sequence[nn.Parameter] | None,
) -> tuple[Tensor | None, float]:
    """Mean loss (and, with ``params``, the mean gradient) over a pass through ``batches``,
    weighted by batch size; train mode as it is. Returns ``(gradient or None, loss)``."""
    total, grad_sum, loss_sum = 0, None, 0.0
    for batch in batches:
        n = _batch_size(batch)
        if params is None:
            with torch.no_grad():
                loss_sum += float(loss_fn(module, batch)) * n
        else:
            loss = loss_fn(module, batch)
            g = flat_gradient(loss, params).double() * n
            grad_sum = g if grad_sum is None else grad_sum + g
            loss_sum += float(loss.detach()) * n
        total += n
    if total == 0:
        raise ValueError("the full-data pass produced no batches.")
    return (None if grad_sum is None else grad_sum / total), loss_sum / total


def snr_from_batches(
    module: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    params: Sequence[nn.Parameter],
    full_grad: Tensor | None = None,
    *,
    reduce_fn: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """:func:`~thermo_lightning.functional.gradient_snr` from mini-batch gradients computed one
    at a time (``O(D)`` memory). ``reduce_fn`` sums a tensor over processes (DDP ranks): the
    accumulated sums of every rank's batches are combined before the one ratio is taken."""
    # the reduction is explicit (``reduce_fn``), so torchmetrics' own sync stays off
    acc = GradientSNRAccumulator(full_grad, sync_on_compute=False)
    for batch in batches:
        acc.update(flat_gradient(loss_fn(module, batch), params))
    if reduce_fn is not None:
        acc.reduce_with(reduce_fn)
    return acc.compute()


def configurational_terms_from_batches(
    module: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    spheres: Sequence[Sequence[nn.Parameter]],
    *,
    generator: torch.Generator,
    reduce_fn: Callable[[Tensor], Tensor] | None = None,
    snr: GradientSNRAccumulator | None = None,
) -> ConfigurationalTerms:
    """The configurational temperature's two terms at the current weights
    (:mod:`thermo_lightning.functional.configurational`), from the mini-batches ``batches``:

    - ``||grad_S U||^2`` unbiased from the batches' gradients ``g_b`` projected on the
      spheres' tangent spaces: ``(||sum_b P g_b||^2 - sum_b ||P g_b||^2) / (K (K - 1))``;
    - ``Delta_S U``: the mean over the batches of one Rademacher probe each,
      ``(P v)^T H_b (P v) - sum_i (D_i - 1) / r_i  w_hat_i . g_b``;
    - ``E[g_b^T H g_b]`` for the fluctuation-dissipation check: the mean over consecutive
      batches of ``(P g_{b-1})^T H_b (P g_{b-1})`` (a Hessian independent of the gradient it
      is applied to).

    ``spheres``: groups of parameters, each group one sphere (the joint sphere of the
    scale-invariant group, or one per tensor); the manifold is their product, whose gradient
    norm and Laplacian are the sums over the factors. ``reduce_fn`` sums over processes (DDP)
    before the ratios. ``snr``: an accumulator that also gets each batch's gradient (flattened
    in the order of ``spheres``' parameters, as :func:`flat_gradient` gives it), so that the
    gradient SNR of the same batches costs no second pass. Returns
    :class:`ConfigurationalTerms`."""
    params = [p for group in spheres for p in group]
    dtype = torch.float64 if any(p.dtype == torch.float64 for p in params) else torch.float32
    sizes = [len(group) for group in spheres]
    points = [_joined(group, dtype) for group in spheres]
    hats = [w / w.norm() for w in points]

    def per_sphere(tensors: Sequence[Tensor]) -> list[Tensor]:
        """``tensors`` (one per parameter) joined into one vector per sphere."""
        out, i = [], 0
        for n in sizes:
            out.append(_joined(tensors[i:i + n], dtype))
            i += n
        return out

    def tangent(vectors: Sequence[Tensor]) -> list[Tensor]:
        return [tangent_projection(h, v) for v, h in zip(vectors, hats, strict=True)]

    # the radial term's factors (D_i - 1) / r_i, one per sphere
    radial_factors = [(w.numel() - 1) / float(w.norm()) for w in points]

    g_sum = [torch.zeros_like(w) for w in points]
    sq_sum, lap_sum, ghg_sum, count, pairs = 0.0, 0.0, 0.0, 0, 0
    previous: list[Tensor] | None = None  # the last batch's tangent gradient
    for batch in batches:
        loss = loss_fn(module, batch)
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        grads = tuple(g if g is not None else torch.zeros_like(p)
                      for g, p in zip(grads, params, strict=True))
        if snr is not None:
            snr.update(torch.cat([g.detach().reshape(-1).to(dtype) for g in grads]))
        flat = per_sphere([g.detach() for g in grads])
        tangent_g = tangent(flat)
        for total, g in zip(g_sum, tangent_g, strict=True):
            total += g
        sq_sum += sum(float(g @ g) for g in tangent_g)
        p_v = tangent(per_sphere([(torch.randint(0, 2, p.shape, generator=generator) * 2 - 1)
                                  .to(p) for p in params]))
        curvature = 0.0
        if all(g.requires_grad for g in grads):  # else the loss is linear in the weights
            curvature = _along(grads, params, p_v, spheres, per_sphere,
                               keep=previous is not None)
            if previous is not None:  # g_{b-1}^T H_b g_{b-1}: H independent of the vector
                ghg_sum += _along(grads, params, previous, spheres, per_sphere, keep=False)
        if previous is not None:
            pairs += 1
        radial = sum(c * float(h @ g) for c, h, g in zip(radial_factors, hats, flat,
                                                          strict=True))
        lap_sum += curvature - radial
        count += 1
        previous = tangent_g
    device = points[0].device
    sums = [torch.cat(g_sum).double(), *(torch.tensor(v, dtype=torch.float64, device=device)
                                        for v in (sq_sum, lap_sum, ghg_sum, float(count),
                                                  float(pairs)))]
    if reduce_fn is not None:
        sums = [reduce_fn(t) for t in sums]
    k, n_pairs = round(float(sums[4])), round(float(sums[5]))
    if k < 1:
        return ConfigurationalTerms(math.nan, math.nan, math.nan, 0)
    grad_sq = ((float(sums[0] @ sums[0]) - float(sums[1])) / (k * (k - 1)) if k >= 2
               else math.nan)
    ghg = float(sums[3]) / n_pairs if n_pairs else math.nan
    return ConfigurationalTerms(grad_sq, float(sums[2]) / k, ghg, k)


class ConfigurationalTerms(NamedTuple):
    """:func:`configurational_terms_from_batches`'s result."""

    grad_sq: float  #: ``||grad_S U||^2`` (unbiased; NaN below 2 batches)
    laplacian: float  #: ``Delta_S U`` (Hutchinson)
    gHg: float  #: ``E[g_b^T H g_b]`` for a mini-batch gradient ``g_b`` (NaN below 2 batches)
    batches: int  #: ``K``, over all processes


def _along(grads: Sequence[Tensor], params: Sequence[nn.Parameter], vectors: list[Tensor],
           spheres: Sequence[Sequence[nn.Parameter]], per_sphere: Callable[..., list[Tensor]],
           *, keep: bool) -> float:
    """``sum_i v_i^T H v_i`` over the spheres' vectors ``v`` (tangent), by one Hessian-vector
    product of the loss whose gradient ``grads`` is (``keep``: its graph stays)."""
    hv = torch.autograd.grad(grads, params, grad_outputs=_split(vectors, spheres),
                             allow_unused=True, retain_graph=keep)
    hv_flat = per_sphere([h if h is not None else torch.zeros_like(p)
                          for h, p in zip(hv, params, strict=True)])
    return sum(float(a @ b) for a, b in zip(vectors, hv_flat, strict=True))


def _joined(tensors: Sequence[Tensor], dtype: torch.dtype) -> Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors]).to(dtype)


def _split(vectors: Sequence[Tensor], spheres: Sequence[Sequence[nn.Parameter]]
           ) -> list[Tensor]:
    """One vector per sphere back into one tensor per parameter (their shapes and dtypes)."""
    return [t for v, group in zip(vectors, spheres, strict=True) for t in split_like(v, group)]


def random_weight_loss(
    module: nn.Module,
    params: Sequence[nn.Parameter],
    loss: Callable[[], float],
    *,
    draws: int = 4,
    radius: float = 1.0,
    seed: int = 0,
) -> float:
    """Mean of ``loss()`` over ``draws`` random points of the sphere for ``params`` (Gaussian
    directions scaled to ``radius``): the energy of a network whose SI weights are uniform on
    the sphere, the level high learning rates saturate at. Weights, buffers and RNG are
    restored."""
    from thermo_lightning.functional.sphere import project_to_sphere_

    gen = torch.Generator().manual_seed(seed)
    saved = [p.detach().clone() for p in params]
    values = []
    try:
        with preserved_state(module), torch.no_grad():
            for _ in range(draws):
                for p in params:
                    p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
                project_to_sphere_(list(params), radius)
                values.append(float(loss()))
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
    return sum(values) / len(values)
