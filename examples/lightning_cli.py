"""ThermoCallback and SphereProjectionStrategy configured from a YAML file with LightningCLI.

Everything (the network, the data, the strategy, the callback and its options) comes from
``examples/lightning_cli.yaml``; any value can be overridden on the command line.

Usage::

    python examples/lightning_cli.py fit --config examples/lightning_cli.yaml
    python examples/lightning_cli.py fit --config examples/lightning_cli.yaml \\
        --trainer.max_steps 200 --model.lr 0.1          # overrides
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from thermo_lightning.models import ClassificationTask


def main(args: list[str] | None = None) -> LightningCLI:
    return LightningCLI(ClassificationTask, args=args, subclass_mode_data=True,
                        save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
