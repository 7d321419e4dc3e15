"""Run by tests under Lightning DDP on CPU (2 ranks, gloo): ThermoCallback with a sharded or
unsharded window. Each rank writes its logged history and its (local) window to
OUT/rank{r}.pt."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from thermo_lightning.callback import ThermoCallback
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.probes import flat_gradient


def main(out: Path, shard: bool) -> None:
    pl.seed_everything(0)
    seen: list = []

    def loss_fn(module, batch):  # records the SNR's mini-batches of this rank
        seen.append(batch)
        return module.loss(batch)[0]

    cb = ThermoCallback(window=40, k=[5, 3], schedule=20, shard=shard, snr_batches=4,
                        loss_fn=loss_fn, conf_temperature=True)
    model = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1), lr=0.2)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_sphere_projection", max_steps=60,
        callbacks=[cb], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DigitsDataModule(batch_size=32))
    assert cb.buffer is not None
    order = cb.buffer.time_order()
    # the last SNR's batch gradients at the final weights (the last logging point is the
    # last step; the configurational terms drew the same batches after it): the test pools
    # both ranks' and compares with the logged SNR and ||grad_S U||^2
    model.train()
    params = trainer.strategy.projector.parameters
    grads = torch.stack([flat_gradient(model.loss(b)[0], params) for b in seen[-4:]])
    torch.save(
        {"history": cb.history.to_dict("list"), "window": cb.buffer.data[order].clone(),
         "col_start": cb.buffer.col_start, "col_stop": cb.buffer.col_stop, "dim": cb.spec.dim,
         "rank": trainer.global_rank, "snr_grads": grads,
         "weights": torch.cat([p.detach().reshape(-1) for p in params])},
        out / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] == "shard")
