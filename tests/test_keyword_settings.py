"""Public signatures generated from settings dataclasses (discinvert.keyword_settings) stay the contract they were."""

from __future__ import annotations

import dataclasses
import inspect
import pydoc
import re
import types
from typing import Any

import pytest
import torch

from discinvert import zoo
from discinvert.inverter import Inverter
from discinvert.keyword_settings import keyword_settings, setting
from discinvert.metrics import Draws, reconstruction_score
from discinvert.optimize import OptimizeSettings, optimize_latents
from discinvert.zoo.datasets import to_model_range

# str(inspect.signature(...)) of each, written down from the code before issue 33 (41ee85f): names, order, kinds,
# defaults and annotations. Issue 34 added one keyword since, optimize_latents' ``prior`` (the Gaussian of a
# W/W+ code space, before ``callback``), written in below.
BEFORE = {
    "refine": (
        "(self, images: 'torch.Tensor | np.ndarray', steps: 'int' = 50, *, lr: 'float' = 0.05, "
        "loss: \"Literal['mse', 'l1']\" = 'mse', feature_weight: 'float' = 0.0, prior_weight: 'float' = 0.0, "
        "batch_size: 'int | None' = None, progress: 'bool | None' = None, tol: 'float | None' = None, "
        "conditions: 'torch.Tensor | np.ndarray | None' = None, range_check: 'RangeCheck' = 'warn', "
        "iterations: 'int | None' = None, callback: 'Callable[[int, int, torch.Tensor], None] | None' = None) "
        "-> 'torch.Tensor'"
    ),
    "optimize_latents": (
        "(generator: 'nn.Module', images: 'torch.Tensor', init: 'torch.Tensor', *, steps: 'int', lr: 'float' = 0.05, "
        "loss: \"Literal['mse', 'l1']\" = 'mse', tap: 'FeatureTap | None' = None, feature_weight: 'float' = 0.0, "
        "prior_weight: 'float' = 0.0, conditions: 'torch.Tensor | None' = None, "
        "conditioning: 'Conditioning | None' = None, batch_size: 'int' = 256, tol: 'float | None' = None, "
        "progress: 'bool | None' = None, discriminator: 'nn.Module | None' = None, prior: 'GaussianPrior | None' = None, "
        "callback: 'Callable[[int, int, torch.Tensor], None] | None' = None) -> 'torch.Tensor'"
    ),
    "reconstruction_score": (
        "(inverter: 'Inverter', images: 'torch.Tensor | np.ndarray', *, n: 'int' = 1000, repeats: 'int' = 5, "
        "seed: 'int' = 0, refine_steps: 'int' = 0, batch_size: 'int | None' = None, "
        "value_range: 'tuple[float, float] | None' = None, conditions: 'torch.Tensor | np.ndarray | None' = None, "
        "image_shape: 'tuple[int, ...] | None' = None, range_check: 'RangeCheck' = 'warn', "
        "progress_callback: 'Callable[[int, int], None] | None' = None) -> 'dict[str, float | int]'"
    ),
}
FUNCTIONS = {"refine": Inverter.refine, "optimize_latents": optimize_latents, "reconstruction_score": reconstruction_score}


@pytest.fixture(scope="module")
def bundled():
    """The zoo's G, D and paper inverter (G and D are only read here)."""
    return zoo.load()


@pytest.mark.parametrize("name", list(BEFORE))
def test_the_generated_signatures_are_the_ones_written_by_hand_before(name: str) -> None:
    signature = inspect.signature(FUNCTIONS[name])
    assert str(signature) == BEFORE[name]
    kinds = [p.kind for p in signature.parameters.values()]
    assert inspect.Parameter.VAR_KEYWORD not in kinds and kinds == sorted(kinds)


@pytest.mark.parametrize("name", list(BEFORE))
def test_help_documents_every_keyword_once(name: str) -> None:
    text = pydoc.render_doc(FUNCTIONS[name], renderer=pydoc.plaintext)
    assert "{settings}" not in text
    for parameter in list(inspect.signature(FUNCTIONS[name]).parameters)[1 if name == "refine" else 0:]:
        assert len(re.findall(rf"^ +{parameter}: ", text, flags=re.MULTILINE)) == 1, parameter


def test_the_bound_method_shows_the_signature_without_self(bundled) -> None:
    _, _, inverter = bundled
    assert str(inspect.signature(inverter.refine)) == BEFORE["refine"].replace("(self, ", "(")


def test_each_shared_default_is_the_dataclass_s() -> None:
    for function in (Inverter.refine, optimize_latents):
        parameters = inspect.signature(function).parameters
        for item in dataclasses.fields(OptimizeSettings):
            assert parameters[item.name].default == item.default and parameters[item.name].annotation == item.type
    assert [item.name for item in dataclasses.fields(Draws)] == ["n", "repeats", "seed"]


@pytest.mark.parametrize("call, message", [
    (lambda inv, G, x, z: inv.refine(x, 1, lrr=0.1), "Inverter.refine() got an unexpected keyword argument 'lrr'"),
    (lambda inv, G, x, z: inv.refine(x, 1, settings={}), "Inverter.refine() got an unexpected keyword argument 'settings'"),
    (lambda inv, G, x, z: optimize_latents(G, x, z, steps=1, feture_weight=1.0),
     "optimize_latents() got an unexpected keyword argument 'feture_weight'"),
    (lambda inv, G, x, z: reconstruction_score(inv, x, nn=2), "reconstruction_score() got an unexpected keyword argument 'nn'"),
    (lambda inv, G, x, z: optimize_latents(G, x, z), "optimize_latents() missing 1 required keyword-only argument: 'steps'"),
    (lambda inv, G, x, z: inv.refine(x, 1, steps=2), "Inverter.refine() got multiple values for argument 'steps'"),
], ids=["refine", "refine-settings", "optimize", "score", "missing", "twice"])
def test_a_misspelt_keyword_is_the_type_error_python_gave_before(bundled, call, message) -> None:
    G, _, inverter = bundled
    calls = []
    hook = G.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(TypeError) as caught:
            call(inverter, G, torch.zeros(2, 1, 28, 28), torch.zeros(2, 100, 1, 1))
    finally:
        hook.remove()
    assert str(caught.value) == message and calls == []


def test_calls_with_every_keyword_reach_the_optimisation(bundled) -> None:
    G, D, inverter = bundled
    x = to_model_range(zoo.load_test_images("dcgan-fashion-mnist")[0][:5])
    seen: list[tuple[int, int]] = []
    every = dict(lr=0.02, loss="l1", feature_weight=0.1, prior_weight=0.01, tol=0.5, progress=False,
                 callback=lambda start, step, codes: seen.append((start, step)))
    refined = inverter.refine(x, 2, batch_size=4, conditions=None, range_check="ignore", iterations=0, **every)
    assert seen[0] == (0, 0) and {start for start, _ in seen} == {0, 4} and max(step for _, step in seen) == 2
    codes = inverter.encode(x, 4, iterations=0)  # as refine encodes them: in batches of 4
    seen.clear()
    direct = optimize_latents(G, x, codes, steps=2, tap=inverter._gan.tap, conditions=None, conditioning=None,
                              batch_size=4, discriminator=D, **every)
    torch.testing.assert_close(direct, refined, rtol=0, atol=0)
    assert seen and not torch.equal(direct, codes)
    done: list[tuple[int, int]] = []
    score = reconstruction_score(inverter, x, n=3, repeats=2, seed=3, refine_steps=1, batch_size=3,
                                 value_range=(-1.0, 1.0), conditions=None, image_shape=(1, 28, 28),
                                 range_check="ignore", progress_callback=lambda d, t: done.append((d, t)))
    assert score["n"] == 3 and score["repeats"] == 2 and done[-1][0] == done[-1][1]


def test_bad_option_values_are_still_value_errors_before_any_step(bundled) -> None:
    G, _, inverter = bundled
    x, z = torch.zeros(2, 1, 28, 28), torch.zeros(2, 100, 1, 1)
    with pytest.raises(ValueError, match=r"loss: expected 'mse' or 'l1', got 'l2'"):
        optimize_latents(G, x, z, steps=1, loss="l2")
    with pytest.raises(ValueError, match=r"lr: "):
        inverter.refine(x, 1, lr=-1.0)
    with pytest.raises(ValueError, match=r"n: "):
        reconstruction_score(inverter, x, n=0)


# ----------------------------------------------------------------------------- the decorator itself
@dataclasses.dataclass(frozen=True)
class _Options:
    rate: float = setting(0.5, "how fast.")
    name: str = setting("x", "what to call it.")


def _documented(*, size: int = 1, **settings: Any) -> dict[str, Any]:
    """Do it.

    Args:
        size: how big.
        {settings}
    """
    return {"size": size, **dataclasses.asdict(_Options(**settings))}


def _fresh(function: Any) -> Any:
    """A copy of ``function`` (keyword_settings(strict=False) sets the signature and docstring of what it decorates)."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__)
    copy.__kwdefaults__, copy.__doc__ = dict(function.__kwdefaults__), function.__doc__
    copy.__annotations__, copy.__qualname__ = dict(function.__annotations__), function.__qualname__
    return copy


def test_the_decorator_orders_documents_and_passes_the_settings_through() -> None:
    plain = keyword_settings(_Options)(_fresh(_documented))
    assert str(inspect.signature(plain)) == "(*, size: 'int' = 1, rate: 'float' = 0.5, name: 'str' = 'x') -> 'dict[str, Any]'"
    assert "        rate: how fast.\n        name: what to call it.\n" in plain.__doc__
    assert plain(rate=2.0) == {"size": 1, "rate": 2.0, "name": "x"}
    ordered = keyword_settings(_Options, order=("name", "size", "rate"), annotated=False)(_fresh(_documented))
    assert str(inspect.signature(ordered)) == "(*, name='x', size: 'int' = 1, rate=0.5) -> 'dict[str, Any]'"
    with pytest.raises(TypeError, match=r"_documented\(\) got an unexpected keyword argument 'rat'"):
        plain(rat=1.0)
    loose = keyword_settings(_Options, strict=False)(_fresh(_documented))  # the function sees the unknown name itself
    with pytest.raises(TypeError, match=r"_Options.__init__\(\) got an unexpected keyword argument 'rat'"):
        loose(rat=1.0)


def test_the_decorator_refuses_what_it_cannot_generate() -> None:
    with pytest.raises(ValueError, match=r"order: expected each keyword-only argument once, name, rate, size; got size"):
        keyword_settings(_Options, order=("size",))(_fresh(_documented))

    def no_settings(*, size: int = 1) -> None:
        """{settings}"""

    with pytest.raises(ValueError, match=r"expected a function taking \*\*settings"):
        keyword_settings(_Options)(no_settings)

    def no_doc(**settings: Any) -> None:
        pass

    with pytest.raises(ValueError, match=r"\{settings\} line"):
        keyword_settings(_Options)(no_doc)

    def clash(*, rate: float = 1.0, **settings: Any) -> None:
        """{settings}"""

    with pytest.raises(ValueError, match=r"_Options repeats rate"):
        keyword_settings(_Options)(clash)


def _fitter(generator: Any, *, config: Any = None, **settings: Any) -> None:
    """Fit.

    Args:
        generator: G.
        {settings}

    Returns:
        nothing.
    """




def test_fit_inverter_s_signature_and_docstring_are_generated_from_fit_config() -> None:
    """fit_inverter's keywords are FitConfig's fields, in order, with their defaults and no annotations (as the
    decorator fit.py used before keyword_settings wrote them), and its docstring documents each one."""
    from discinvert import fit_inverter
    from discinvert.fitting.fit_config import FitConfig, settings_doc

    parameters = list(inspect.signature(fit_inverter).parameters.values())
    assert [p.name for p in parameters[:9]] == ["generator", "discriminator", "feature_layer", "latent_shape",
                                                "latent_sampler", "conditioning", "images", "config", "on_validation"]
    settings = [p for p in parameters if p.name in FitConfig.__dataclass_fields__]
    defaults = FitConfig()
    expected = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name))
                for name in FitConfig.__dataclass_fields__]
    assert settings == expected and parameters[-len(expected):] == expected
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    assert "{settings}" not in fit_inverter.__doc__ and settings_doc(" " * 8).lstrip() in fit_inverter.__doc__
