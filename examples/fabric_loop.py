"""The measurement in a Lightning Fabric loop: the same ThermoMeter as in a plain loop, with
Fabric's all-reduce as the meter's cross-process reduction (so it also runs with
``--devices 2`` under DDP: every rank measures, the sums are reduced once).

    python examples/fabric_loop.py [--steps 400] [--devices 1] [--lr 0.01]

At the default lr 0.01 the width-4 net fits the digits (U from about 0.36 to 0.002 in 400
steps) and S falls with it, the over-parameterised collapse; at ``--lr 0.05`` its loss stays
near 3.9, above a uniform guess (ln 10 = 2.3): the saturated regime. The script says which
after the table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd
import torch
from lightning.fabric import Fabric

from thermo_lightning import keys
from thermo_lightning.meter import ThermoMeter
from thermo_lightning.models.convnet import ScaleInvariantConvNet
from thermo_lightning.projector import SphereProjector


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits

    fabric = Fabric(accelerator="cpu", devices=args.devices)
    fabric.launch()
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    x, y = (x - x.mean()) / x.std(), torch.tensor(digits.target)
    torch.manual_seed(0)  # the same initial weights on every rank
    net = ScaleInvariantConvNet(4, in_channels=1)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=args.lr)
    projector = SphereProjector()
    projector.attach(net, [opt])  # hooks on the optimiser that Fabric will wrap
    said: list[str] = []  # the meter's warnings, printed with the table
    meter = ThermoMeter(window=args.window, k=args.k, stride=2, schedule=args.every,
                        warn=said.append)
    meter.setup(projector.named_parameters, optimizers=[opt], max_steps=args.steps,
                reduce_fn=lambda t: fabric.all_reduce(t, reduce_op="sum")
                if fabric.world_size > 1 else t)
    meter.attach(opt)
    model, optimizer = fabric.setup(net, opt)
    gen = torch.Generator().manual_seed(100 + fabric.global_rank)  # each rank its own batches
    model.train()
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(x), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        fabric.backward(loss)
        optimizer.step()
        meter.update(loss)
        if meter.should_measure(step):
            meter.measure(step)
    meter.detach()
    projector.detach()
    history = meter.history
    if fabric.global_rank == 0:
        table = history[["step", keys.ENERGY, keys.ENTROPY, keys.ESS]].astype({"step": int})
        print(table.to_string(index=False))
        u = history[keys.ENERGY].dropna()
        print(f"U went from {u.iloc[0]:.3g} to {u.iloc[-1]:.3g} (a uniform guess: ln 10 = "
              "2.30): " + ("the net fits the digits; S falls with it (the collapse), its "
                           "drifting windows have a low ESS (the thermo/ess column, of "
                           f"{meter.window} snapshots), and such a run gives no "
                           "temperature." if u.iloc[-1] < 0.5 else
                           "the net does not fit the digits at this learning rate (the "
                           "saturated regime)."))
        for message in said:
            if "effective sample size" not in message:  # the collapse's low ESS: the table
                print(f"meter: {message}")
    return history


if __name__ == "__main__":
    main()
