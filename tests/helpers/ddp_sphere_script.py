"""Run by tests under Lightning DDP on CPU (2 ranks, gloo). Lightning relaunches this script for
rank 1; each rank writes its SI weights and norms to OUT/rank{r}.pt."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from thermo_lightning.data import DigitsDataModule
from thermo_lightning.functional import joint_norm
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet


class RecordNorms(pl.Callback):
    def __init__(self) -> None:
        self.norms: list[float] = []
        self.batch_sums: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.norms.append(float(joint_norm(trainer.strategy.projector.parameters)))
        self.batch_sums.append(float(batch[0].sum()))


def main(out: Path, steps: int, module: str = "task") -> None:
    pl.seed_everything(0)
    torch.manual_seed(torch.distributed.get_rank() if torch.distributed.is_initialized() else 0)
    rec = RecordNorms()
    if module == "noforward":  # training_step calls self.net(x); no forward to verify with
        from tests.helpers.modules import NoForward

        model = NoForward(lr=0.5)
    else:
        model = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1), lr=0.5)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_sphere_projection", max_steps=steps,
        callbacks=[rec], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DigitsDataModule(batch_size=32))
    params = [p.detach().clone() for p in trainer.strategy.projector.parameters]
    torch.save(
        {"params": params, "norms": rec.norms, "batch_sums": rec.batch_sums,
         "rank": trainer.global_rank, "world_size": trainer.world_size,
         "projections": trainer.strategy.projector.projection_count,
         "verified": trainer.strategy.projector.verification.passed},
        out / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])
