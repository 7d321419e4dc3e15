"""GPU figures: the entropy of a ConvNet-64-sized window and the callback's per-step overhead
on a ConvNet-64 CIFAR-sized step. Needs a CUDA GPU.

1. k-NN graph entropy (k = 50) of a 1000 x 1,550,016 float32 window on the GPU (torch
   backend: chunked GEMM on the centred window, TF32 off), median of 5 after a warm-up,
   with CUDA events; target < 0.2 s on an H100/H200-class GPU.
2. ScaleInvariantConvNet(64) on random CIFAR-sized batches (128 x 3 x 32 x 32, data on the
   GPU): median step time with and without projection + snapshots, alternating blocks of 20
   steps in one run (window 1000 on the GPU, 6.2 GB); target < 5% overhead.

Usage::

    python benchmarks/gpu_benchmark.py [--steps 400] [--n 1000] [--d 1550016]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))


def entropy_time(n: int, d: int, repeats: int = 5) -> tuple[float, float]:
    from thermo_lightning.functional import knn_entropy

    g = torch.Generator(device="cuda").manual_seed(0)
    w = torch.randn(n, d, device="cuda", generator=g)
    w = w / w.norm(dim=1, keepdim=True)
    s = knn_entropy(w, k=50, dim=d - 1, backend="torch")  # warm-up
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        s = knn_entropy(w, k=50, dim=d - 1, backend="torch")
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(times), s


def step_overhead(steps: int, window: int) -> tuple[float, float]:
    import lightning.pytorch as pl
    from callback_overhead import _Toggle

    from thermo_lightning import SphereProjectionStrategy, ThermoCallback
    from thermo_lightning.data import CIFARDataModule
    from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10_000, 32, 32, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (10_000,), generator=g)
    dm = CIFARDataModule(data=(images, labels), batch_size=128, on_device=True)
    model = ClassificationTask(ScaleInvariantConvNet(64), lr=0.05)
    strategy = SphereProjectionStrategy(verify=False)
    thermo = ThermoCallback(window=window, schedule=lambda s: False, snr=None)
    toggle = _Toggle(strategy.projector, thermo, block=20)
    trainer = pl.Trainer(accelerator="gpu", devices=1, strategy=strategy, max_steps=steps,
                         callbacks=[toggle, thermo], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, dm)
    return statistics.median(toggle.on), statistics.median(toggle.off)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--d", type=int, default=1_550_016)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--window", type=int, default=1000)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    t, s = entropy_time(args.n, args.d)
    print(f"entropy {args.n} x {args.d}: median {t:.4f} s (S = {s:.6g})")
    on, off = step_overhead(args.steps, args.window)
    print(f"ConvNet-64 CIFAR step: {off * 1e3:.3f} ms without, {on * 1e3:.3f} ms with "
          f"projection + snapshots: overhead {100 * (on / off - 1):.2f}%")


if __name__ == "__main__":
    main()
