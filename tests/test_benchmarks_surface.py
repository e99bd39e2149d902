"""The benchmarks and the build tools stay runnable: the library names they rely on exist, they run as ``python -m``,
and the maps (``benchmarks/README.md``, ``tools/README.md``) name them all.

``benchmarks/README.md`` ("Internal surface") lists the only non-public discinvert names the
benchmarks import; this file imports exactly those, checks that nothing else private is imported
under ``benchmarks/``, that no file there edits ``sys.path``, and that every script answers
``--help`` when run as ``python -m benchmarks....``.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
MAP = (BENCHMARKS / "README.md").read_text()

# Modules whose ``__all__`` is public API; ``from discinvert import X`` may also name these modules.
PUBLIC_MODULES = ("discinvert", "discinvert.metrics", "discinvert.optimize", "discinvert.zoo",
                  "discinvert.zoo.architectures", "discinvert.zoo.datasets", "discinvert.zoo.gans",
                  "discinvert.zoo.stylegan2")

SCRIPTS = ("benchmarks.paper.table1", "benchmarks.paper.train_gan", "benchmarks.paper.describe_gans",
           "benchmarks.paper.rivals.train", "benchmarks.speed.speed",
           "benchmarks.speed.fit_speed", "benchmarks.speed.generation_levers", "benchmarks.speed.fit_defaults",
           "benchmarks.encoder.ablation", "benchmarks.encoder.real_stage",
           "benchmarks.encoder.iterative", "benchmarks.speed.time_to_quality", "benchmarks.speed.cn_shapes",
           "benchmarks.encoder.real_schedule", "benchmarks.encoder.speed_ratio",
           "benchmarks.encoder.multi_hypothesis", "benchmarks.speed.compress_cn", "benchmarks.stylegan2.train",
           "benchmarks.stylegan2.table", "benchmarks.stylegan2.wplus_defaults",
           "benchmarks.generator_only.routes", "benchmarks.generator_only.timing", "benchmarks.directions.classifier",
           "benchmarks.directions.edits", "benchmarks.directions.estimators")

# The tools that build the files the package ships (issue 33 moved them out of benchmarks/paper/).
BUILD_TOOLS = ("tools.build_zoo", "tools.build_zoo_real", "tools.build_zoo_inverter", "tools.store_zoo_inverter",
               "tools.build_zoo_stylegan2", "tools.build_zoo_directions")
TOOLS_MAP = (ROOT / "tools" / "README.md").read_text()


def _documented_surface() -> set[str]:
    """The dotted names in the map's "Internal surface" table."""
    section = MAP.split("## Internal surface", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(discinvert\.[\w.]+)` \|", section, flags=re.M))


def _python_files() -> list[Path]:
    return sorted(BENCHMARKS.rglob("*.py"))


def _discinvert_imports() -> dict[str, set[str]]:
    """Every ``module.name`` that a file under benchmarks/ imports from discinvert, with the files."""
    found: dict[str, set[str]] = {}
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "discinvert":
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.split(".")[0] == "discinvert"]
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def _is_public(dotted: str) -> bool:
    if dotted in PUBLIC_MODULES:
        return True
    module, _, name = dotted.rpartition(".")
    if module not in PUBLIC_MODULES:
        return False
    if f"{module}.{name}" in PUBLIC_MODULES:  # from discinvert import zoo
        return True
    return name in getattr(importlib.import_module(module), "__all__", ())


def test_the_documented_internal_surface_exists_and_works() -> None:
    """Exactly the names the map lists; a library refactor that renames one fails here first."""
    from discinvert.guard import frozen
    from discinvert.fitting.pool import POOL_BATCHES
    from discinvert.fitting.pool import FreshBatches
    from discinvert.fitting.self_generated_stage import train_regressor

    from discinvert.fitting.image_sets import split_images
    from discinvert.step_networks import StepConfig, residual_shape
    from discinvert.fitting.step_network_stage import train_step_networks
    from discinvert.network import mlp
    from discinvert.fitting.fit_config import ADAM_BETAS as BETAS
    from discinvert.fitting.updates import LossWeights, lr_factor
    from discinvert.fitting.real_image_stage import train_on_images
    from discinvert.fitting.fit_config import FitConfig
    from discinvert.fitting.image_sets import ImageBatches
    from discinvert.fitting.loop import Plan, Runtime
    from discinvert.fitting.run import FrozenGAN

    imported = {"discinvert.network.mlp", "discinvert.fitting.fit_config.ADAM_BETAS", "discinvert.fitting.updates.lr_factor",
                "discinvert.fitting.loop.Plan", "discinvert.fitting.loop.Runtime", "discinvert.fitting.run.FrozenGAN",
                "discinvert.fitting.image_sets.ImageBatches", "discinvert.fitting.updates.LossWeights",
                "discinvert.guard.frozen", "discinvert.fitting.pool.POOL_BATCHES", "discinvert.fitting.pool.FreshBatches",
                "discinvert.fitting.self_generated_stage.train_regressor", "discinvert.fitting.step_network_stage.train_step_networks",
                "discinvert.step_networks.StepConfig", "discinvert.step_networks.residual_shape",
                "discinvert.fitting.image_sets.split_images", "discinvert.fitting.real_image_stage.train_on_images",
                "discinvert.fitting.fit_config.FitConfig"}
    assert imported == _documented_surface()
    stage_inputs = (FrozenGAN, ImageBatches, Plan, Runtime, LossWeights)
    _exercise_step_training(frozen, split_images, StepConfig, residual_shape, train_step_networks, stage_inputs)
    _exercise_real_stage(frozen, split_images, train_on_images, FitConfig, stage_inputs)

    assert isinstance(POOL_BATCHES, int) and POOL_BATCHES >= 1  # fit_speed's "samples generated" column

    # As benchmarks/speed/cn_shapes.py uses them: the CN's layers, optimiser betas and schedule.
    layers = mlp(12, (6, 4), 3, batch_norm=True, negative_slope=0.2)
    assert layers(torch.randn(5, 12)).shape == (5, 3)
    assert [type(m).__name__ for m in layers][:3] == ["Linear", "BatchNorm1d", "LeakyReLU"]
    assert len(BETAS) == 2 and all(0 < b < 1 for b in BETAS)
    factors = [lr_factor(step, 100, 5) for step in range(100)]
    assert factors[0] < factors[4] == 1.0 and factors[-1] == pytest.approx(0.01, abs=1e-3)

    # As benchmarks/baselines.py calls them: a model trained on fresh batches, inside frozen(G, D).
    torch.manual_seed(0)
    generator, discriminator = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)), nn.Linear(3, 1)
    generator.train()
    rng = torch.Generator().manual_seed(0)
    x_val = torch.randn(16, 3, generator=rng)
    y_val = x_val[:, :2].clone()

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(8, 3, generator=rng)
        return x, x[:, :2].clone()

    model = nn.Linear(3, 2)
    with frozen(generator, discriminator):
        assert not generator.training and not any(p.requires_grad for p in generator.parameters())
        result = train_regressor(model, FreshBatches(next_batch), (x_val, y_val), Plan(6, 1e-2, 8, 2),
                                 Runtime(torch.device("cpu"), progress=False), desc="surface")
    assert generator.training and all(p.requires_grad for p in generator.parameters())
    assert set(result.best_state) == set(model.state_dict())
    assert result.best_error >= 0 and 1 <= result.best_step <= 6
    assert [row[0] for row in result.history] == [2, 4, 6]


def _exercise_real_stage(frozen, split_images, train_on_images, FitConfig, stage_inputs) -> None:
    """As benchmarks/encoder/real_schedule.py calls them: one CN fine-tuned from the same start, decayed or not."""
    from discinvert import fit_inverter
    from tests.conftest import _build

    defaults = FitConfig()
    assert defaults.real_batch_size >= 2 and defaults.real_held_out >= 1 and defaults.real_steps >= 1
    assert defaults.feature_weight >= 0 and defaults.prior_weight >= 0
    gan = _build("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=5, batch_size=8, cn_hidden=(8,), progress=False, validation_size=8, seed=0)
    _, images, _ = gan.sample(40)
    split = split_images(images, inverter.image_shape, held_out=8, seed=4, image_range=inverter.config.image_range)
    start = {k: v.clone() for k, v in inverter.cn.state_dict().items()}
    tap, shape = inverter._gan.tap, inverter.latent_shape
    FrozenGAN, ImageBatches, Plan, Runtime, LossWeights = stage_inputs
    finals = []
    for decay in (False, True):
        inverter.cn.load_state_dict(start)
        pair_rng = torch.Generator().manual_seed(3)

        def prior_pairs() -> tuple[torch.Tensor, torch.Tensor]:
            z = torch.randn(4, *shape, generator=pair_rng)
            with torch.no_grad():
                return tap(gan.generator(z)), z.reshape(4, -1)

        with frozen(gan.generator, gan.discriminator):
            result = train_on_images(inverter.cn, FrozenGAN(gan.generator, tap, shape),
                                     ImageBatches(split, torch.Generator().manual_seed(2)), prior_pairs,
                                     Plan(4, 1e-2, 4, 2), Runtime(torch.device("cpu"), progress=False),
                                     weights=LossWeights(0.5, 0.1), decay=decay)
        assert [row[0] for row in result.history] == [0, 2, 4] and result.best_pixel_mse <= result.start_pixel_mse
        assert not inverter.cn.training
        finals.append([h[2] for h in result.history])
    assert finals[0][0] == finals[1][0] and finals[0][1:] != finals[1][1:]  # one start and batches; the rates differ


def _exercise_step_training(frozen, split_images, StepConfig, residual_shape, train_step_networks, stage_inputs) -> None:
    """As benchmarks/encoder/iterative.py calls them: one step network on top of a fitted CN, with images."""
    from discinvert import fit_inverter
    from tests.conftest import _build

    gan = _build("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=5, batch_size=8, cn_hidden=(8,), progress=False, validation_size=8, seed=0)
    _, images, _ = gan.sample(40)
    split = split_images(images, inverter.image_shape, held_out=8, seed=4, image_range=inverter.config.image_range)
    assert len(split.held_out) == 8
    config = StepConfig(feature_dim=inverter.config.feature_dim, latent_dim=inverter.config.latent_dim,
                        residual_shape=residual_shape(inverter.image_shape), hidden=(8,))
    FrozenGAN, ImageBatches, Plan, Runtime, LossWeights = stage_inputs
    rng = torch.Generator().manual_seed(0)
    with frozen(gan.generator, gan.discriminator):
        steps, results = train_step_networks(
            inverter.cn, config, FrozenGAN(gan.generator, inverter._gan.tap, inverter.latent_shape),
            lambda n: torch.randn(n, *inverter.latent_shape, generator=rng), torch.randn(8, *inverter.latent_shape),
            ImageBatches(split, torch.Generator().manual_seed(1)), Plan(4, 1e-3, 4, 2),
            Runtime(torch.device("cpu"), progress=False), iterations=1, weights=LossWeights(0.5, 0.1))
    assert len(steps) == 1 and not steps[0].training
    assert results[0].metric == "held-out pixel MSE" and [row[0] for row in results[0].history] == [0, 2, 4]
    assert results[0].best_error <= results[0].start_error


def test_benchmarks_import_only_public_names_and_the_documented_surface() -> None:
    imports = _discinvert_imports()
    assert imports, "expected the benchmarks to import discinvert"
    private = {name: sorted(files) for name, files in imports.items() if not _is_public(name)}
    surface = _documented_surface()
    undocumented = {name: files for name, files in private.items() if name not in surface}
    assert not undocumented, (f"private discinvert names imported under benchmarks/ but not in benchmarks/README.md's "
                              f"internal surface: {undocumented}; use public API, a helper in benchmarks/common.py, "
                              "or document the name there and in this test")
    unused = surface - set(private)
    assert not unused, f"benchmarks/README.md lists names no benchmark imports any more: {sorted(unused)}"


def test_no_benchmark_touches_sys_path() -> None:
    edits = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
                    and node.value.id == "sys":
                edits.append(str(path.relative_to(ROOT)))
                break
    assert not edits, f"these files touch sys.path; run the scripts as python -m benchmarks.... instead: {edits}"
    for path in sorted(BENCHMARKS.rglob("*")):
        if path.is_dir() and path.name != "__pycache__":
            assert (path / "__init__.py").is_file(), f"{path.relative_to(ROOT)} is not a package"


def test_the_map_names_every_script() -> None:
    """Every module with a ``__main__`` block is in SCRIPTS and in the map, with its python -m command."""
    runnable = set()
    for path in _python_files():
        if 'if __name__ == "__main__":' in path.read_text():
            runnable.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    assert runnable == set(SCRIPTS)
    table = MAP.split("## The map", 1)[1].split("\n## ", 1)[0]
    for module in SCRIPTS:
        relative = "/".join(module.split(".")[1:]) + ".py"
        assert f"| `{relative}`" in table, f"benchmarks/README.md's map has no row for {relative}"
        assert f"`python -m {module} " in table, f"benchmarks/README.md's map has no command for {module}"
    assert "`bash benchmarks/paper/table1_run.sh" in table


def test_the_tools_map_names_every_tool() -> None:
    """Every tool with a ``__main__`` block is a row of tools/README.md with its command; the build tools are among
    them and no longer under benchmarks/."""
    runnable = {path.stem for path in (ROOT / "tools").glob("*.py") if 'if __name__ == "__main__":' in path.read_text()}
    assert {module.split(".")[1] for module in BUILD_TOOLS} <= runnable
    table = TOOLS_MAP.split("## The map", 1)[1].split("\n## ", 1)[0]
    for name in sorted(runnable):
        assert f"| `{name}.py` |" in table, f"tools/README.md's map has no row for {name}.py"
        assert f"`python -m tools.{name}" in table or f"`python tools/{name}.py" in table, name
    for module in BUILD_TOOLS:
        assert f"`python -m {module} " in table
        assert not (BENCHMARKS / "paper" / f"{module.split('.')[1]}.py").exists()


@pytest.mark.parametrize("module", BUILD_TOOLS)
def test_build_tools_import_without_side_effects(module: str) -> None:
    tool = importlib.import_module(module)
    assert callable(tool.main)


def test_every_script_answers_help_through_python_m() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
           "OMP_NUM_THREADS": "1"}
    procs = {module: subprocess.Popen([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for module in SCRIPTS + BUILD_TOOLS}
    for module, proc in procs.items():
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"python -m {module} --help failed:\n{output[-2000:]}"
        assert "usage:" in output, output


@pytest.mark.parametrize("module", SCRIPTS)
def test_scripts_import_without_side_effects(module: str) -> None:
    """Importing a script (as table1 and the tests do) parses no arguments and writes nothing."""
    script = importlib.import_module(module)
    assert callable(script.main)
