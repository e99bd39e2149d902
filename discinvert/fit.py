"""Fitting the connection network on an unlimited stream of self-generated pairs.

Each step draws fresh latents ``z``, renders ``x = G(z)``, takes D's features
``D_f(x)`` (D stops right after the feature layer) and takes one Adam step on
``||z - CN(D_f(x))||²``. G and D are frozen in eval mode throughout and come back
exactly as they were handed over. A fixed held-out set of latents measures the
validation error; the CN with the lowest validation error is returned.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from discinvert.conditioning import Conditioning
from discinvert.config import InverterConfig
from discinvert.features import FeatureTap, reached_modules
from discinvert.fingerprint import fingerprint_discriminator, fingerprint_generator
from discinvert.gan import generate, probe, resolve_device
from discinvert.guard import frozen
from discinvert.inverter import Inverter
from discinvert.latents import LatentSampler, normal_sampler, parse_latent_shape
from discinvert.layers import resolve_layer
from discinvert.network import CNConfig, ConnectionNetwork

__all__ = ["DEFAULT_LR", "DEFAULT_STEPS", "fit_inverter"]

logger = logging.getLogger(__name__)

DEFAULT_STEPS = 2000
"""Default number of CN updates; chosen by the sweep in ``benchmarks/fit_defaults.py``
(see ``docs/defaults.md``)."""

DEFAULT_LR = 2e-3
"""Default peak Adam learning rate; chosen by the same sweep."""

_BETAS = (0.5, 0.999)  # the authors' released code used beta1 = 0.5


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}.")
    return value


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _new_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 2


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
        seed: same seed, same machine → bit-identical inverter on the CPU. ``None``
            draws one (recorded in ``inverter.config.fit["seed"]``). The global RNG
            state is left as it was.
        progress: ``None`` shows a tqdm bar on a terminal only; ``True`` always; ``False`` never.
        cn_hidden: widths of the CN's hidden layers (paper: two of 1024).
        cn_batch_norm: BatchNorm after each hidden layer (paper: yes).
        conditioning: for a conditional GAN, how to draw conditions and call G and D.
        validation_size: held-out latents for validation, drawn once.
        eval_every: steps between validations (and after the last step).

    Returns:
        An :class:`Inverter` with the CN of lowest validation error, in eval mode, on
        the models' device. ``inverter.config.fit`` records how it was fit, with
        ``history``: ``[step, train MSE, validation MSE, seconds]`` at each validation.

    Raises:
        ValueError: bad arguments; an unknown feature layer (with close matches); a
            layer D never reaches; a latent shape G rejects; G and D on different devices.
    """
    for name, model in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(model, nn.Module):
            raise ValueError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}.")
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
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size", 2)
    validation_size = _positive_int(validation_size, "validation_size", 2)
    eval_every = _positive_int(eval_every, "eval_every")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr: expected a positive finite float, got {lr!r}.")
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress: expected None, True or False, got {progress!r}.")
    if seed is None:
        seed = _new_seed()
    seed = _positive_int(seed, "seed", 0)
    run_device = resolve_device(generator, discriminator, device)
    sampler = latent_sampler if latent_sampler is not None else normal_sampler(shape)  # type: ignore[arg-type]
    tap = FeatureTap(discriminator, layer_name, layer, conditioning=conditioning)

    rng_devices = [run_device] if run_device.type == "cuda" else []
    with contextlib.ExitStack() as stack:
        stack.enter_context(frozen(generator, discriminator))
        stack.enter_context(torch.random.fork_rng(devices=rng_devices))
        stack.enter_context(logging_redirect_tqdm())
        torch.manual_seed(seed)
        train_rng = torch.Generator(device=run_device).manual_seed(seed)
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
            image_shape, feature_dim = probe(generator, tap, z_probe, c_probe, conditioning)
            modules = reached_modules(tap, generate(generator, z_probe, c_probe, conditioning), c_probe)
            g_print = fingerprint_generator(generator)
            d_print = fingerprint_discriminator(discriminator, modules)
            val_rng.manual_seed(seed + 1)
            z_val, c_val = draw(validation_size, val_rng)
            f_val = torch.cat(
                [
                    tap(
                        generate(generator, z_val[i : i + batch_size], None if c_val is None else c_val[i : i + batch_size], conditioning),
                        None if c_val is None else c_val[i : i + batch_size],
                    ).float()
                    for i in range(0, validation_size, batch_size)
                ]
            )
            t_val = z_val.reshape(validation_size, -1).float()
            baseline = float(F.mse_loss(t_val.mean(0, keepdim=True).expand_as(t_val), t_val))

        cn_config = CNConfig(
            in_features=feature_dim,
            out_features=math.prod(found_shape),
            hidden=tuple(cn_hidden),
            batch_norm=cn_batch_norm,
        )
        cn = ConnectionNetwork(cn_config).to(run_device)
        optimizer = torch.optim.Adam(cn.parameters(), lr=lr, betas=_BETAS)
        warmup = max(1, min(100, steps // 20))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, steps, warmup))

        def validate() -> float:
            cn.eval()
            with torch.no_grad():
                error = sum(
                    F.mse_loss(cn(f_val[i : i + batch_size]), t_val[i : i + batch_size], reduction="sum")
                    for i in range(0, validation_size, batch_size)
                )
            cn.train()
            return float(error) / t_val.numel()

        logger.info(
            "fitting CN %d -> %d on %s: %d steps of %d pairs, lr %.2g, seed %d",
            feature_dim, cn_config.out_features, run_device, steps, batch_size, lr, seed,
        )
        best_error, best_step, best_state = math.inf, 0, copy.deepcopy(cn.state_dict())
        last_error = math.inf
        history: list[list[float]] = []
        started = time.perf_counter()
        bar = tqdm(total=steps, desc="fit CN", unit="step", disable=(None if progress is None else not progress), dynamic_ncols=True)
        try:
            cn.train()
            running = torch.zeros((), device=run_device)
            for step in range(steps):
                with torch.no_grad():
                    z, c = draw(batch_size, train_rng)
                    features = tap(generate(generator, z, c, conditioning), c).float()
                target = z.reshape(batch_size, -1).float()
                loss = F.mse_loss(cn(features), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                running += loss.detach()
                bar.update(1)
                if (step + 1) % eval_every == 0 or step + 1 == steps:
                    last_error = validate()
                    train_loss = float(running) / ((step % eval_every) + 1)
                    running.zero_()
                    history.append([step + 1, round(train_loss, 6), round(last_error, 6), round(time.perf_counter() - started, 3)])
                    if last_error < best_error:
                        best_error, best_step = last_error, step + 1
                        best_state = copy.deepcopy(cn.state_dict())
                    bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{last_error:.4f}", best=f"{best_error:.4f}")
                    logger.debug("step %d: train %.5f, validation %.5f", step + 1, train_loss, last_error)
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        if not math.isfinite(best_error):
            raise ValueError(
                f"fit diverged: the validation error was never finite (last {last_error}); "
                "lower lr or check that G's outputs and D's features are finite."
            )
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
            "history": history,
        },
    )
    inverter = Inverter(config, generator=generator, discriminator=discriminator, conditioning=conditioning)
    inverter.cn.load_state_dict(best_state, strict=True)
    return inverter.eval()
