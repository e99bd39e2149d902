"""The fit's settings, once: :class:`FitConfig`, from which everything else about them derives.

Each setting is one field with its default, its check, its documentation, whether it is
part of a checkpoint's identity, whether ``inverter.config.fit`` records it, and the
``discinvert fit`` flag that sets it. :func:`discinvert.fit_inverter`'s keyword
arguments, its docstring section on settings, the validation, the recorded config, the
resume identity check and the command line's ``fit`` flags are all read from here, so
a new fit option is one new field (and its test).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from discinvert.step_networks import DEFAULT_STEP_HIDDEN, MAX_ITERATIONS  # MAX_ITERATIONS: a stored config's bound
from discinvert.network import DEFAULT_CN_HIDDEN, CNConfig
from discinvert.pixel_encoder import DEFAULT_PIXEL_WIDTH, MAX_CONV_WIDTH, WIDTH_CAP_FACTOR
from discinvert import keyword_settings
from discinvert.argument_checks import nonnegative_float, optional_bool, positive_float, positive_int

__all__ = ["ADAM_BETAS", "DEFAULT_LR", "DEFAULT_PATIENCE", "DEFAULT_REAL_STEPS", "DEFAULT_SCHEDULE", "DEFAULT_STEPS",
           "ITERATIVE_SETTINGS", "MAX_SEED", "MAX_SEED_TEXT", "PERCEPTUAL_NETWORKS",
           "REAL_STAGE_SETTINGS", "CommandLine", "FitConfig", "Setting",
           "command_line_help", "command_line_settings", "setting_doc", "settings_doc", "shown_default"]

DEFAULT_STEPS = 2000
"""Default number of CN updates; chosen by the sweep of ``python -m benchmarks.speed.fit_defaults`` (see ``docs/results.md``)."""

DEFAULT_LR = 2e-3
"""Default peak Adam learning rate; chosen by the same sweep."""

DEFAULT_SCHEDULE = "cosine"
"""Default learning-rate schedule; chosen by ``python -m benchmarks.speed.time_to_quality`` (``docs/results.md``)."""

DEFAULT_PATIENCE: int | None = 5
"""Default convergence rule: validations without 0.1% improvement that end the fit (``docs/speed.md``)."""

DEFAULT_REAL_STEPS = 1500
"""Default number of real-image updates; from the encoder ablations (``docs/results.md``)."""

REAL_STAGE_SETTINGS = ("real_steps", "real_batch_size", "real_lr", "feature_weight", "prior_weight", "real_held_out")
"""The settings that act only with ``fit_inverter(images=...)``."""

ITERATIVE_SETTINGS = ("iteration_steps", "iteration_batch_size", "iteration_lr", "step_hidden")
"""The settings that act only with ``fit_inverter(iterations=k)``, ``k > 0``."""

MAX_SEED = 2**62
"""Seeds lie in ``[0, MAX_SEED)``: room in torch's int64 seeds for the offsets of each random stream and rank
(:data:`discinvert.fitting.run.STREAMS`)."""

MAX_SEED_TEXT = f"2**{MAX_SEED.bit_length() - 1}"
""":data:`MAX_SEED` as messages write it: ``"2**62"``."""

ADAM_BETAS = (0.5, 0.999)
"""Adam's ``(beta1, beta2)`` for every network a fit trains: the CN, and the networks of the real-image stage and
the step networks (the paper authors' released code used beta1 = 0.5)."""

_BETAS = f"betas {ADAM_BETAS[0]:g}, {ADAM_BETAS[1]:g}"  # as the settings' documentation writes them


@dataclass(frozen=True)
class CommandLine:
    """How ``discinvert fit`` exposes a setting.

    Attributes:
        flag: the option, e.g. ``"--steps"``.
        help: its help text. ``{default}`` in it stands for the default the flag leaves, written from the
            field's default (or from ``default``) by :func:`shown_default`, so the help follows the field:
            :func:`command_line_help` gives the text ``--help`` shows.
        kind: ``"int"`` (an integer ``>= minimum``), ``"float"`` (a positive number),
            ``"weight"`` (a number ``>= 0``),
            ``"seed"`` (an integer in ``[0, MAX_SEED)``), ``"switch"`` (``store_true``),
            ``"off-switch"`` (``store_false``: the flag turns the setting off),
            ``"choice"`` (one of ``choices``' keys, mapped to its value).
        minimum: for ``"int"``.
        choices: for ``"choice"``: the word on the command line → the setting's value.
        default: the command line's default when it differs from the library's
            (``discinvert fit`` seeds with 0 rather than a random seed); ``None`` leaves
            the library's.
    """

    flag: str
    help: str
    kind: Literal["int", "float", "weight", "seed", "switch", "off-switch", "choice"]
    minimum: int = 1
    choices: dict[str, Any] | None = None
    default: Any = None


@dataclass(frozen=True)
class Setting:
    """What :class:`FitConfig` knows about one of its fields (kept in the field's metadata)."""

    doc: str
    check: Callable[[Any, str], Any]
    identity: bool = True
    record: bool = True
    command_line: CommandLine | None = None


def _setting(default: Any, doc: str, check: Callable[[Any, str], Any], *, identity: bool = True, record: bool = True,
             command_line: CommandLine | None = None) -> Any:
    return field(default=default, metadata={"setting": Setting(doc, check, identity, record, command_line)})


# ----------------------------------------------------------------------------- checks (value, name) -> value
def _int_at_least(minimum: int) -> Callable[[Any, str], int]:
    return lambda value, name: positive_int(value, name, minimum)


def _float_positive(value: Any, name: str) -> float:
    return positive_float(value, name)


def _pixel_width(value: Any, name: str) -> int:
    most = MAX_CONV_WIDTH // WIDTH_CAP_FACTOR
    width = positive_int(value, name)
    if width > most:
        raise ValueError(f"{name}: expected at most {most} (the pixel network's widest block is {WIDTH_CAP_FACTOR} "
                         f"times it, at most {MAX_CONV_WIDTH}), got {width}.")
    return width


PERCEPTUAL_NETWORKS = ("encoder", "random")
"""The values of ``FitConfig.perceptual`` beside ``None``: which frozen network the generator-only route's
perceptual term reads (:mod:`discinvert.fitting.pixel_route`)."""


def _perceptual(value: Any, name: str) -> str | None:
    if value is not None and (not isinstance(value, str) or value not in PERCEPTUAL_NETWORKS):
        raise ValueError(f"{name}: expected None, {' or '.join(repr(v) for v in PERCEPTUAL_NETWORKS)}, got {value!r}.")
    return value


def _weight(value: Any, name: str) -> float:
    return nonnegative_float(value, name)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected True or False, got {value!r}.")
    return value


def _seed(value: Any, name: str) -> int | None:
    if value is None:
        return None
    seed = positive_int(value, name, 0)
    if seed >= MAX_SEED:
        raise ValueError(f"{name}: expected an int in [0, {MAX_SEED_TEXT}), got {seed}.")
    return seed


def _iterations(value: Any, name: str) -> int:
    iterations = positive_int(value, name, 0)
    if iterations > MAX_ITERATIONS:
        raise ValueError(f"{name}: expected an int in [0, {MAX_ITERATIONS}], got {iterations}.")
    return iterations


def _hidden(value: Any, name: str) -> tuple[int, ...]:
    return CNConfig(in_features=1, out_features=1, hidden=value).hidden


def _schedule(value: Any, name: str) -> str:
    if value not in ("cosine", "plateau"):
        raise ValueError(f"{name}: expected 'cosine' or 'plateau', got {value!r}.")
    return value


def _patience(value: Any, name: str) -> int | None:
    if value is None:
        return None
    return positive_int(value, name, 0) or None  # 0, like None, never stops early


def _device(value: Any, name: str) -> str | torch.device | None:
    if value is not None and not isinstance(value, (str, torch.device)):
        raise ValueError(f"{name}: expected a torch device such as 'cpu' or 'cuda', got {value!r}.")
    return value


def _path(value: Any, name: str) -> str | os.PathLike[str] | None:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name}: expected a file path, got {value!r}.")
    return value


def _autocast(value: Any, name: str) -> torch.dtype | str | None:
    # The device-dependent part (is this autocast available where the fit runs?) is checked
    # by discinvert.fitting.acceleration.check_autocast_dtype once the device is known.
    if value == "auto":
        return "auto"
    if value is not None and (not isinstance(value, torch.dtype) or value not in (torch.bfloat16, torch.float16)):
        raise ValueError(f"{name}: expected 'auto', None (full precision), torch.bfloat16 or torch.float16, got "
                         f"{value!r}.")
    return value


def _bool_or_auto(value: Any, name: str) -> bool | str:
    if value == "auto" and isinstance(value, str):
        return "auto"
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected 'auto', True or False, got {value!r}.")
    return value


@dataclass(frozen=True)
class FitConfig:
    """How :func:`discinvert.fit_inverter` fits the connection network.

    Every field is also a keyword argument of ``fit_inverter`` with the same name and
    default; :func:`settings_doc` lists them with their documentation. Values are
    checked on construction (``ValueError`` naming the setting, what was expected and
    what came) and normalised (NumPy integers become ints, ``cn_hidden`` a tuple).
    """

    steps: int = _setting(
        DEFAULT_STEPS, "CN updates, each on a fresh batch.", _int_at_least(1),
        command_line=CommandLine("--steps", "CN updates (default: the library's, {default})", "int"))
    batch_size: int = _setting(
        256, "pairs per update (at least 2, for the CN's BatchNorm).", _int_at_least(2),
        command_line=CommandLine("--batch-size", "pairs per update, at least 2 (default {default})", "int", minimum=2))
    lr: float = _setting(
        DEFAULT_LR, f"peak Adam learning rate ({_BETAS}); linear warm-up over the first 5% of steps "
        "(at most 100), then the ``schedule``.", _float_positive,
        command_line=CommandLine("--lr", "peak Adam learning rate (default: the library's)", "float"))
    schedule: str = _setting(
        DEFAULT_SCHEDULE, "the learning rate after the warm-up: ``'cosine'`` decays to 1% of ``lr`` at ``steps``; "
        "``'plateau'`` holds ``lr`` and divides it by 10 at each of the first two plateaus of the validation error "
        "(see ``patience``), so that ``steps`` is only a ceiling.", _schedule,
        command_line=CommandLine("--schedule", "learning-rate schedule: cosine to --steps, or plateau (drops at "
                                 "plateaus; --steps is a ceiling)", "choice",
                                 choices={"cosine": "cosine", "plateau": "plateau"}))
    patience: int | None = _setting(
        DEFAULT_PATIENCE, "the convergence rule: a plateau is this many validations (``eval_every`` updates apart) "
        "in which the best validation error improved by less than 0.1% (relative). A plateau stops the fit "
        "(with ``'cosine'``, counting only validations made once the rate has decayed to half its peak, over at "
        "least 5% of ``steps``; with "
        "``'plateau'``, the first two drop the learning rate instead); the log and "
        "``inverter.config.fit['stopped']`` say at which update. ``None`` (or 0) never stops before ``steps``.",
        _patience, command_line=CommandLine("--patience", "validations without 0.1%% improvement that stop the fit; "
                                            "0 never stops early (default: the library's)", "int", minimum=0))
    device: str | torch.device | None = _setting(
        None, "where to fit. ``None``: where G and D live (CUDA when they are on CUDA), else the CPU. The models "
        "are never moved: a device other than theirs is an error.", _device, identity=False, record=False)
    seed: int | None = _setting(
        None, "same seed, same machine, same number of torch threads (``torch.get_num_threads()``) → "
        "bit-identical inverter on the CPU (another thread count changes the order of float sums, hence the "
        "weights). ``None`` draws one (recorded in ``inverter.config.fit['seed']``). The global RNG state is left "
        "as it was.", _seed,
        command_line=CommandLine("--seed", f"seed in [0, {MAX_SEED_TEXT}); the same seed gives the same inverter "
                                 "(default {default})",
                                 "seed", default=0))
    progress: bool | None = _setting(
        None, "``None`` shows a tqdm bar on a terminal only; ``True`` always; ``False`` never.", optional_bool,
        identity=False, record=False,
        command_line=CommandLine("--no-progress", "no progress bar", "off-switch"))
    cn_hidden: Sequence[int] = _setting(
        DEFAULT_CN_HIDDEN, "widths of the CN's hidden layers (paper: two of 1024).", _hidden, identity=False, record=False)
    cn_batch_norm: bool = _setting(
        True, "BatchNorm after each hidden layer of the CN (paper: yes).", _bool, identity=False, record=False)
    cn_standardize: bool = _setting(
        True, "train the CN on D's features centred and with their spreads equalised (each value divided by "
        "its standard deviation relative to the median one, from the validation pairs' features), then fold "
        "the statistics into its first layer, so the stored CN has the paper's shape and reads raw features; "
        "``False`` trains on raw features as the paper does. Steadier on critics without BatchNorm "
        "(docs/results.md, \"How the defaults were chosen\").", _bool,
        command_line=CommandLine("--no-cn-standardize", "train the CN on D's raw features, as the paper does "
                                 "(default: standardised, folded into the CN afterwards)", "off-switch"))
    pixel_width: int = _setting(
        DEFAULT_PIXEL_WIDTH, "without a discriminator (``fit_inverter(G, None, ...)``): channels of the first block "
        f"of the pixel network the CN reads (each later block doubles them, up to {WIDTH_CAP_FACTOR} times this; "
        "see :mod:`discinvert.pixel_encoder`); the default was chosen on held-out train images "
        "(``docs/results.md``). Ignored with D.", _pixel_width, identity=False,
        record=False,
        command_line=CommandLine("--pixel-width", "without a discriminator (G alone): channels of the first block "
                                 "of the pixel network the inverter reads (default {default})", "int"))
    validation_size: int = _setting(
        1024, "held-out latents for validation, drawn once.", _int_at_least(2),
        command_line=CommandLine("--validation-size", "held-out latents that pick the best CN, at least 2 "
                                 "(default {default})", "int", minimum=2))
    eval_every: int = _setting(
        100, "steps between validations (and after the last step).", _int_at_least(1), record=False)
    reuse: int = _setting(
        1, "``1`` (default) draws every batch fresh. ``k > 1`` keeps a pool of generated batches, trains each "
        "step on a random batch from the pool and replaces its oldest batch every ``k`` steps, so each generated "
        "sample serves about ``k`` updates: generation costs ``k`` times less (see ``docs/speed.md`` for its "
        "effect on accuracy).", _int_at_least(1),
        command_line=CommandLine("--reuse", "CN steps per generated batch (default {default}: always fresh; see "
                                 "docs/speed.md)", "int"))
    checkpoint_path: str | os.PathLike[str] | None = _setting(
        None, "write a resumable checkpoint there every ``checkpoint_every`` steps (atomically: an interrupted fit "
        "leaves the last one valid).", _path, identity=False, record=False)
    checkpoint_every: int = _setting(
        500, "steps between checkpoints.", _int_at_least(1), identity=False, record=False)
    resume: bool = _setting(
        False, "continue from ``checkpoint_path`` if it exists; the result equals an uninterrupted fit with the "
        "same seed (bit-identical on the CPU). A checkpoint of another fit (other GAN, sizes, settings or number of "
        "processes) is refused. Under torchrun rank 0 writes ``checkpoint_path`` and every other rank its own RNG "
        "states and batch pool beside it (``<name>.rank<r>.step<N>.safetensors``); resume with the same number of "
        "processes.", _bool, identity=False, record=False)
    ddp: bool | None = _setting(
        None, "``None`` (default) joins DistributedDataParallel when launched with several processes; ``False`` "
        "always fits alone in this process, e.g. one independent fit per rank or a fit on rank 0 only.",
        optional_bool, identity=False, record=False)
    autocast_dtype: torch.dtype | str | None = _setting(
        "auto", "``'auto'`` (default): bfloat16 where the device runs it natively (CUDA with bf16 support; CPUs "
        "with AVX512-BF16 or AMX instructions), else full precision, and full "
        "precision if G or D fail under it. ``None`` fits in full precision. ``torch.bfloat16`` or ``torch.float16`` "
        "runs G and D (for the training pairs) and the CN's training forward pass under ``torch.autocast``, and so "
        "do the updates of the real-image stage and the step networks when a fit has them; the losses, the "
        "networks' weights and Adam stay float32 (``docs/speed.md``). The held-out validation pairs and "
        "every validation stay in full precision, so the reported error is the one ``encode`` gives. "
        "``inverter.config.fit['levers']`` records what the fit used.", _autocast,
        command_line=CommandLine("--autocast", "run G and D (training pairs) and the CN's training forward under "
                                 "torch.autocast in this dtype; auto: bf16 where the device has it natively "
                                 "(default: {default})", "choice",
                                 choices={"auto": "auto", "off": None, "bf16": torch.bfloat16,
                                          "fp16": torch.float16}))
    channels_last: bool | str = _setting(
        "auto", "run G and D for the training pairs as channels-last deep copies (faster convolutions with oneDNN "
        "and cuDNN; costs one copy of their weights; the user's models are never converted). ``True``: a model "
        "that cannot be copied, or whose copies fail in that layout (e.g. ``x.view(n, -1)`` after a convolution), "
        "is refused before training starts. ``'auto'`` (default): on for the CPU (where it was measured), and off "
        "without an error for such models; off on other devices.", _bool_or_auto,
        command_line=CommandLine("--channels-last", "run G and D as channels-last copies for the training pairs "
                                 "(default: {default}, on the CPU when they allow it)", "switch"))

    allow_batch_dependent_features: bool = _setting(
        False, "fit even when the feature layer's output for one image depends on the other images in its "
        "batch (after a minibatch standard deviation layer, as in StyleGAN's D), with a warning instead of the "
        "``ValueError``; the inverter's codes then depend on the batch they are encoded in. ``False`` "
        "(default) refuses such a layer and names the deepest one before the dependence "
        "(:func:`discinvert.gan.check_batch_independence`).", _bool, identity=False, record=False,
        command_line=CommandLine("--allow-batch-dependent-features", "fit even when the feature layer's output "
                                 "for an image depends on the rest of its batch (warns; codes then depend on "
                                 "the batch)", "switch"))

    real_steps: int = _setting(
        DEFAULT_REAL_STEPS, "updates of the real-image stage (only with ``images=``): the CN fine-tuned on the "
        "user's images through the frozen G (see :mod:`discinvert.fitting.real_image_stage`).", _int_at_least(1),
        identity=False, record=False,
        command_line=CommandLine("--real-steps", "updates of the real-image stage with --images (default "
                                 "{default})", "int"))
    real_batch_size: int = _setting(
        64, "real images per update of the real-image stage (at least 2).", _int_at_least(2),
        identity=False, record=False,
        command_line=CommandLine("--real-batch-size", "real images per update with --images (default {default})", "int",
                                 minimum=2))
    real_lr: float = _setting(
        1e-3, f"peak Adam learning rate of the real-image stage ({_BETAS}), decayed along a cosine to 1% "
        "of it at the stage's last update; 1e-3 measured best on held-out train images "
        "(``docs/results.md``).", _float_positive,
        identity=False, record=False,
        command_line=CommandLine("--real-lr", "peak learning rate of the real-image stage, cosine-decayed "
                                 "(default {default})", "float"))
    feature_weight: float = _setting(
        0.5, "weight of the real-image stage's discriminator-feature term (D's features of G(ẑ) against "
        "those of the image, at the feature layer, relative to their energy); 0 drops it. Without D: 0 (no D to "
        "read), or with ``perceptual`` the weight of its perceptual term.", _weight,
        identity=False, record=False,
        command_line=CommandLine("--feature-weight", "weight of the D-feature term with --images (default {default})",
                                 "weight"))
    perceptual: str | None = _setting(
        None, "without a discriminator (``fit_inverter(G, None, ...)``) and with ``images``: the frozen network "
        "whose features a perceptual term compares, weighted by ``feature_weight``, in the real-image stage and the "
        "step networks' training on the images, where D's features serve with D. ``None`` (default): no such term "
        "(the pixel and prior terms alone). ``'encoder'``: a frozen copy of the pixel network as the self-generated "
        "stage left it. ``'random'``: a frozen pixel network of the same layout, randomly initialised from the fit's "
        "seed. Used only while fitting, never saved; off by default (its gain, measured in the user guide's "
        "section on the generator alone, is small for its cost). Refused with D.",
        _perceptual, identity=False, record=False)
    prior_weight: float = _setting(
        0.1, "weight of the real-image stage's prior term (the self-generated z-regression on fresh pairs, "
        "keeping codes where G's latents live); 0 drops it.", _weight, identity=False, record=False,
        command_line=CommandLine("--prior-weight", "weight of the prior term with --images (default {default})",
                                 "weight"))
    real_held_out: int = _setting(
        512, "real images held out (at most a fifth of them, a seeded random slice) to choose the real-image "
        "stage's best weights by their pixel error.", _int_at_least(1), identity=False, record=False,
        command_line=CommandLine("--real-held-out", "images held out from --images to choose the best weights "
                                 "(default {default}, at most a fifth)", "int"))

    iterations: int = _setting(
        0, "step networks of iterative refinement trained after the CN (:mod:`discinvert.step_networks`): each "
        "reads D's features and the pixel residual of the current reconstruction and corrects the code, so "
        "``encode`` costs one more G pass and partial D pass per iteration. ``0`` (default): the CN alone, as "
        "in the paper. Trained on self-generated pairs, and on ``images`` when given (see "
        f"``docs/results.md`` for what iterations buy and cost). At most {MAX_ITERATIONS}.", _iterations,
        identity=False, record=False,
        command_line=CommandLine("--iterations", "step networks of iterative refinement to train after the CN "
                                 "(default {default}: the CN alone)", "int", minimum=0))
    iteration_steps: int = _setting(
        1000, "updates of each step network (only with ``iterations > 0``).", _int_at_least(1),
        identity=False, record=False,
        command_line=CommandLine("--iteration-steps", "updates of each step network with --iterations "
                                 "(default {default})", "int"))
    iteration_batch_size: int = _setting(
        64, "self-generated pairs per update of a step network, and as many real images with ``images`` "
        "(at least 2).", _int_at_least(2), identity=False, record=False,
        command_line=CommandLine("--iteration-batch-size", "pairs (and images) per update of a step network "
                                 "(default {default})", "int", minimum=2))
    iteration_lr: float = _setting(
        3e-4, f"Adam learning rate of the step networks (constant; {_BETAS}).", _float_positive,
        identity=False, record=False,
        command_line=CommandLine("--iteration-lr", "learning rate of the step networks (default {default})", "float"))
    step_hidden: Sequence[int] = _setting(
        DEFAULT_STEP_HIDDEN, "widths of each step network's hidden layers. With ``images``, ``(64,)`` measured better in an "
        "eighth of the weights; without, 512 is better (``docs/results.md``).", _hidden, identity=False, record=False)

    def iterative_record(self) -> dict[str, Any]:
        """The iterative stage's settings, as ``inverter.config.fit['iterative']`` records them."""
        return {name: _jsonable(getattr(self, name)) for name in ("iterations", *ITERATIVE_SETTINGS)}

    def real_stage_record(self) -> dict[str, Any]:
        """The real-image stage's settings, as ``inverter.config.fit['real_images']`` records them."""
        return {name: getattr(self, name) for name in REAL_STAGE_SETTINGS}

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            setting: Setting = item.metadata["setting"]
            object.__setattr__(self, item.name, setting.check(getattr(self, item.name), item.name))
        if self.resume and self.checkpoint_path is None:
            raise ValueError("resume: expected a checkpoint_path to resume from; got resume=True without one.")

    @classmethod
    def build(cls, config: FitConfig | None = None, **settings: Any) -> FitConfig:
        """``config`` (or the defaults) with ``settings`` replaced; unknown names are a ``ValueError``.

        Raises:
            ValueError: a name that is no setting (with close matches), or a bad value.
        """
        if config is not None and not isinstance(config, cls):
            raise ValueError(f"config: expected a FitConfig, got {type(config).__name__}.")
        names = [item.name for item in dataclasses.fields(cls)]
        unknown = [name for name in settings if name not in names]
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(
                f"{unknown[0]!r}: expected a fit setting, one of {', '.join(names)}; got an unknown name.{hint}"
            )
        return dataclasses.replace(config, **settings) if config is not None else cls(**settings)

    def identity(self) -> dict[str, Any]:
        """The settings a checkpoint must share with the fit that resumes it (JSON-able)."""
        return {item.name: _jsonable(getattr(self, item.name)) for item in dataclasses.fields(self)
                if item.metadata["setting"].identity}

    def record(self) -> dict[str, Any]:
        """The settings ``inverter.config.fit`` records (JSON-able)."""
        return {item.name: _jsonable(getattr(self, item.name)) for item in dataclasses.fields(self)
                if item.metadata["setting"].record}


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def setting_doc(item: dataclasses.Field[Any]) -> str:
    """One setting's documentation (its :class:`Setting`'s), as :func:`discinvert.keyword_settings.keyword_settings`
    writes it into ``fit_inverter``'s docstring."""
    return item.metadata["setting"].doc


def settings_doc(indent: str = "    ") -> str:
    """The ``Args:``-style documentation of every setting, for docstrings."""
    return keyword_settings.settings_doc(FitConfig, indent, describe=setting_doc)


def shown_default(value: Any, option: CommandLine) -> str:
    """A default as a flag's help writes it: a choice's word, ``1e-3`` for small floats, ``0.5``, ``256``, ``auto``."""
    if option.kind == "choice" and option.choices:
        return next(word for word, choice in option.choices.items() if choice == value)
    if isinstance(value, float) and value != 0.0 and abs(value) < 1e-2:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def command_line_help(name: str) -> str:
    """The help text ``discinvert fit --help`` shows for setting ``name``'s flag: its ``{default}`` is the
    field's default (or the command line's own, :attr:`CommandLine.default`), as :func:`shown_default` writes it.

    Raises:
        ValueError: ``name`` is no setting with a flag.
    """
    for item in dataclasses.fields(FitConfig):
        option = item.metadata["setting"].command_line
        if item.name == name and option is not None:
            default = option.default if option.default is not None else item.default
            return option.help.format(default=shown_default(default, option))
    raise ValueError(f"{name!r}: expected a fit setting with a command-line flag, got none of that name.")


def command_line_settings() -> list[tuple[str, CommandLine]]:
    """``(setting name, how discinvert fit exposes it)`` for every setting with a flag, in field order."""
    return [(item.name, item.metadata["setting"].command_line) for item in dataclasses.fields(FitConfig)
            if item.metadata["setting"].command_line is not None]

