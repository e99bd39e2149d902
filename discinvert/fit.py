"""Fitting the connection network on an unlimited stream of self-generated pairs.

Each step draws fresh latents ``z``, renders ``x = G(z)``, takes D's features
``D_f(x)`` (D stops right after the feature layer) and takes one Adam step on
``||z - CN(D_f(x))||²``. G and D are frozen in eval mode throughout and come back
exactly as they were handed over. A fixed held-out set of latents measures the
validation error; the CN with the lowest validation error is returned.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.contrib.logging import logging_redirect_tqdm

from discinvert import distributed as dist_utils
from discinvert.acceleration import autocast_context, channels_last_copy, check_autocast_dtype, probe_levers
from discinvert.conditioning import Conditioning
from discinvert.config import InverterConfig
from discinvert.features import FeatureTap, layer_calls, reached_modules
from discinvert.fingerprint import fingerprint_discriminator, fingerprint_generator
from discinvert.gan import check_module, generate, probe, resolve_device
from discinvert.guard import frozen
from discinvert.inverter import Inverter
from discinvert.latents import LatentSampler, normal_sampler, parse_latent_shape
from discinvert.layers import resolve_layer
from discinvert.network import CNConfig, ConnectionNetwork
from discinvert.pool import BatchPool
from discinvert.training import Checkpointing, FreshBatches, train_regressor
from discinvert.validation import positive_float, positive_int

__all__ = ["DEFAULT_LR", "DEFAULT_STEPS", "fit_inverter"]

logger = logging.getLogger(__name__)

DEFAULT_STEPS = 2000
"""Default number of CN updates; chosen by the sweep in ``benchmarks/fit_defaults.py``
(see ``docs/defaults.md``)."""

DEFAULT_LR = 2e-3
"""Default peak Adam learning rate; chosen by the same sweep."""

_MAX_SEED = 2**62  # leaves room for seed + 1 and seed + rank offsets in torch's int64 seeds


def _new_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 12


def _validation_features(
    generator: nn.Module,
    tap: FeatureTap,
    latents: torch.Tensor,
    conditions: torch.Tensor | None,
    conditioning: Conditioning | None,
    batch_size: int,
) -> tuple[torch.Tensor, tuple[float, float] | None]:
    """D's features of ``G(latents)`` in batches, and the ``(min, max)`` of those images.

    The range is recorded in the config (``image_range``): ``encode`` warns about inputs
    far outside it, and the metric maps it to [0, 1]. ``None`` if G gave NaN or Inf.
    """
    chunks = []
    low, high, finite = math.inf, -math.inf, True
    for start in range(0, latents.shape[0], batch_size):
        c = None if conditions is None else conditions[start : start + batch_size]
        images = generate(generator, latents[start : start + batch_size], c, conditioning)
        if finite and bool(torch.isfinite(images).all()):
            low, high = min(low, float(images.min())), max(high, float(images.max()))
        else:
            finite = False
        chunks.append(tap(images, c).float())
    return torch.cat(chunks), ((low, high) if finite else None)


def fit_inverter(
    generator: nn.Module,
    discriminator: nn.Module,
    feature_layer: str | nn.Module,
    *,
    latent_shape: Sequence[int] | int | None = None,
    latent_sampler: LatentSampler | None = None,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 256,
    lr: float = DEFAULT_LR,
    device: str | torch.device | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    cn_hidden: Sequence[int] = (1024, 1024),
    cn_batch_norm: bool = True,
    conditioning: Conditioning | None = None,
    validation_size: int = 1024,
    eval_every: int = 100,
    reuse: int = 1,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    ddp: bool | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> Inverter:
    """Fit an inverter (image → latent) for a pretrained GAN from its discriminator's features.

    Args:
        generator: G, mapping latents ``(N, *latent_shape)`` to images ``(N, *image_shape)``.
        discriminator: D, any ``nn.Module`` taking G's images.
        feature_layer: D's layer whose output the connection network reads: a dotted
            name from ``D.named_modules()`` (``"main.9"``, ``"8"``) or the submodule
            itself. D's forward stops right after it. The paper uses the last hidden
            layer; :func:`discinvert.list_layers` shows the candidates.
        latent_shape: shape of one latent, e.g. ``(100,)`` or ``(100, 1, 1)``, with the
            prior ``z ~ N(0, I)``.
        latent_sampler: ``sampler(n, generator, device) -> (n, *latent_shape)`` for other
            priors (uniform, truncated, a mapped W space); draw randomness from the
            given ``torch.Generator``. One of ``latent_shape``/``latent_sampler`` is needed;
            with both, the sampler's output must have ``latent_shape``.
        steps: CN updates, each on a fresh batch.
        batch_size: pairs per update (at least 2, for the CN's BatchNorm).
        lr: peak Adam learning rate (betas 0.5, 0.999); linear warm-up over the first
            5% of steps (at most 100), then cosine decay to 1% of the peak.
        device: where to fit. ``None``: where G and D live (CUDA when they are on
            CUDA), else the CPU. The models are never moved: a device other than
            theirs is an error.
        seed: same seed, same machine, same number of torch threads
            (``torch.get_num_threads()``) → bit-identical inverter on the CPU (another
            thread count changes the order of float sums, hence the weights). ``None``
            draws one (recorded in ``inverter.config.fit["seed"]``). The global RNG
            state is left as it was.
        progress: ``None`` shows a tqdm bar on a terminal only; ``True`` always; ``False`` never.
        cn_hidden: widths of the CN's hidden layers (paper: two of 1024).
        cn_batch_norm: BatchNorm after each hidden layer (paper: yes).
        conditioning: for a conditional GAN, how to draw conditions and call G and D.
        validation_size: held-out latents for validation, drawn once.
        eval_every: steps between validations (and after the last step).
        reuse: ``1`` (default) draws every batch fresh. ``k > 1`` keeps a pool of
            :data:`POOL_BATCHES` generated batches, trains each step on a random batch
            from the pool and replaces its oldest batch every ``k`` steps, so each
            generated sample serves about ``k`` updates: generation costs ``k`` times less
            (see ``docs/speed.md`` for its effect on accuracy).
        checkpoint_path: write a resumable checkpoint there every ``checkpoint_every``
            steps (atomically: an interrupted fit leaves the last one valid).
        checkpoint_every: steps between checkpoints.
        resume: continue from ``checkpoint_path`` if it exists; the result equals an
            uninterrupted fit with the same seed (bit-identical on the CPU). A checkpoint
            of another fit (other GAN, sizes, settings or number of processes) is refused.
            Under torchrun rank 0 writes ``checkpoint_path`` and every other rank its own
            RNG states and batch pool beside it (``<name>.rank<r>.step<N>.safetensors``);
            resume with the same number of processes.

        ddp: ``None`` (default) joins DistributedDataParallel when launched with several
            processes (below); ``False`` always fits alone in this process, e.g. one
            independent fit per rank or a fit on rank 0 only.
        autocast_dtype: ``None`` (default) fits in full precision. ``torch.bfloat16`` or
            ``torch.float16`` runs G and D (for the training pairs) and the CN's training
            forward pass under ``torch.autocast``; the loss, the CN's weights and Adam stay
            float32. Faster on CUDA and on CPUs with bf16 units (``docs/fit_speed.md``).
            The held-out validation pairs and the validation itself stay in full
            precision, so the reported error is the one ``encode`` gives.
        channels_last: run G and D for the training pairs as channels-last deep copies
            (faster convolutions with oneDNN and cuDNN; costs one copy of their weights;
            the user's models are never converted). A model that cannot be copied, or
            whose copies fail in that layout (e.g. ``x.view(n, -1)`` after a convolution),
            is refused before training starts.

    While the fit runs, G's and D's ``training`` flags and their parameters'
    ``requires_grad`` are switched off on the models themselves (eval mode, no
    gradients), and put back when it returns or fails. Those are attributes of the
    shared objects: another thread that uses G or D at the same time (your own training
    loop, say) sees them switched; discinvert's own entry points wait for each other.

    Under ``torchrun`` (``WORLD_SIZE > 1``) the fit joins the default process group
    (initialising it: NCCL on CUDA, Gloo on CPU), trains one CN with
    DistributedDataParallel on ``batch_size`` pairs per process, draws different latents
    on each rank (seed + rank), and returns the same inverter on every rank.

    Returns:
        An :class:`Inverter` with the CN of lowest validation error, in eval mode, on
        the models' device. ``inverter.config.fit`` records how it was fit, with
        ``history``: ``[step, train MSE, validation MSE, seconds]`` at each validation.

    Raises:
        ValueError: bad arguments; an unknown feature layer (with close matches); a
            layer D never reaches; a latent shape G rejects; G and D on different devices.
    """
    check_module(generator, "generator")
    check_module(discriminator, "discriminator")
    layer_name, layer = resolve_layer(discriminator, feature_layer)
    if latent_shape is None and latent_sampler is None:
        raise ValueError(
            "latent_shape: expected the shape of G's latent input, e.g. latent_shape=(100,) or "
            "(100, 1, 1) for z ~ N(0, I), or a latent_sampler(n, generator, device) for another "
            "prior; got neither."
        )
    shape = parse_latent_shape(latent_shape) if latent_shape is not None else None
    if latent_sampler is not None and not callable(latent_sampler):
        raise ValueError(f"latent_sampler: expected a callable (n, generator, device) -> Tensor, got {latent_sampler!r}.")
    cn_hidden = CNConfig(in_features=1, out_features=1, hidden=cn_hidden, batch_norm=cn_batch_norm).hidden
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size", 2)
    validation_size = positive_int(validation_size, "validation_size", 2)
    eval_every = positive_int(eval_every, "eval_every")
    lr = positive_float(lr, "lr")
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress: expected None, True or False, got {progress!r}.")
    reuse = positive_int(reuse, "reuse")
    checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last: expected True or False, got {channels_last!r}.")
    if resume and checkpoint_path is None:
        raise ValueError("resume: expected a checkpoint_path to resume from; got resume=True without one.")
    run_device = resolve_device(generator, discriminator, device)
    autocast_dtype = check_autocast_dtype(autocast_dtype, run_device)
    sampler = latent_sampler if latent_sampler is not None else normal_sampler(shape)  # type: ignore[arg-type]
    tap = FeatureTap(discriminator, layer_name, layer, conditioning=conditioning)
    dist_ctx = (dist_utils.context(run_device) if ddp is not False else dist_utils.DistContext(False))
    if seed is None:
        seed = _new_seed()
        if dist_ctx.enabled:
            seed = int(dist_utils.broadcast_scalar(float(seed % 2**52), run_device))
    seed = positive_int(seed, "seed", 0)
    if seed >= _MAX_SEED:
        raise ValueError(f"seed: expected an int in [0, 2**62), got {seed}.")

    rng_devices = [run_device] if run_device.type == "cuda" else []
    with contextlib.ExitStack() as stack:
        stack.enter_context(frozen(generator, discriminator))
        stack.enter_context(torch.random.fork_rng(devices=rng_devices))
        stack.enter_context(logging_redirect_tqdm())
        # Seed only the RNGs fork_rng restores: torch.manual_seed would also re-seed every other GPU.
        torch.default_generator.manual_seed(seed)
        if run_device.type == "cuda":
            with torch.cuda.device(run_device):
                torch.cuda.manual_seed(seed)
        train_rng = torch.Generator(device=run_device).manual_seed(seed + 1_000_003 * dist_ctx.rank)
        val_rng = torch.Generator(device=run_device).manual_seed(seed + 1)

        def draw(n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
            z = sampler(n, rng, run_device)
            if not isinstance(z, torch.Tensor) or z.dim() < 2 or z.shape[0] != n:
                got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
                raise ValueError(f"latent_sampler: expected a tensor of shape ({n}, ...), got {got}.")
            if shape is not None and tuple(z.shape[1:]) != shape:
                raise ValueError(
                    f"latent_sampler: expected samples of latent_shape {shape}, got {tuple(z.shape[1:])}."
                )
            c = None if conditioning is None else conditioning.sampler(n, rng, run_device)
            return z.to(run_device), c

        with torch.no_grad():
            z_probe, c_probe = draw(2, val_rng)
            found_shape = tuple(z_probe.shape[1:])
            # Fingerprints see the user's values: G's before anything runs, D's after a nested
            # frozen() has put back any buffer that D's forward touched.
            g_print = fingerprint_generator(generator)
            with frozen(generator, discriminator):
                image_shape, feature_dim = probe(generator, tap, z_probe, c_probe, conditioning)
                probe_images = generate(generator, z_probe, c_probe, conditioning)
                calls = layer_calls(tap, probe_images, c_probe)
                if calls > 1:
                    raise ValueError(
                        f"feature_layer {layer_name!r}: expected a layer D runs once per forward pass, got one it "
                        f"runs {calls} times (a shared module, e.g. one activation reused after every block), so "
                        "its output is ambiguous. Choose a layer D runs once, e.g. the module just before it (see "
                        "discinvert.list_layers(D, images): LayerInfo.calls)."
                    )
                modules = reached_modules(tap, probe_images, c_probe)
            d_print = fingerprint_discriminator(discriminator, modules, layer_name)
            val_rng.manual_seed(seed + 1)
            z_val, c_val = draw(validation_size, val_rng)
            f_val, image_range = _validation_features(generator, tap, z_val, c_val, conditioning, batch_size)
            t_val = z_val.reshape(validation_size, -1).float()
            baseline = float(F.mse_loss(t_val.mean(0, keepdim=True).expand_as(t_val), t_val))

        cn_config = CNConfig(
            in_features=feature_dim,
            out_features=math.prod(found_shape),
            hidden=cn_hidden,
            batch_norm=cn_batch_norm,
        )
        cn = ConnectionNetwork(cn_config).to(run_device)
        logger.info(
            "fitting CN %d -> %d on %s: %d steps of %d pairs, lr %.2g, seed %d",
            feature_dim, cn_config.out_features, run_device, steps, batch_size, lr, seed,
        )

        # Training pairs may come from the faster copies / precision; validation pairs above
        # came from the user's models in full precision, exactly as encode() sees images.
        train_generator, train_tap = generator, tap
        if channels_last:
            train_generator = channels_last_copy(generator, "generator")
            d_copy = channels_last_copy(discriminator, "discriminator")
            train_tap = FeatureTap(d_copy, layer_name, d_copy.get_submodule(layer_name), conditioning=conditioning)
        if channels_last or autocast_dtype is not None:
            probe_levers(train_generator, train_tap, z_probe, c_probe, conditioning, run_device, autocast_dtype,
                          channels_last, feature_dim)

        def fresh() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                z, c = draw(batch_size, train_rng)
                with autocast_context(run_device, autocast_dtype):
                    features = train_tap(generate(train_generator, z, c, conditioning), c)
            return features.float(), z.reshape(batch_size, -1).float()

        source = FreshBatches(fresh) if reuse == 1 else BatchPool(fresh, reuse=reuse, rng=train_rng)
        checkpointing = None
        if checkpoint_path is not None:
            identity = {
                "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "validation_size": validation_size,
                "eval_every": eval_every, "reuse": reuse, "feature_layer": layer_name, "latent_shape": list(found_shape),
                "cn": cn_config.to_dict(), "generator_fingerprint": g_print, "discriminator_fingerprint": d_print,
                "conditional": conditioning is not None, "world_size": dist_ctx.world_size,
                "autocast_dtype": None if autocast_dtype is None else str(autocast_dtype), "channels_last": channels_last,
            }
            checkpointing = Checkpointing(
                path=Path(checkpoint_path), every=checkpoint_every, resume=resume, identity=identity,
                generators={"train": train_rng}, cuda_device=run_device if run_device.type == "cuda" else None,
                rank=dist_ctx.rank, world_size=dist_ctx.world_size,
            )
        result = train_regressor(
            cn, source, f_val, t_val, steps=steps, lr=lr, batch_size=batch_size,
            eval_every=eval_every, progress=progress, desc="fit CN", dist_ctx=dist_ctx, checkpointing=checkpointing,
            autocast_dtype=autocast_dtype,
        )
        best_error, best_step, last_error, seconds = result.best_error, result.best_step, result.last_error, result.seconds
        logger.info(
            "fit done in %.1f s: best validation MSE %.5f at step %d (predicting the mean: %.5f)",
            seconds, best_error, best_step, baseline,
        )

    config = InverterConfig(
        feature_layer=layer_name,
        latent_shape=found_shape,
        image_shape=image_shape,
        feature_dim=feature_dim,
        cn=cn_config,
        generator_fingerprint=g_print,
        discriminator_fingerprint=d_print,
        discriminator_modules=tuple(modules),
        conditional=conditioning is not None,
        latent_prior="normal" if latent_sampler is None else "custom",
        image_range=image_range,
        fit={
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "validation_size": validation_size,
            "best_step": best_step,
            "best_validation_mse": best_error,
            "final_validation_mse": last_error,
            "baseline_validation_mse": baseline,
            "seconds": round(seconds, 3),
            "device": str(run_device),
            "history": result.history,
            "reuse": reuse,
            "autocast_dtype": None if autocast_dtype is None else str(autocast_dtype),
            "channels_last": channels_last,
            "world_size": dist_ctx.world_size,
            "resumed_from_step": result.resumed_from,
        },
    )
    inverter = Inverter(config, generator=generator, discriminator=discriminator, conditioning=conditioning)
    inverter.cn.load_state_dict(result.best_state, strict=True)
    return inverter.eval()
