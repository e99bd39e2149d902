"""The front door of a fit: :func:`fit_inverter` runs the stages in order and returns an :class:`Inverter`.

The feature layer is looked up and tapped (:mod:`~discinvert.layers`, :mod:`~discinvert.features`) and
checked against G (:func:`discinvert.gan.inspect_gan`); one :class:`~discinvert.fitting.run.FitRun` then
carries the fit: :mod:`~discinvert.fitting.pairs` makes the pairs ``(D_f(G(z)), z)``, fresh each step;
:mod:`~discinvert.fitting.self_generated_stage` regresses ``z`` on the features with the CN
(:mod:`~discinvert.network`), resumable through :mod:`~discinvert.fitting.checkpoint`; with ``images=``,
:mod:`~discinvert.fitting.real_image_stage` fine-tunes the CN on real images; with ``iterations=``,
:mod:`~discinvert.fitting.step_network_stage` trains the step networks. G and D are frozen in eval mode
throughout and come back exactly as they were handed over. The settings live in
:class:`~discinvert.fitting.fit_config.FitConfig`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from tqdm.contrib.logging import logging_redirect_tqdm

from discinvert import behaviour
from discinvert import distributed as dist_utils
from discinvert.conditioning import Conditioning, check_conditioning
from discinvert.features import FeatureTap
from discinvert.files import check_writable
from discinvert.fingerprint import fingerprint_discriminator
from discinvert.fitting.acceleration import AUTO, check_autocast_dtype, resolve_channels_last
from discinvert.fitting.checkpoint import Checkpointing
from discinvert.fitting.fit_config import (DEFAULT_LR, DEFAULT_STEPS, ITERATIVE_SETTINGS, REAL_STAGE_SETTINGS,
                                           FitConfig, setting_doc)
from discinvert.fitting.image_sets import ImageBatches, ImageSource, ImageSplit, split_images
from discinvert.fitting.loop import Plan
from discinvert.fitting.updates import LossWeights
from discinvert.fitting.pairs import PairMaker
from discinvert.fitting.pixel_route import (PIXEL_LAYER, PixelInput, PixelRegressor, check_route, perceptual_network,
                                            route_settings)
from discinvert.fitting.pool import BatchSource
from discinvert.fitting.real_image_stage import RealStageResult, train_on_images
from discinvert.fitting.run import FitRun, FrozenGAN, Seeds
from discinvert.fitting.self_generated_stage import OnValidation, TrainResult, train_regressor
from discinvert.fitting.step_network_stage import train_step_networks
from discinvert.gan import BATCH_CHECK_SIZE, check_batch_independence, check_module, inspect_gan, resolve_device
from discinvert.guard import buffer_snapshot, frozen
from discinvert.inverter import Inverter
from discinvert.inverter_config import InverterConfig
from discinvert.keyword_settings import keyword_settings
from discinvert.latents import LatentSampler, normal_sampler, parse_latent_shape
from discinvert.layers import FeatureLayer, resolve_layers
from discinvert.mapped import MappedGenerator
from discinvert.network import CNConfig, ConnectionNetwork, feature_statistics, standardised_inputs
from discinvert.pixel_encoder import WIDTH_CAP_FACTOR, PixelEncoder, PixelEncoderConfig
from discinvert.serialization import PRIOR_TENSORS
from discinvert.step_networks import StepConfig, StepNetwork, residual_shape

__all__ = ["DEFAULT_LR", "DEFAULT_STEPS", "FitConfig", "UselessInverterWarning", "fit_inverter"]

logger = logging.getLogger(__name__)

_STEP_VALIDATION = 512  # held-out latents that choose each step network's weights (without images)


class UselessInverterWarning(UserWarning):
    """The fit's best validation error does not beat predicting the mean code: the inverter ignores its input.

    ``inverter.config.fit`` then records ``"useless": true`` beside both figures
    (``best_validation_mse``, ``baseline_validation_mse``). Filter it like any warning, e.g.
    ``warnings.simplefilter("error", UselessInverterWarning)`` to make such a fit fail.
    """


def _new_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 12


def _mapped_prior(generator: MappedGenerator, latent_shape: Sequence[int] | int | None,
                  latent_sampler: LatentSampler | None) -> tuple[LatentSampler, tuple[int, ...]]:
    """A :class:`MappedGenerator`'s sampler and code shape, unless given; a given shape must be the space's."""
    if latent_shape is not None and parse_latent_shape(latent_shape) != generator.latent_shape:
        raise ValueError(
            f"latent_shape: expected the shape of one code of the generator's latent space {generator.space!r}, "
            f"{generator.latent_shape}, or None (the default for a MappedGenerator), got {latent_shape!r}.")
    if latent_sampler is not None and not callable(latent_sampler):
        raise ValueError(f"latent_sampler: expected a callable (n, generator, device) -> Tensor, got {latent_sampler!r}.")
    return (generator.sample if latent_sampler is None else latent_sampler), generator.latent_shape


def _prior(generator: nn.Module, latent_shape: Sequence[int] | int | None,
           latent_sampler: LatentSampler | None) -> tuple[LatentSampler, tuple[int, ...] | None]:
    """The sampler to draw latents from, and the shape every draw must have (``None``: the sampler's).

    A :class:`~discinvert.MappedGenerator` gives both by default: its ``sample`` and ``latent_shape``."""
    if isinstance(generator, MappedGenerator):
        return _mapped_prior(generator, latent_shape, latent_sampler)
    if latent_shape is None and latent_sampler is None:
        raise ValueError(
            "latent_shape: expected the shape of G's latent input, e.g. latent_shape=(100,) or "
            "(100, 1, 1) for z ~ N(0, I), or a latent_sampler(n, generator, device) for another "
            "prior; got neither."
        )
    shape = parse_latent_shape(latent_shape) if latent_shape is not None else None
    if latent_sampler is not None and not callable(latent_sampler):
        raise ValueError(f"latent_sampler: expected a callable (n, generator, device) -> Tensor, got {latent_sampler!r}.")
    return (latent_sampler if latent_sampler is not None else normal_sampler(shape)), shape  # type: ignore[arg-type]


def _seeded(settings: FitConfig, dist_ctx: dist_utils.DistContext, device: torch.device) -> FitConfig:
    """``settings`` with a seed: the given one, or a fresh one (the same on every rank under torchrun)."""
    if settings.seed is not None:
        return settings
    seed = _new_seed()
    if dist_ctx.enabled:
        seed = int(dist_utils.broadcast_scalar(float(seed % 2**52), device))
    return FitConfig.build(settings, seed=seed)


def _seed_global_rngs(seed: int, device: torch.device) -> None:
    # Seed only the RNGs fork_rng restores: torch.manual_seed would also re-seed every other GPU.
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


def _pixel_config(run: FitRun) -> PixelEncoderConfig:
    """The pixel network of a generator-only fit, laid out for G's images."""
    width = run.settings.pixel_width
    return PixelEncoderConfig(run.facts.image_shape, base_width=width, max_width=width * WIDTH_CAP_FACTOR)  # type: ignore[arg-type]


def _checkpointing(run: FitRun, cn_config: CNConfig, cn_batches: torch.Generator,
                   probe_record: behaviour.Behaviour) -> Checkpointing | None:
    """Where and how the self-generated stage checkpoints (``None``: no ``checkpoint_path``).

    Checkpoints carry the fit's behavioural fingerprint; resuming compares a stored one with it.
    """
    settings, facts, dist_ctx, device = run.settings, run.facts, run.dist_ctx, run.device
    if settings.checkpoint_path is None:
        return None
    layer_name = run.layer_name
    identity = {
        **settings.identity(), "feature_layer": layer_name if isinstance(layer_name, str) else list(layer_name),
        "latent_shape": list(run.latent_shape), "cn": cn_config.to_dict(),
        "generator_fingerprint": facts.generator_fingerprint, "discriminator_fingerprint": facts.discriminator_fingerprint,
        "conditional": run.conditioning is not None, "world_size": dist_ctx.world_size, "levers": run.levers,
    }
    if isinstance(run.gan.generator, MappedGenerator):  # a W and a Z fit of one G can share every other entry
        identity["latent_space"] = run.gan.generator.space_record()
    if run.pixel_route:  # G alone: what the regressor reads is part of it
        identity.update(feature_source="pixels", pixel_encoder=_pixel_config(run).to_dict())
    # Checkpoints written before issue 18 lack the rule and the levers: they resume with the settings
    # that behave as that version did (schedule 'cosine', patience None, explicit levers).
    before_18 = {"schedule": None} if settings.schedule == "cosine" else {}
    before_18.update({"patience": None} if settings.patience is None else {})
    before_18.update({"levers": None} if AUTO not in (settings.autocast_dtype, settings.channels_last) else {})
    # Checkpoints written before the CN's standardised features trained on raw ones (cn_standardize=False).
    before_18.update({"cn_standardize": None} if not settings.cn_standardize else {})
    checkpointing = Checkpointing(
        path=Path(settings.checkpoint_path), every=settings.checkpoint_every, resume=settings.resume, identity=identity,
        generators={"train": cn_batches}, cuda_device=device if device.type == "cuda" else None,
        rank=dist_ctx.rank, world_size=dist_ctx.world_size,
        # checkpoints written before format version 2 recorded D's weights-only fingerprint
        also_accept={"discriminator_fingerprint": fingerprint_discriminator(run.discriminator, facts.modules),
                     **before_18},
    )
    checkpointing.behaviour = probe_record.to_dict()
    checkpointing.check_behaviour = functools.partial(
        behaviour.check_stored, measured=probe_record, source=str(checkpointing.path),
        image_size=math.prod(facts.image_shape), feature_dim=facts.feature_dim, layer=layer_name)
    return checkpointing


def _record_behaviour(run: FitRun, users_buffers: Callable[[], None]) -> behaviour.Behaviour:
    """The behavioural fingerprint, on probes in G's range, from the buffer values the user handed over
    (``users_buffers`` puts them back: the checks before may have moved a buffer that moves on every call);
    its own seeded RNGs are put back, so the fit's random streams do not move. With a custom
    ``latent_sampler`` only D is probed; without D (the generator-only route) only G."""
    users_buffers()
    generator = run.gan.generator
    return behaviour.record(generator, None if run.pixel_route else run.gan.tap, latent_shape=run.latent_shape,
                            image_shape=run.facts.image_shape, image_range=run.held_out.image_range,
                            conditioning=run.conditioning, normal_prior=not run.custom_prior,
                            latent_sampler=generator.sample if isinstance(generator, MappedGenerator) else None)


def _inverter_config(run: FitRun, cn_config: CNConfig, result: TrainResult, stages: dict[str, Any],
                     step_config: StepConfig | None, findings: dict[str, bool]) -> InverterConfig:
    """The returned inverter's config; ``stages`` holds the records of the real-image and iterative stages
    that ran (``"real_images"``, ``"iterative"``)."""
    settings, facts = run.settings, run.facts
    generator = run.gan.generator
    space = generator.space_record() if isinstance(generator, MappedGenerator) else None
    pixels = _pixel_config(run) if run.pixel_route else None
    return InverterConfig(
        feature_layer=None if pixels else run.layer_name, latent_shape=run.latent_shape,
        image_shape=facts.image_shape, feature_dim=cn_config.in_features, cn=cn_config,
        generator_fingerprint=facts.generator_fingerprint,
        discriminator_fingerprint=None if pixels else facts.discriminator_fingerprint,
        discriminator_modules=() if pixels else facts.modules, conditional=run.conditioning is not None,
        feature_source="discriminator" if pixels is None else "pixels", pixel_encoder=pixels,
        latent_prior="custom" if run.custom_prior else "normal" if space is None else "mapped", latent_space=space,
        image_range=run.held_out.image_range, iterations=0 if step_config is None else settings.iterations,
        step=step_config,
        fit={
            **settings.record(), "best_step": result.best_step, "best_validation_mse": result.best_error,
            "final_validation_mse": result.last_error, "baseline_validation_mse": run.held_out.baseline,
            "seconds": round(result.seconds, 3), "device": str(run.device), "history": result.history,
            "world_size": run.dist_ctx.world_size, "resumed_from_step": result.resumed_from,
            "stopped": result.stopped, "lr_drops": result.lr_drops, "levers": run.levers, **findings, **stages,
        },
    )


def _warn_if_useless(result: TrainResult, baseline: float, run: FitRun) -> bool:
    """Warn when the best validation MSE does not beat predicting the held-out latents' mean; whether it did not.

    The mean's MSE is measured on the same held-out latents (about 1.0 per value for a standard normal prior).
    A fit whose weights blew up (a far too large ``lr``) or whose feature layer carries nothing about the image
    (dead or constant features) ends there, and its codes are no better than one fixed code for every image.
    """
    if result.best_error < baseline:
        return False
    settings = run.settings
    remedy = ("a wider pixel network (pixel_width)" if run.pixel_route else "another feature_layer whose features vary "
              "with the image (see discinvert.suggest_feature_layers)")
    warnings.warn(
        f"fit: expected a validation MSE below {baseline:.4g}, what predicting the mean code scores, got "
        f"{result.best_error:.4g} at best: this inverter ignores its input and gives every image about the same "
        f"code. Try a smaller lr (this fit: {settings.lr:g}), {remedy}, or more steps. inverter.config.fit records "
        '"useless": true.', UselessInverterWarning, stacklevel=3)
    return True


def _split(run: FitRun, images: ImageSource) -> ImageSplit:
    """The user's images checked and split; under torchrun every rank must hold the same images."""
    # A Dataset's random transforms draw from the global RNG: read on a fork, so that the
    # fit's own stream (the CN's initialisation) does not depend on them.
    def split() -> ImageSplit:
        with torch.random.fork_rng(devices=[]):
            return split_images(images, run.facts.image_shape, held_out=run.settings.real_held_out,
                                seed=run.seeds.of("image_split"), image_range=run.held_out.image_range)

    device = run.device
    if not run.dist_ctx.enabled:
        return split()
    made = dist_utils.together(split, device, "images")
    mine = (float(made.images.size), float(made.held_out.double().sum()))
    rank0 = tuple(dist_utils.broadcast_scalar(value, device) for value in mine)
    if not dist_utils.all_ok(mine == rank0, device):
        here = (f"other pixels than rank 0's (as many images, {made.images.size})" if mine[0] == rank0[0]
                else f"{made.images.size} images here and {int(rank0[0])} on rank 0")
        raise ValueError(
            f"images: expected the same images on every rank under torchrun (the stage splits and draws them "
            f"itself), got {here}; pass the whole training set on every rank, not a DistributedSampler's share.")
    return made


def _new_cn(run: FitRun) -> ConnectionNetwork | PixelRegressor:
    """The connection network to fit, initialised from the fit's seeded global RNG, on the fit's device; for G
    alone, the pixel network and the CN behind it as one :class:`PixelRegressor` (the pixel network drawn first)."""
    settings, feature_dim = run.settings, run.facts.feature_dim
    pixels = PixelEncoder(_pixel_config(run)) if run.pixel_route else None
    cn_config = CNConfig(in_features=feature_dim if pixels is None else pixels.config.out_features,
                         out_features=math.prod(run.latent_shape), hidden=settings.cn_hidden,
                         batch_norm=settings.cn_batch_norm)
    cn = ConnectionNetwork(cn_config)
    if pixels is not None:
        logger.info("fitting the pixel network %s (%d features) with the CN, for the generator alone",
                    [list(block) for block in pixels.config.layout], cn_config.in_features)
    logger.info("fitting CN %d -> %d on %s: %d steps of %d pairs, lr %.2g, seed %d", cn_config.in_features,
                cn_config.out_features, run.device, settings.steps, settings.batch_size, settings.lr, settings.seed)
    return (cn if pixels is None else PixelRegressor(pixels, cn)).to(run.device)


def _self_generated_stage(run: FitRun, cn: ConnectionNetwork | PixelRegressor, source: BatchSource,
                          checkpointing: Checkpointing | None, on_validation: OnValidation | None) -> TrainResult:
    """Regress ``z`` on the features with ``cn`` (left holding its best weights, reading raw features).

    With ``settings.cn_standardize`` the CN trains on features standardised with the validation
    features' statistics (the same on every rank and on resume), folded into its first layer afterwards.
    """
    settings, held_out = run.settings, run.held_out
    standardise = (standardised_inputs(cn, *feature_statistics(held_out.features))  # type: ignore[arg-type]
                   if settings.cn_standardize else contextlib.nullcontext())  # (never for G alone: route_settings)
    with standardise:
        result = train_regressor(
            cn, source, (held_out.features, held_out.targets),
            Plan(settings.steps, settings.lr, settings.batch_size, settings.eval_every), run.runtime,
            desc="fit CN", checkpointing=checkpointing, on_validation=on_validation, schedule=settings.schedule,
            patience=settings.patience,
        )
    result.best_state = {k: v.detach().clone() for k, v in cn.state_dict().items()}  # the folded best weights
    logger.info("fit done in %.1f s: best validation MSE %.5f at step %d (predicting the mean: %.5f)%s%s",
                result.seconds, result.best_error, result.best_step, held_out.baseline,
                "" if result.stopped is None else f"; stopped at update {result.stopped} of {settings.steps} "
                "(plateau)", "; standardised features folded into the CN" if settings.cn_standardize else "")
    return result


def _real_stage(run: FitRun, cn: ConnectionNetwork | PixelRegressor, split: ImageSplit) -> dict[str, Any]:
    """Fine-tune ``cn`` (holding the self-generated fit's best weights) on real images; its record.

    The updates run under the autocast dtype the self-generated stage settled (its levers, probed there).
    """
    settings, held_out = run.settings, run.held_out
    logger.info("real-image stage: %d updates of %d images from %s (%d held out), lr %.2g, feature weight %g%s, "
                "prior weight %g", settings.real_steps, settings.real_batch_size, split.images.source,
                len(split.held_out), settings.real_lr, settings.feature_weight,
                "" if settings.perceptual is None else f" (perceptual network: {settings.perceptual})",
                settings.prior_weight)
    images = ImageBatches(split, run.rng("real_batches", on_device=False))
    prior_pairs = run.pairs.training_batches(batch_size=settings.real_batch_size, rng=run.rng("real_prior_pairs"),
                                             reuse=1, autocast_dtype=run.autocast_dtype, channels_last=False,
                                             feature_dim=run.facts.feature_dim, probe=run.probe)
    stage: RealStageResult = train_on_images(
        cn, run.gan, images, prior_pairs,
        Plan(settings.real_steps, settings.real_lr, settings.real_batch_size, settings.eval_every), run.runtime,
        weights=LossWeights(settings.feature_weight, settings.prior_weight))
    with torch.no_grad():
        chunks = [cn(held_out.features[i : i + settings.batch_size]) for i in range(0, len(held_out.features),
                                                                                settings.batch_size)]
        latent_error = float(torch.nn.functional.mse_loss(torch.cat(chunks).float(), held_out.targets))
    logger.info("real-image stage done in %.1f s: held-out pixel MSE %.5f -> %.5f (step %d); latent validation MSE "
                "%.5f", stage.seconds, stage.start_pixel_mse, stage.best_pixel_mse, stage.best_step, latent_error)
    recorded = settings.real_stage_record()
    if run.pixel_route:  # the D route's record stays as it was: perceptual is always None there
        recorded["perceptual"] = settings.perceptual
    return {**stage.record(recorded), "latent_validation_mse": latent_error}


def _with_perceptual(run: FitRun, cn: ConnectionNetwork | PixelRegressor, split: ImageSplit | None) -> FitRun:
    """``run`` whose ``gan`` carries the frozen perceptual network of a generator-only fit with ``perceptual`` and
    images (made from ``cn`` as the self-generated stage left it); otherwise ``run`` itself."""
    kind = run.settings.perceptual
    if kind is None or split is None or not isinstance(cn, PixelRegressor):
        return run
    network = perceptual_network(kind, cn, run.seeds.of("perceptual"))
    return dataclasses.replace(run, gan=dataclasses.replace(run.gan, perceptual=network))


def _iterative_stage(run: FitRun, cn: ConnectionNetwork | PixelRegressor, split: ImageSplit | None,
                     ) -> tuple[StepConfig, list[StepNetwork], dict[str, Any]]:
    """Train ``settings.iterations`` step networks after ``cn``; their config, the networks and the record.

    For G alone the step networks read the trained pixel network's features (frozen) where D's would be."""
    if isinstance(cn, PixelRegressor):
        pixels = cn.pixels
        tap = FeatureTap(pixels, pixels.last_layer, pixels.get_submodule(pixels.last_layer))
        with frozen(pixels):
            return _train_steps(run, cn.cn, dataclasses.replace(run.gan, tap=tap), split)
    return _train_steps(run, cn, run.gan, split)


def _train_steps(run: FitRun, cn: ConnectionNetwork, gan: FrozenGAN, split: ImageSplit | None,
                 ) -> tuple[StepConfig, list[StepNetwork], dict[str, Any]]:
    """The step networks after ``cn``, reading the features ``gan.tap`` gives; their config, them and the record."""
    settings, latent_shape = run.settings, run.latent_shape
    step_config = StepConfig(feature_dim=cn.config.in_features, latent_dim=math.prod(latent_shape),
                             residual_shape=residual_shape(run.facts.image_shape), hidden=settings.step_hidden)
    logger.info("iterative refinement: %d step networks of %d updates (%d pairs%s each), lr %.2g",
                settings.iterations, settings.iteration_steps, settings.iteration_batch_size,
                "" if split is None else " and as many images", settings.iteration_lr)
    image_rng = run.rng("step_batches", on_device=False)
    latent_rng = run.rng("step_latents")

    def draw_latents(n: int) -> torch.Tensor:
        return run.pairs.draw(n, latent_rng)[0]

    validation = run.held_out.targets[:_STEP_VALIDATION].reshape(-1, *latent_shape).to(run.device)
    step_networks, results = train_step_networks(
        cn, step_config, gan, draw_latents, validation, None if split is None else ImageBatches(split, image_rng),
        Plan(settings.iteration_steps, settings.iteration_lr, settings.iteration_batch_size, settings.eval_every),
        run.runtime, iterations=settings.iterations, weights=LossWeights(settings.feature_weight, settings.prior_weight))
    record = {**settings.iterative_record(), "trained_on": "self-generated pairs" if split is None else
              "self-generated pairs and images", "steps": [r.record() for r in results],
              "seconds": round(sum(r.seconds for r in results), 3)}
    return step_config, step_networks, record


def _check_callback(on_validation: OnValidation | None) -> None:
    if on_validation is not None and not callable(on_validation):
        raise ValueError(f"on_validation: expected a callable taking a ValidationPoint, or None, got {on_validation!r}.")


def _training_batches(run: FitRun, rng: torch.Generator) -> tuple[BatchSource, FitRun]:
    """The self-generated stage's batches, and ``run`` with the autocast dtype and levers they settled on (which
    the later stages' updates use too).

    A lever set to ``'auto'`` is dropped, not refused, when G or D fail under it (the other lever
    kept where it works alone); a lever set explicitly stays strict.
    """
    settings, autocast_dtype = run.settings, run.autocast_dtype
    channels_last = resolve_channels_last(settings.channels_last, run.device)
    auto_dtype, auto_layout = settings.autocast_dtype == AUTO, settings.channels_last == AUTO
    tries = [(autocast_dtype, channels_last), (autocast_dtype, channels_last and not auto_layout),
             (None if auto_dtype else autocast_dtype, channels_last),
             (None if auto_dtype else autocast_dtype, channels_last and not auto_layout)]
    tries = list(dict.fromkeys(tries))  # in order, without repeats
    for index, (dtype, layout) in enumerate(tries):
        try:
            source = run.pairs.training_batches(batch_size=settings.batch_size, rng=rng, reuse=settings.reuse,
                                                autocast_dtype=dtype, channels_last=layout,
                                                feature_dim=run.facts.feature_dim, probe=run.probe)
        except ValueError as error:
            if index == len(tries) - 1:
                raise
            logger.info("automatic levers: %s; trying without them", error)
            continue
        return source, dataclasses.replace(run, autocast_dtype=dtype, levers=dict(run.pairs.levers))
    raise AssertionError("unreachable")  # pragma: no cover


class _Prepared(NamedTuple):
    """What :func:`_prepare` finds before G and D run (unpacked in this order by ``fit_inverter``)."""

    layer_name: str | tuple[str, ...]
    tap: FeatureTap
    pairs: PairMaker
    device: torch.device
    autocast_dtype: torch.dtype | None
    dist_ctx: dist_utils.DistContext
    settings: FitConfig


def _prepare(generator: nn.Module, discriminator: nn.Module, feature_layer: FeatureLayer, settings: FitConfig,
             latent_shape: Sequence[int] | int | None, latent_sampler: LatentSampler | None,
             conditioning: Conditioning | None) -> _Prepared:
    """What a fit needs before G and D run: the feature layer and its tap, the pairs, the device, the
    autocast dtype asked for, the torchrun context, and the settings with their seed (the same on every rank)."""
    layer_name, layer = resolve_layers(discriminator, feature_layer)
    sampler, shape = _prior(generator, latent_shape, latent_sampler)
    device = resolve_device(generator, discriminator, settings.device)
    autocast_dtype = check_autocast_dtype(settings.autocast_dtype, device)
    tap = FeatureTap(discriminator, layer_name, layer, conditioning=conditioning)
    dist_ctx = dist_utils.context(device) if settings.ddp is not False else dist_utils.DistContext(False)
    settings = _seeded(settings, dist_ctx, device)
    pairs = PairMaker(generator, tap, sampler, shape, conditioning, device)
    return _Prepared(layer_name, tap, pairs, device, autocast_dtype, dist_ctx, settings)


def _freeze(stack: contextlib.ExitStack, generator: nn.Module, discriminator: nn.Module, seeds: Seeds,
            device: torch.device) -> Callable[[], None]:
    """Freeze G and D and fork the global RNGs (both undone when ``stack`` closes), route logging around the
    progress bars, and seed the global RNGs; what puts G's and D's buffers back to the user's values."""
    stack.enter_context(frozen(generator, discriminator))
    users_buffers = buffer_snapshot(generator, discriminator)  # the probes read the user's values
    stack.enter_context(torch.random.fork_rng(devices=[device] if device.type == "cuda" else []))
    stack.enter_context(logging_redirect_tqdm())
    _seed_global_rngs(seeds.of("global"), device)
    return users_buffers


def _check_checkpoint_path(settings: FitConfig) -> None:
    """Refuse a checkpoint path that cannot be a file (an existing folder) before training, not at the first save."""
    if settings.checkpoint_path is None:
        return
    try:
        check_writable(settings.checkpoint_path)
    except ValueError as error:
        raise ValueError(f"checkpoint_path: {error}") from None


def _check_stages(settings: FitConfig, given: set[str], images: bool, conditional: bool) -> None:
    """Warn about settings of a stage that will not run; refuse stages a conditional GAN cannot have."""
    idle = sorted(given & {*REAL_STAGE_SETTINGS, "perceptual"})
    if not images and idle:
        warnings.warn(f"{', '.join(idle)}: these settings act only on the real-image stage, which runs with "
                      "images=...; without images they are ignored.", UserWarning, stacklevel=3)
    idle = sorted(given & set(ITERATIVE_SETTINGS))
    if settings.iterations == 0 and idle:
        warnings.warn(f"{', '.join(idle)}: these settings act only on the step networks, which are trained with "
                      "iterations > 0; with iterations=0 they are ignored.", UserWarning, stacklevel=3)
    if settings.iterations and conditional:
        raise ValueError(
            f"iterations: expected 0 with a conditioning, got {settings.iterations}; the step networks do not "
            "support conditional GANs yet. Fit with iterations=0."
        )
    if images and conditional:
        raise ValueError(
            "images: expected None with a conditioning; the real-image stage needs each image's condition and "
            "does not support conditional GANs yet. Fit without images=."
        )


def _check_arguments(settings: FitConfig, given: set[str], images: bool, conditioning: Conditioning | None,
                     on_validation: OnValidation | None, generator: nn.Module, discriminator: nn.Module | None) -> None:
    """Every check that needs no model run, before any work."""
    _check_stages(settings, given, images, conditioning is not None)
    _check_callback(on_validation)
    check_conditioning(conditioning)
    _check_checkpoint_path(settings)
    check_module(generator, "generator")
    if discriminator is not None:
        check_module(discriminator, "discriminator")


def _route(generator: nn.Module, discriminator: nn.Module | None, feature_layer: FeatureLayer | None,
           settings: FitConfig, given: set[str], config: FitConfig | None, images: bool,
           conditioning: Conditioning | None, on_validation: OnValidation | None,
           ) -> tuple[FitConfig, nn.Module, FeatureLayer]:
    """Every check that needs no model run (the route's, then :func:`_check_arguments`), then the route's settings,
    D and feature layer: the user's, or for G alone the pixels' stand-ins (:mod:`discinvert.fitting.pixel_route`)
    and its settings."""
    check_route(discriminator, feature_layer, settings, given, config, conditioning is not None)
    _check_arguments(settings, given, images, conditioning, on_validation, generator, discriminator)
    if discriminator is None:
        return route_settings(settings), PixelInput(), PIXEL_LAYER
    return settings, discriminator, feature_layer  # type: ignore[return-value]


def _assemble(config: InverterConfig, run: FitRun, cn: ConnectionNetwork | PixelRegressor,
              step_networks: Sequence[nn.Module]) -> Inverter:
    """The returned inverter: ``config`` with the fitted CN's and step networks' weights (for G alone, the pixel
    network's too), in eval mode; for a :class:`~discinvert.MappedGenerator`, with its space's Gaussian prior
    (estimated here, once)."""
    inverter = Inverter(config, generator=run.gan.generator,
                        discriminator=None if run.pixel_route else run.discriminator, conditioning=run.conditioning)
    if isinstance(cn, PixelRegressor):
        inverter.pixels.load_state_dict(cn.pixels.state_dict(), strict=True)
        cn = cn.cn
    inverter.cn.load_state_dict(cn.state_dict(), strict=True)
    for mine, trained in zip(inverter.steps, step_networks, strict=True):
        mine.load_state_dict(trained.state_dict(), strict=True)
    if isinstance(run.gan.generator, MappedGenerator):
        prior = run.gan.generator.prior()
        with torch.no_grad():
            for name, tensor in zip(PRIOR_TENSORS, (prior.mean, prior.scale_tril), strict=True):
                getattr(inverter, name).copy_(tensor)
    return inverter.eval()


@keyword_settings(FitConfig, strict=False, annotated=False, describe=setting_doc)
def fit_inverter(
    generator: nn.Module,
    discriminator: nn.Module | None = None,
    feature_layer: FeatureLayer | None = None,
    *,
    latent_shape: Sequence[int] | int | None = None,
    latent_sampler: LatentSampler | None = None,
    conditioning: Conditioning | None = None,
    images: ImageSource | None = None,
    config: FitConfig | None = None,
    on_validation: OnValidation | None = None,
    **settings: Any,
) -> Inverter:
    """Fit an inverter (image → latent) for a pretrained GAN from its discriminator's features (or G's alone).

    Args:
        generator: G, mapping latents ``(N, *latent_shape)`` to images ``(N, *image_shape)``; for codes in Z, W or W+,
            a :class:`~discinvert.MappedGenerator`: its ``latent_shape``, ``sample`` and prior are then the defaults.
        discriminator: D, any ``nn.Module`` taking G's images; ``None`` fits for G alone: the CN reads a pixel network
            of its own, trained with it (:mod:`discinvert.fitting.pixel_route`; no D-feature term, no conditioning).
        feature_layer: D's layer the connection network reads: a dotted name from ``D.named_modules()``
            (``"main.9"``) or the submodule; D's forward stops right after it. Start from D's last hidden
            layer (:func:`discinvert.list_layers`); a list reads several depths concatenated; ``None`` without D.
        latent_shape: shape of one latent, e.g. ``(100,)`` or ``(100, 1, 1)``, with the prior ``z ~ N(0, I)``.
        latent_sampler: ``sampler(n, generator, device) -> (n, *latent_shape)`` for other priors (uniform,
            truncated, a mapped W space), drawing from the given ``torch.Generator``. One of
            ``latent_shape``/``latent_sampler`` is needed; with both, the sampler's output must have ``latent_shape``.
        conditioning: for a conditional GAN, how to draw conditions and call G and D.
        images: real training images (never your test split) in G's range: a tensor or NumPy array
            ``(N, *image_shape)``, a map-style ``Dataset`` of them (or of tuples starting with one), or a
            ``DataLoader`` of such batches. The CN is then fine-tuned on them through the frozen G
            (:mod:`discinvert.fitting.real_image_stage`; ``docs/byo_gan.md``, "Real images"). ``None``
            (default): the paper's method alone. Not available with ``conditioning``.
        config: a :class:`~discinvert.fitting.fit_config.FitConfig` holding the settings below; keyword
            settings given as well replace its fields. An unknown setting is a ``ValueError`` naming close matches.
        on_validation: ``callback(point)`` after each validation of the self-generated stage with a
            :class:`~discinvert.fitting.self_generated_stage.ValidationPoint` (e.g. to log or score images as
            the fit goes); its time is left out of the recorded seconds. Runs on every rank.
        {settings}

    G and D run frozen (eval mode, no gradients) and come back as they were handed over (``docs/faq.md``:
    other threads see the switched flags meanwhile). Under ``torchrun`` the ranks train one CN with
    DistributedDataParallel, each on its own draws, and return the same inverter (``docs/byo_gan.md``).

    Returns:
        An :class:`Inverter` with the CN of lowest validation error (with ``images``: of lowest held-out
        pixel error), in eval mode, on the models' device. ``inverter.config.fit`` records how it was fit,
        with ``history``: ``[step, train MSE, validation MSE, seconds]`` at each validation; with ``images``,
        ``["real_images"]`` records that stage, with the chosen CN's ``latent_validation_mse`` (the top-level
        ``best_validation_mse`` is the self-generated stage's).

    Warns:
        UselessInverterWarning: the best validation MSE does not beat predicting the mean code.

    Raises:
        ValueError: bad arguments or settings (a ``conditioning`` that is no :class:`~discinvert.Conditioning`, a
            ``checkpoint_path`` that is an existing folder, D without a feature layer or the reverse, all before any
            work; G alone: :mod:`~discinvert.fitting.pixel_route`); an unknown feature layer (with close matches); a
            layer D never reaches, runs several times, or whose output for an image depends on the rest of its batch
            (:func:`discinvert.gan.check_batch_independence`); a latent shape G rejects; a sampler that draws no
            tensor of the asked rows, meta tensors, or labels outside the known classes; G and D on different devices.
    """
    settings_ = FitConfig.build(config, **settings)
    settings_, discriminator, feature_layer = _route(generator, discriminator, feature_layer, settings_, set(settings),
                                                     config, images is not None, conditioning, on_validation)
    layer_name, tap, pairs, device, autocast_dtype, dist_ctx, settings_ = _prepare(
        generator, discriminator, feature_layer, settings_, latent_shape, latent_sampler, conditioning)
    seeds = Seeds(settings_.seed, dist_ctx.rank)  # type: ignore[arg-type]
    with contextlib.ExitStack() as stack:
        users_buffers = _freeze(stack, generator, discriminator, seeds, device)
        val_rng = seeds.generator("validation", device)
        with torch.no_grad():
            probe = pairs.draw(2, val_rng)
            facts = inspect_gan(generator, tap, probe[0], probe[1], conditioning)
            batch_dependent = check_batch_independence(generator, tap, *pairs.draw(BATCH_CHECK_SIZE, val_rng),
                                                       conditioning, allow=settings_.allow_batch_dependent_features)
            val_rng.manual_seed(seeds.of("validation"))
            held_out = pairs.validation_set(settings_.validation_size, val_rng, settings_.batch_size)
        run = FitRun(settings=settings_, seeds=seeds, gan=FrozenGAN(generator, tap, tuple(probe[0].shape[1:])),
                     discriminator=discriminator, conditioning=conditioning, layer_name=layer_name, pairs=pairs,
                     custom_prior=latent_sampler is not None, device=device, dist_ctx=dist_ctx, facts=facts,
                     probe=probe, held_out=held_out, autocast_dtype=autocast_dtype)
        probe_record = _record_behaviour(run, users_buffers)
        split = None if images is None else _split(run, images)
        cn, cn_batches = _new_cn(run), run.rng("cn_batches")
        source, run = _training_batches(run, cn_batches)
        checkpointing = _checkpointing(run, cn.config, cn_batches, probe_record)
        result = _self_generated_stage(run, cn, source, checkpointing, on_validation)
        run = _with_perceptual(run, cn, split)
        stages = {} if split is None else {"real_images": _real_stage(run, cn, split)}
        if split is None:
            cn.load_state_dict(result.best_state, strict=True)
        cn.eval()
        step_config, step_networks = None, []
        if settings_.iterations:
            step_config, step_networks, stages["iterative"] = _iterative_stage(run, cn, split)
    findings = {"useless": _warn_if_useless(result, held_out.baseline, run),
                "batch_dependent_features": batch_dependent}
    inverter_config = _inverter_config(run, cn.config, result, stages, step_config, findings)
    return _assemble(dataclasses.replace(inverter_config, probe=probe_record), run, cn, step_networks)
