"""Behavioural fingerprints: what G and D compute on fixed probe inputs, stored beside the weights.

The tensor fingerprints of :mod:`discinvert.fingerprint` see only ``state_dict`` entries. A
G or D whose *function* changed while its tensors did not (an activation swapped, a weight
used through ``F.linear`` without calling its module, a non-persistent buffer changed)
passes them. A behavioural fingerprint catches those: at fit time the library runs

- G on :data:`PROBES` fixed latents (``N(0, I)`` from a CPU generator seeded with
  :data:`PROBE_SEED`, so every device draws the same ones), and
- D, up to the feature layer, on :data:`PROBES` fixed synthetic images (smooth random
  images in G's recorded range, also drawn on the CPU; they do not depend on G, so D's
  check stands alone),

and stores a small summary of each output (:func:`summarise`: per chunk of the flattened
output, a signed sum and a root mean square; ``2 * CHUNKS`` numbers per probe). On load
the same probes run on the G and D given, and a summary further than :data:`TOLERANCE`
(relative L2 distance) from the stored one is a fingerprint mismatch.

What it can catch: a change of G's or D's function that moves G's images or D's features
on the probes by more than 1% (relative): swapped activations, negated or rescaled weights
that no fingerprinted module holds, changed non-persistent buffers, another G or D of the
same architecture. What it cannot: a change smaller than that on these probes (or one
that only shows on other inputs); the conditions of a conditional GAN come from the
``Conditioning`` given at load (drawn under seeded global RNGs from a seeded CPU generator),
so a sampler that changed is not seen, and a sampler that draws other conditions from the
same seeds gives no behavioural fingerprint at all. A model that draws
randomness in its forward pass (noise inputs) is probed under a fixed seed, which only
reproduces on the same kind of device: on another kind its check is skipped (logged).
The probes run in float32 arithmetic of the models' own dtype, without autocast; the
tolerance leaves room for CPU/GPU and TF32 rounding.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from discinvert.conditioning import Conditioning
from discinvert.features import FeatureTap
from discinvert.gan import generate, model_device, model_dtype
from discinvert.guard import buffer_snapshot, frozen
from discinvert.latents import LatentSampler
from discinvert.rng import kept

__all__ = ["CHUNKS", "PROBES", "PROBE_SEED", "TOLERANCE", "Behaviour", "Probe", "check_stored", "compare", "differences", "record", "summarise"]

logger = logging.getLogger(__name__)

PROBES = 4
"""Probe inputs per model."""
CHUNKS = 16
"""Chunks of a flattened output summarised per probe (fewer when the output is smaller)."""
PROBE_SEED = 20_261_206
"""Seed of the CPU generator that draws the probe latents, images and conditions."""
TOLERANCE = 0.01
"""Largest relative L2 distance between a stored and a measured summary that still matches."""
_SECOND_SEED = PROBE_SEED + 1  # a model whose outputs move with the global RNG is stochastic
_STOCHASTIC = 1e-4
_SUMMARY_LIMIT = 1e30  # a stored summary value beyond this is not one the probes give (and its square overflows)


def summarise(outputs: torch.Tensor) -> list[float]:
    """Summary of ``outputs`` ``(P, ...)``: per probe and chunk of its flattened values, the sum with
    fixed random signs divided by the square root of the chunk's size, and the root mean square.

    Returns:
        ``P * 2 * min(CHUNKS, values per probe)`` floats (computed in float64).
    """
    flat = outputs.detach().to("cpu", torch.float64).reshape(outputs.shape[0], -1)
    n = flat.shape[1]
    signs = torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(PROBE_SEED), dtype=torch.int8)
    signed = flat * (signs.to(torch.float64) * 2 - 1)
    chunks = min(CHUNKS, n)
    edges = [round(i * n / chunks) for i in range(chunks + 1)]
    values: list[float] = []
    for row, signed_row in zip(flat, signed):
        for start, stop in zip(edges[:-1], edges[1:]):
            size = stop - start
            values.append(float(signed_row[start:stop].sum()) / math.sqrt(size))
            values.append(float(row[start:stop].square().mean().sqrt()))
    return values


def distance(measured: list[float], stored: list[float]) -> float:
    """Relative L2 distance ``|measured - stored| / |stored|`` (absolute when ``stored`` is all zeros)."""
    a, b = torch.tensor(measured, dtype=torch.float64), torch.tensor(stored, dtype=torch.float64)
    scale = float(b.norm())
    return float((a - b).norm()) / (scale if scale > 0 else 1.0)


@dataclass(frozen=True)
class Probe:
    """One model's stored behaviour.

    Attributes:
        summary: :func:`summarise` of its outputs on the probes.
        stochastic: its outputs moved with the global RNG at fit time (noise inputs); it is
            then compared only on ``device`` (a device type, ``"cpu"`` or ``"cuda"``).
        device: the device type it was recorded on.
    """

    summary: tuple[float, ...]
    stochastic: bool
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {"summary": list(self.summary), "stochastic": self.stochastic, "device": self.device}

    @classmethod
    def from_dict(cls, data: Any, *, key: str, source: str, length: int) -> "Probe":
        """Validate a stored probe; ``length`` is the number of summary values its sizes give.

        Raises:
            ValueError: not an object with exactly ``summary``, ``stochastic`` and ``device``,
                a summary that is not ``length`` finite numbers, or an unknown device type.
        """
        expected = {"summary", "stochastic", "device"}
        if not isinstance(data, dict) or set(data) != expected:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{source}: expected 'probe.{key}' to be null or an object with keys "
                             f"{sorted(expected)}, got {got}.")
        summary = data["summary"]
        if (not isinstance(summary, list) or len(summary) != length
                or any(not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)
                       or abs(v) > _SUMMARY_LIMIT for v in summary)):
            shown = f"a list of {len(summary)} values" if isinstance(summary, list) else repr(summary)[:60]
            raise ValueError(f"{source}: expected 'probe.{key}.summary' to be {length} finite numbers of at most "
                             f"{_SUMMARY_LIMIT:g} in size "
                             f"(the config's sizes give that many), got {shown}.")
        if not isinstance(data["stochastic"], bool):
            raise ValueError(f"{source}: expected 'probe.{key}.stochastic' to be a bool, got {data['stochastic']!r}.")
        if data["device"] not in ("cpu", "cuda", "mps", "xpu"):
            raise ValueError(f"{source}: expected 'probe.{key}.device' to be a device type such as 'cpu' or "
                             f"'cuda', got {data['device']!r}.")
        return cls(tuple(float(v) for v in summary), data["stochastic"], data["device"])


@dataclass(frozen=True)
class Behaviour:
    """The behavioural fingerprint of a (G, D up to the feature layer) pair.

    Attributes:
        generator: G's probe; ``None`` when G gave non-finite images on the probes.
        discriminator: D's probe; ``None`` when D gave non-finite features on the probes, and for an
            inverter fit for G alone (no D).
    """

    generator: Probe | None
    discriminator: Probe | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "generator": None if self.generator is None else self.generator.to_dict(),
            "discriminator": None if self.discriminator is None else self.discriminator.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str, image_size: int, feature_dim: int) -> "Behaviour":
        """Validate a stored behaviour against the config's image size and feature size.

        Raises:
            ValueError: not an object with exactly ``generator`` and ``discriminator``, or a
                malformed probe (see :meth:`Probe.from_dict`).
        """
        if not isinstance(data, dict) or set(data) != {"discriminator", "generator"}:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{source}: expected 'probe' to be null or an object with keys "
                             f"['discriminator', 'generator'], got {got}.")
        probes = {}
        for key, size in (("generator", image_size), ("discriminator", feature_dim)):
            value = data[key]
            length = PROBES * 2 * min(CHUNKS, size)
            probes[key] = None if value is None else Probe.from_dict(value, key=key, source=source, length=length)
        return cls(probes["generator"], probes["discriminator"])


def _probe_latents(latent_shape: tuple[int, ...], device: torch.device,
                   latent_sampler: LatentSampler | None = None) -> torch.Tensor:
    """The probe latents, drawn on the CPU (the same on every device): ``N(0, I)``, or ``latent_sampler``'s."""
    cpu = torch.Generator().manual_seed(PROBE_SEED)
    if latent_sampler is not None:
        return latent_sampler(PROBES, cpu, torch.device("cpu")).to(device)
    return torch.randn((PROBES, *latent_shape), generator=cpu, dtype=torch.float32).to(device)


def _probe_conditions(conditioning: Conditioning | None, device: torch.device) -> tuple[torch.Tensor | None, bool, bool]:
    """The probe conditions, drawn by the sampler under seeded global RNGs (torch's, NumPy's and Python's,
    put back afterwards), from a seeded CPU generator so every device draws the same ones.

    Returns:
        ``(conditions, reproducible, device_bound)``: ``reproducible`` is ``False`` when two draws differ (a
        sampler that draws from a source this module cannot seed); ``device_bound`` is ``True`` when the
        sampler could only draw on ``device``'s own generator (its draws then differ across device types).
    """
    if conditioning is None:
        return None, True, False
    seed = PROBE_SEED + 2

    def draw() -> tuple[torch.Tensor, bool]:
        with kept(device, seed):
            try:
                return conditioning.sampler(PROBES, torch.Generator().manual_seed(seed), torch.device("cpu")).to(device), False
            except Exception:  # noqa: BLE001 - a sampler that draws on its model's device only: use that device
                generator = torch.Generator(device=device).manual_seed(seed)
                return conditioning.sampler(PROBES, generator, device), device.type != "cpu"

    first, bound = draw()
    second, _ = draw()
    reproducible = isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and torch.equal(first, second)
    return first, reproducible, bound


def probe_images(image_shape: tuple[int, ...], image_range: tuple[float, float] | None,
                 device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """D's probe inputs: :data:`PROBES` smooth random images ``(PROBES, *image_shape)`` in ``image_range``
    (``(-1, 1)`` when unknown), the same on every device (drawn on the CPU)."""
    cpu = torch.Generator().manual_seed(PROBE_SEED + 1)
    noise = torch.randn((PROBES, *image_shape), generator=cpu, dtype=torch.float32)
    if len(image_shape) == 3 and image_shape[1] >= 4 and image_shape[2] >= 4:
        channels, height, width = image_shape
        coarse = torch.randn((PROBES, channels, max(1, height // 4), max(1, width // 4)), generator=cpu,
                             dtype=torch.float32)
        smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        noise = smooth * 1.5 + 0.25 * noise
    low, high = image_range if image_range is not None else (-1.0, 1.0)
    if not high > low:
        low, high = low - 1.0, high + 1.0
    images = low + (torch.tanh(noise) + 1) * 0.5 * (high - low)
    return images.to(device=device, dtype=dtype)


def _full_precision(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast off (a caller's ``torch.autocast`` block must not change what the probes compute)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _outputs(run: Callable[[], torch.Tensor], device: torch.device, seed: int) -> torch.Tensor:
    """``run()`` with the global RNGs seeded (and put back afterwards), under no_grad, without autocast."""
    with kept(device, seed), torch.no_grad(), _full_precision(device):
        return run()


def _probe(run: Callable[[], torch.Tensor], device: torch.device, what: str, device_bound: bool,
           reset: Callable[[], None]) -> Probe | None:
    reset()
    first = _outputs(run, device, PROBE_SEED)
    if not bool(torch.isfinite(first).all()):
        logger.info("%s gives non-finite values on the probe inputs; no behavioural fingerprint for it", what)
        return None
    reset()
    second = _outputs(run, device, _SECOND_SEED)
    summary = summarise(first)
    # Run-to-run float noise (GPU atomics) stays far below this; noise inputs move outputs far more.
    stochastic = (device_bound or not bool(torch.isfinite(second).all())
                  or not distance(summarise(second), summary) <= _STOCHASTIC)
    if stochastic:
        reset()
        again = _outputs(run, device, PROBE_SEED)
        if not (bool(torch.isfinite(again).all()) and distance(summarise(again), summary) <= _STOCHASTIC):
            # Noise from a source no global seed reaches (a generator of its own): nothing to compare with.
            logger.info("%s draws randomness that the global seeds do not fix; no behavioural fingerprint for it",
                        what)
            return None
        logger.info("%s draws randomness in its forward pass; its behavioural fingerprint is compared only "
                    "on %s devices", what, device.type)
    return Probe(tuple(summary), stochastic, device.type)


def _runners(generator: nn.Module, tap: FeatureTap | None, *, latent_shape: tuple[int, ...],
             image_shape: tuple[int, ...], image_range: tuple[float, float] | None,
             conditioning: Conditioning | None, latent_sampler: LatentSampler | None = None,
             ) -> tuple[torch.device, Callable[[], torch.Tensor], Callable[[], torch.Tensor] | None, bool] | None:
    """The device and the two probe runs (D's ``None`` without a tap), and whether the probes are bound to the
    device type; ``None`` when the conditions cannot be drawn reproducibly."""
    discriminator = None if tap is None else tap.discriminator
    device = (None if discriminator is None else model_device(discriminator)) or model_device(generator) or torch.device("cpu")
    latents = _probe_latents(latent_shape, device, latent_sampler)
    conditions, reproducible, device_bound = _probe_conditions(conditioning, device)
    if not reproducible:
        logger.info("the condition sampler draws other conditions from the same seed; no behavioural fingerprint "
                    "for this conditional GAN (its tensor fingerprints still hold)")
        return None

    def run_generator() -> torch.Tensor:
        return generate(generator, latents, conditions, conditioning)

    if tap is None:
        return device, run_generator, None, device_bound
    images = probe_images(image_shape, image_range, device, model_dtype(tap.discriminator))

    def run_discriminator() -> torch.Tensor:
        return tap(images, conditions)

    return device, run_generator, run_discriminator, device_bound


def record(generator: nn.Module, tap: FeatureTap | None, *, latent_shape: tuple[int, ...], image_shape: tuple[int, ...],
           image_range: tuple[float, float] | None, conditioning: Conditioning | None = None,
           normal_prior: bool = True, latent_sampler: LatentSampler | None = None) -> Behaviour:
    """Run the probes on G and D (eval mode, no gradients; both come back untouched) and summarise them.

    Args:
        generator: G.
        tap: the hook on D's feature layer(s); ``None`` (an inverter fit for G alone) probes G alone and
            records no D probe.
        latent_shape: one latent's shape; the probe latents are ``N(0, I)`` of that shape.
        image_shape: one image's shape; D's probe images have it.
        image_range: G's ``(min, max)``, the range of D's probe images (``None``: ``(-1, 1)``).
        conditioning: for a conditional GAN; its sampler draws the probe conditions on the CPU.
        normal_prior: G takes ``N(0, I)`` latents. ``False`` (a custom ``latent_sampler``, whose codes G
            may not take from ``N(0, I)``: a uniform or a mapped W space) probes D alone; the sampler is
            not stored, so the load could not draw the same latents.
        latent_sampler: draws the probe latents instead of ``N(0, I)`` (from a seeded CPU generator): the
            sampler of a :class:`~discinvert.mapped.MappedGenerator`'s space, which the load has too.

    The global RNGs (torch's, the CUDA one of the models' device, NumPy's and Python's) are left as they
    were; a caller's autocast is off while the probes run. Each run starts from the buffer values G and D
    hold when this is called (the caller hands over the user's values).
    """
    discriminator = None if tap is None else tap.discriminator
    with frozen(generator, discriminator):
        runners = _runners(generator, tap, latent_shape=latent_shape, image_shape=image_shape,
                           image_range=image_range, conditioning=conditioning,
                           latent_sampler=latent_sampler if normal_prior else None)
        if runners is None:
            return Behaviour(None, None)
        device, run_generator, run_discriminator, bound = runners
        # Every run starts from the buffer values found here (a D whose buffers move on each call in eval mode).
        reset = buffer_snapshot(generator, discriminator)
        generator_probe = _probe(run_generator, device, "G", bound, reset) if normal_prior else None
        if run_discriminator is None:
            return Behaviour(generator_probe, None)
        return Behaviour(generator_probe, _probe(run_discriminator, device, "D", bound, reset))


def differences(stored: Behaviour, measured: Behaviour, *, layer: str | tuple[str, ...] | None) -> list[str]:
    """Compare two behaviours: one sentence per model whose summary moved past :data:`TOLERANCE`.

    A model that was stochastic when ``stored`` was recorded is compared only when
    ``measured`` comes from the same device type (logged otherwise).
    """
    problems = []
    checks = (("generator", stored.generator, measured.generator, "G's images on the probe latents"),
              ("discriminator", stored.discriminator, measured.discriminator,
               f"D's features at {layer!r} on the probe images"))
    for name, before, now, what in checks:
        if before is None:
            continue
        if before.stochastic and (now is None or before.device != now.device):
            logger.info("the %s draws randomness in its forward pass and was probed on %s; its behaviour "
                        "cannot be compared here (its tensor fingerprint still is)", name, before.device)
            continue
        if now is None:
            problems.append(f"{what} are not finite now, but were at fit time")
            continue
        moved = distance(list(now.summary), list(before.summary))
        if not moved <= TOLERANCE:  # NaN (an overflowing stored summary) is a mismatch too
            problems.append(
                f"{what} differ from those at fit time by {moved:.1%} (tolerance {TOLERANCE:.0%}): the {name} "
                "computes another function (an activation, a buffer, or weights outside the fingerprinted "
                "modules changed)")
    return problems


def check_stored(stored: Any, measured: Behaviour, *, source: str, image_size: int, feature_dim: int,
                 layer: str | tuple[str, ...]) -> list[str]:
    """:func:`differences` for a behaviour read from JSON (a checkpoint's), validated first.

    Raises:
        ValueError: ``stored`` is malformed (see :meth:`Behaviour.from_dict`).
    """
    before = Behaviour.from_dict(stored, source=source, image_size=image_size, feature_dim=feature_dim)
    return differences(before, measured, layer=layer)


def compare(stored: Behaviour, generator: nn.Module, tap: FeatureTap | None, *, latent_shape: tuple[int, ...],
            image_shape: tuple[int, ...], image_range: tuple[float, float] | None,
            conditioning: Conditioning | None = None, normal_prior: bool = True,
            latent_sampler: LatentSampler | None = None) -> list[str]:
    """Run the probes on the G and D given and compare them with ``stored`` (:func:`differences`).

    Returns:
        One sentence per model whose behaviour differs (empty when both match or could not
        be compared). G and D come back untouched; the global RNG is left as it was.
    """
    measured = record(generator, tap, latent_shape=latent_shape, image_shape=image_shape,
                      image_range=image_range, conditioning=conditioning,
                      normal_prior=normal_prior and stored.generator is not None, latent_sampler=latent_sampler)
    return differences(stored, measured, layer=None if tap is None else tap.layer_name)
