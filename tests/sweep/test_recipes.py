"""Model recipes: what a sweep knows about each model, in one registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermo_lightning.sweep import recipes
from thermo_lightning.sweep.config import SweepConfig
from thermo_lightning.sweep.recipes import FACTORY, RECIPES, Recipe, recipe_for, register_recipe


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Recipe]:
    """The registry, restored after the test."""
    monkeypatch.setattr(recipes, "RECIPES", dict(RECIPES))
    return recipes.RECIPES


def test_the_built_in_models_defaults_come_from_their_recipes() -> None:
    assert set(RECIPES) == {"convnet", "resnet18", "toy-up", "toy-op", "langevin"}
    langevin = SweepConfig(model="langevin", lrs=[0.1])
    assert (langevin.data, langevin.batch_size, langevin.precision, langevin.snr) == (
        None, 1, "64-true", None)
    toy = SweepConfig(model="toy-up", lrs=[0.1])
    assert (toy.data, toy.batch_size, toy.precision, toy.snr) == (None, 128, "64-true", "auto")
    net = SweepConfig(model="convnet", lrs=[0.1])
    assert (net.data, net.batch_size, net.precision) == ("digits", 128, "32-true")
    assert recipe_for("pkg.mod:make") is FACTORY
    with pytest.raises(ValueError, match="`model` must be one of"):
        recipe_for("mlp")
    with pytest.raises(ValueError, match="does not change a 'langevin' run"):
        SweepConfig(model="langevin", lrs=[0.1], grid={"width": [1, 2]})
    with pytest.raises(ValueError, match="needs `data`"):
        SweepConfig(model="convnet", data="none", lrs=[0.1])
    with pytest.raises(ValueError, match="a recipe's name"):
        register_recipe(Recipe("a:b", RECIPES["langevin"].build))


def test_a_new_model_is_one_recipe(registry: dict[str, Recipe], tmp_path: Path) -> None:
    # a recipe of its own: the known-temperature problem with its noise doubled, which it
    # says through known_temperature; the sweep, the runner and the report need no change
    from thermo_lightning.models import LangevinSphere, LangevinSphereModule
    from thermo_lightning.report import make_report
    from thermo_lightning.sweep import run_sweep

    def build(cfg: SweepConfig, lr: float, dm: object) -> LangevinSphereModule:
        problem = LangevinSphere(dim=cfg.dim, noise_std=2 * cfg.noise_std)
        return LangevinSphereModule(problem, lr=lr, seed=cfg.seed, init_seed=cfg.seed)

    register_recipe(Recipe(
        "loud-langevin", build, brings_own_data=True, batch_size=1, precision="64-true",
        snr=None, ignores=("width",), verify=False,
        known_temperature=lambda cfg, lr: lr * (2 * cfg.noise_std) ** 2 / 2))
    cfg = SweepConfig(model="loud-langevin", dim=5, lrs=[0.02, 0.04, 0.08], steps=300,
                      window=20, k=[3], schedule=20)
    assert cfg.snr is None and cfg.precision == "64-true"
    run_sweep(cfg, tmp_path, progress=False)
    result = make_report(tmp_path, tmp_path / "report", tensorboard=False,
                         lr_range=(0.01, 0.1))
    truth = dict(zip(result.runs["lr"], result.runs["T_true"], strict=True))
    assert truth == pytest.approx({0.02: 0.01, 0.04: 0.02, 0.08: 0.04})  # lr (2 sigma)^2 / 2


def test_a_recipe_of_this_process_only_is_refused_for_worker_processes(
        registry: dict[str, Recipe], tmp_path: Path) -> None:
    from thermo_lightning.launch import RayLauncher
    from thermo_lightning.sweep import run_sweep

    register_recipe(Recipe("here-only", RECIPES["langevin"].build, brings_own_data=True,
                           snr=None))
    cfg = SweepConfig(model="here-only", lrs=[0.1], steps=40, window=10, k=[3], schedule=10)
    for kwargs in ({"workers": 2}, {"launcher": RayLauncher()}):
        with pytest.raises(ValueError, match="registered in this process only"):
            run_sweep(cfg, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_the_known_temperature_is_the_chains() -> None:
    # the first-order lr sigma^2 / 2 is off by O(lr lambda): the chain's dU/dS is the truth a
    # sweep measures (issue 27)
    from thermo_lightning.models import LangevinSphere
    from thermo_lightning.sweep.recipes import recipe_for

    cfg = SweepConfig(model="langevin", lrs=[0.1], dim=8, noise_std=1.5, batch_size=4)
    truth = recipe_for("langevin").known_temperature(cfg, 0.1)
    chain = LangevinSphere(dim=8, noise_std=0.75).chain_temperature(0.1)  # sigma / sqrt(4)
    assert truth == pytest.approx(chain, rel=1e-12)
    assert truth > 1.02 * 0.1 * 0.75**2 / 2  # not the first-order value
