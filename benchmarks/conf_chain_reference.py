"""The discrete chain's own configurational temperature, against its ``dU/dS`` temperature.

``T_conf = E||grad_S L||^2 / E[Delta_S L]`` is a property of the stationary law, and the
known-temperature problem has both terms in closed form at a point (``L = w^T Lambda w / 2``
on the unit sphere in ``R^n``): ``||grad_S L||^2 = sum_k lambda_k^2 w_k^2 - q^2`` and
``Delta_S L = sum_k lambda_k - n q``, with ``q = w^T Lambda w``. So a long simulation of the
chain (``--chains`` chains started near ``e_1``, ``--steps`` steps, every 5th after
``--burn-in``)
gives the chain's exact ``T_conf`` up to Monte Carlo error, free of the estimators the
callback uses (unbiased gradient norm from mini-batches, Hutchinson's Laplacian). Printed per
set-up and learning rate: ``T_conf / T_chain`` (the sweep's reference,
:meth:`~thermo_lightning.models.LangevinSphere.chain_temperature`) and ``T_conf / T``
(``lr sigma^2 / 2``). Set against ``benchmarks/conf_accuracy.py`` (single runs through the
estimators), it separates what ``T_conf`` is from how well one run measures it.

Usage::

    python benchmarks/conf_chain_reference.py                # ~2 min on one CPU core
    python benchmarks/conf_chain_reference.py --chains 20 --steps 3000
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from thermo_lightning.models import LangevinSphere

#: (dimension, sigma, curvatures from .. to): conf_accuracy.py's set-ups
SETUPS = [(21, 0.5, 1.0, 2.0), (8, 0.5, 1.0, 2.0), (21, 1.0, 1.0, 2.0), (21, 0.5, 1.0, 10.0)]


def chain_t_conf(problem: LangevinSphere, lr: float, chains: int, steps: int, burn_in: int,
                 seed: int) -> float:
    """The chain's ``T_conf``: the ratio of the closed-form terms' means
    (:meth:`~thermo_lightning.models.LangevinSphere.configurational_terms`) over its samples
    (:meth:`~thermo_lightning.models.LangevinSphere.simulate`, every 5th step after
    ``burn_in``)."""
    out = problem.simulate([lr], n_samples=(steps - burn_in) // 5, stride=5, n_chains=chains,
                           burn_in=burn_in, seed=seed)
    grad_sq, laplacian = problem.configurational_terms(out.samples[0])
    return float(grad_sq.mean() / laplacian.mean())


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=200)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--burn-in", type=int, default=2000)
    p.add_argument("--lrs", type=float, nargs="+", default=[0.02, 0.04, 0.08])
    args = p.parse_args(argv)
    rows = []
    for dim, sigma, lo, hi in SETUPS:
        problem = LangevinSphere(dim=dim, noise_std=sigma,
                                 curvatures=torch.linspace(lo, hi, dim - 1))
        for lr in args.lrs:
            if lr * hi >= 0.5:  # conf_accuracy.py's bound
                continue
            t = chain_t_conf(problem, lr, args.chains, args.steps, args.burn_in, seed=0)
            rows.append({"dim": dim, "sigma": sigma, "curvatures": f"{lo:g}..{hi:g}", "lr": lr,
                         "T_conf/T_chain": t / problem.chain_temperature(lr),
                         "T_conf/T": t / problem.temperature(lr)})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return table


if __name__ == "__main__":
    main()
