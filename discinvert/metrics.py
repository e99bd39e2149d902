"""Evaluating GANs and inverters.

- :func:`reconstruction_score`: the paper's GAN metric — PSNR and SSIM of reconstructed
  unseen test images, ``n`` images drawn ``repeats`` times, mean ± std over the draws.
  Low scores mean poor image quality or poor coverage of the data's modes.
- :func:`latent_recovery`: how well ``encode(G(z))`` recovers ``z`` on fresh samples.
- :func:`nearest_neighbour_accuracy`: 1-NN classification accuracy in code space (the
  BiGAN feature-learning protocol).

PSNR and SSIM come from scikit-image on images mapped from G's value range to [0, 1]
(clipped), with ``data_range=1`` and ``channel_axis`` for colour images. G's value range
defaults to the one the inverter recorded at fit time (:attr:`Inverter.value_range`).
SSIM's window is scikit-image's 7x7; images smaller than that are scored over the largest
odd window that fits (5x5 or 3x3), and images smaller than 3x3 get no SSIM (``NaN``, with a
warning) but still their PSNR.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from discinvert.inverter import Inverter, RangeCheck
from discinvert.keyword_settings import keyword_settings, setting
from discinvert.latents import LatentSampler
from discinvert.pixels import model_to_unit
from discinvert.argument_checks import is_integer, positive_int

__all__ = [
    "Draws",
    "draw_subsets",
    "image_quality",
    "latent_recovery",
    "nearest_neighbour_accuracy",
    "reconstruction_score",
    "summarize_draws",
]

logger = logging.getLogger(__name__)


class Encoder(Protocol):
    """Anything with ``encode(images) -> codes``: an :class:`Inverter` or a baseline encoder."""

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...


def image_quality(
    originals: torch.Tensor | np.ndarray,
    reconstructions: torch.Tensor | np.ndarray,
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR (dB) and SSIM of reconstructions against originals.

    Args:
        originals, reconstructions: ``(N, C, H, W)`` in ``value_range`` (mapped to
            [0, 1] and clipped before scoring).
        value_range: the images' ``(low, high)``; ``(-1, 1)`` for a tanh generator.

    Returns:
        ``(psnr, ssim)``, each of shape ``(N,)``. Identical images give PSNR ``inf``.
        SSIM uses 7x7 windows, the largest odd window that fits (5x5 or 3x3) for
        images smaller than 7x7; images smaller than 3x3 get SSIM ``NaN`` and a warning.

    Raises:
        ValueError: shapes differ or are not ``(N, C, H, W)``; a bad value range.
    """
    if len(tuple(np.shape(originals))) != 4:
        raise ValueError(
            f"images: expected (N, C, H, W) images for PSNR/SSIM, got shape {tuple(np.shape(originals))}; "
            "for a generator of flat vectors, view them as images first (reconstruction_score takes "
            "image_shape=(C, H, W), discinvert evaluate --image-shape C,H,W)."
        )
    if len(value_range) != 2 or not value_range[0] < value_range[1]:
        raise ValueError(f"value_range: expected (low, high) with low < high, got {value_range!r}.")
    a = model_to_unit(originals, value_range)
    b = model_to_unit(reconstructions, value_range)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"images: expected originals and reconstructions of the same shape (N, C, H, W), got "
            f"{a.shape} and {b.shape}."
        )
    psnr = np.empty(a.shape[0])
    ssim = np.full(a.shape[0], np.nan)
    win_size = _ssim_window(a.shape[2], a.shape[3])
    if win_size is None and a.shape[0]:
        warnings.warn(f"images of {a.shape[2]}x{a.shape[3]} pixels are too small for SSIM (it needs at least 3x3): "
                      "SSIM is NaN, PSNR is given.", stacklevel=2)
    for i in range(a.shape[0]):
        x, y = a[i], b[i]
        psnr[i] = peak_signal_noise_ratio(x, y, data_range=1.0) if not np.array_equal(x, y) else math.inf
        if win_size is None:
            continue
        if x.shape[0] == 1:
            ssim[i] = structural_similarity(x[0], y[0], data_range=1.0, win_size=win_size)
        else:
            ssim[i] = structural_similarity(np.moveaxis(x, 0, -1), np.moveaxis(y, 0, -1), data_range=1.0,
                                            channel_axis=-1, win_size=win_size)
    return psnr, ssim


def _ssim_window(height: int, width: int) -> int | None:
    """The side of SSIM's square window for ``height x width`` images: scikit-image's 7, or less for small ones.

    The largest odd side up to 7 that fits both dimensions (3 or 5 for images smaller
    than 7x7; their SSIM is then computed over smaller windows and is not strictly
    comparable with 7x7 scores); ``None`` below 3x3, where SSIM is not defined.
    """
    side = min(7, int(height), int(width))
    side -= 1 - side % 2
    return side if side >= 3 else None


def _scoring_shape(generated: tuple[int, ...], requested: tuple[int, ...] | None) -> tuple[int, ...]:
    """The ``(C, H, W)`` shape images are scored as."""
    if requested is None:
        if len(generated) != 3:
            raise ValueError(
                f"image_shape: the generator's images have shape {generated}, not (C, H, W); PSNR/SSIM need "
                f"images: pass image_shape=(C, H, W) holding {math.prod(generated)} values, e.g. "
                "image_shape=(1, 28, 28) for 784."
            )
        return generated
    shape = tuple(requested)
    if (
        len(shape) != 3
        or any(not is_integer(d) or d < 1 for d in shape)
        or math.prod(shape) != math.prod(generated)
    ):
        raise ValueError(
            f"image_shape: expected (C, H, W) holding {math.prod(generated)} values (one image of shape "
            f"{generated}), got {requested!r}."
        )
    return tuple(int(d) for d in shape)


def draw_subsets(total: int, n: int, repeats: int, seed: int) -> list[np.ndarray]:
    """``repeats`` random subsets of ``n`` indices out of ``total`` (each without replacement).

    With ``n == total`` and ``repeats == 1`` the subset is ``0 .. total-1`` in order.

    Raises:
        ValueError: ``n`` larger than ``total``, or non-positive counts.
    """
    n = positive_int(n, "n")
    repeats = positive_int(repeats, "repeats")
    if n > total:
        raise ValueError(f"n: expected at most the number of images ({total}), got {n}.")
    if n == total and repeats == 1:
        return [np.arange(total)]
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(total, size=n, replace=False)) for _ in range(repeats)]


def summarize_draws(psnr: np.ndarray, ssim: np.ndarray, subsets: list[np.ndarray]) -> dict[str, float]:
    """Mean ± std over draws of each draw's mean PSNR and SSIM (std with ddof=0)."""
    psnr_means = np.array([psnr[idx].mean() for idx in subsets])
    ssim_means = np.array([ssim[idx].mean() for idx in subsets])
    return {
        "psnr_mean": float(psnr_means.mean()),
        "psnr_std": float(psnr_means.std()),
        "ssim_mean": float(ssim_means.mean()),
        "ssim_std": float(ssim_means.std()),
    }


@dataclass(frozen=True)
class Draws:
    """Which test images :func:`reconstruction_score` scores, as its keyword arguments
    (:mod:`discinvert.keyword_settings`): ``n`` images drawn ``repeats`` times from ``seed``
    (:func:`draw_subsets`)."""

    n: int = setting(1000, "images in each draw (paper: 1,000).")
    repeats: int = setting(5, "draws (paper: 5).")
    seed: int = setting(0, "seed of the draws.")


@keyword_settings(Draws, order=("n", "repeats", "seed", "refine_steps", "batch_size", "value_range", "conditions",
                                "image_shape", "range_check", "progress_callback"))
def reconstruction_score(
    inverter: Inverter,
    images: torch.Tensor | np.ndarray,
    *,
    refine_steps: int = 0,
    batch_size: int | None = None,
    value_range: tuple[float, float] | None = None,
    conditions: torch.Tensor | np.ndarray | None = None,
    image_shape: tuple[int, ...] | None = None,
    range_check: RangeCheck = "warn",
    progress_callback: Callable[[int, int], None] | None = None,
    **draws: Any,
) -> dict[str, float | int]:
    """The paper's GAN metric: reconstruct unseen test images and score them.

    ``n`` images are drawn ``repeats`` times (without replacement within a draw); each
    image is reconstructed once (``G(encode(x))``, or ``G(refine(x, refine_steps))``),
    and each draw's mean PSNR and SSIM is taken; the result is the mean and standard
    deviation over draws. With ``n`` equal to the number of images and ``repeats=1`` it
    scores exactly those images once.

    Args:
        inverter: the GAN's inverter.
        images: ``(N, C, H, W)`` test images in G's value range (never used in fitting).
        {settings}
        refine_steps: ``0`` for the CN alone, else hybrid refinement steps.
        batch_size: images per forward pass.
        value_range: G's output range, mapped to [0, 1] for scoring; ``None`` (default)
            takes the range recorded at fit time, :attr:`Inverter.value_range` (e.g.
            ``(0, 1)`` for a sigmoid generator, ``(-1, 1)`` for a tanh one).
        conditions: ``(N, ...)`` conditions for a conditional GAN.
        image_shape: ``(C, H, W)`` to view G's images as for scoring, for a generator
            whose images are not ``(C, H, W)`` already (an MLP giving ``(N, 784)``:
            ``image_shape=(1, 28, 28)``); ``None`` scores them as G gives them.
        range_check: images far outside G's range: ``"warn"``, ``"raise"`` or ``"ignore"``
            (see :meth:`Inverter.encode`).
        progress_callback: ``progress_callback(done, total)`` during refinement (``refine_steps > 0``),
            at every step of each batch: image-steps done so far and in all (``total`` is the number of
            images refined, those of all draws, times ``refine_steps``). For progress displays
            (``discinvert evaluate`` shows them); it does not change the result.

    Returns:
        ``{"psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "n", "repeats", "seconds"}``;
        ``seconds`` is the wall time spent inverting and reconstructing.

    Raises:
        TypeError: an unknown keyword argument.
        ValueError: G's images are not ``(C, H, W)`` and no ``image_shape`` was given, or
            ``image_shape`` does not hold as many values as one image; bad draws.
    """
    if progress_callback is not None and not callable(progress_callback):
        raise ValueError(f"progress_callback: expected a callable (done, total) or None, got "
                         f"{type(progress_callback).__name__}.")
    view = _scoring_shape(inverter.image_shape, image_shape)
    if value_range is None:
        value_range = inverter.value_range
    drawn = Draws(**draws)
    total = images.shape[0]
    subsets = draw_subsets(total, drawn.n, drawn.repeats, drawn.seed)
    used = np.unique(np.concatenate(subsets))
    x = torch.as_tensor(images)[torch.as_tensor(used)]
    c = None if conditions is None else torch.as_tensor(conditions)[torch.as_tensor(used)]
    started = time.perf_counter()
    if refine_steps:
        callback: Callable[[int, int, torch.Tensor], None] | None = None
        if progress_callback is not None:
            report, total_steps = progress_callback, len(x) * refine_steps

            def count(start: int, step: int, codes: torch.Tensor) -> None:
                report(start * refine_steps + len(codes) * step, total_steps)

            callback = count
        codes = inverter.refine(x, refine_steps, batch_size=batch_size, conditions=c, progress=False,
                                range_check=range_check, callback=callback)
    else:
        codes = inverter.encode(x, batch_size, conditions=c, range_check=range_check)
    recon = inverter.decode(codes, batch_size, conditions=c)
    seconds = time.perf_counter() - started
    psnr_used, ssim_used = image_quality(x.reshape(-1, *view), recon.reshape(-1, *view), value_range=value_range)
    psnr = np.full(total, np.nan)
    ssim = np.full(total, np.nan)
    psnr[used], ssim[used] = psnr_used, ssim_used
    return {**summarize_draws(psnr, ssim, subsets), "n": drawn.n, "repeats": drawn.repeats, "seconds": seconds}


def latent_recovery(
    inverter: Inverter,
    n: int = 1000,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    latent_sampler: LatentSampler | None = None,
) -> dict[str, float | int]:
    """Recover fresh latents: MSE and mean cosine similarity between ``z`` and ``encode(G(z))``.

    Args:
        inverter: an unconditional inverter.
        n: number of fresh samples.
        latent_sampler: the prior, default :attr:`Inverter.latent_sampler <discinvert.Inverter.latent_sampler>`:
            ``N(0, I)`` of the inverter's latent shape, or the sampler of G's latent space for a
            :class:`~discinvert.MappedGenerator` (W and W+ codes).

    Returns:
        ``{"mse", "cosine", "n"}``. Predicting zero scores an MSE of 1 under ``N(0, I)``.

    Raises:
        ValueError: a conditional inverter (draw conditions yourself and compare).
    """
    n = positive_int(n, "n")
    if inverter.conditioning is not None:
        raise ValueError("latent_recovery: expected an unconditional inverter; got a conditional one.")
    device = next(inverter.cn.parameters()).device
    sampler = latent_sampler or inverter.latent_sampler
    z = sampler(n, torch.Generator(device=device).manual_seed(seed), device)
    codes = inverter.encode(inverter.decode(z, batch_size), batch_size)
    flat_z, flat_c = z.reshape(n, -1).float(), codes.reshape(n, -1).float()
    return {
        "mse": float(((flat_c - flat_z) ** 2).mean()),
        "cosine": float(torch.nn.functional.cosine_similarity(flat_c, flat_z, dim=1).mean()),
        "n": n,
    }


def nearest_neighbour_accuracy(
    inverter: Encoder | Callable[[torch.Tensor], torch.Tensor],
    train_images: torch.Tensor | np.ndarray,
    train_labels: torch.Tensor | np.ndarray,
    test_images: torch.Tensor | np.ndarray,
    test_labels: torch.Tensor | np.ndarray,
    *,
    metric: str = "euclidean",
    chunk: int = 1024,
) -> float:
    """1-nearest-neighbour classification accuracy in code space (BiGAN protocol).

    Args:
        inverter: an :class:`Inverter`, anything with ``encode(images)``, or a callable
            ``images -> codes``.
        train_images, test_images: ``(N, *image_shape)`` in G's range.
        train_labels, test_labels: ``(N,)`` integer labels.
        metric: ``"euclidean"`` or ``"cosine"`` distance between flattened codes.
        chunk: test codes compared at once (memory bound).

    Returns:
        Accuracy in [0, 1].

    Raises:
        ValueError: label counts that do not match the images, empty sets, unknown metric.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric: expected 'euclidean' or 'cosine', got {metric!r}.")
    encode = inverter.encode if hasattr(inverter, "encode") else inverter
    y_train = torch.as_tensor(np.asarray(train_labels)).reshape(-1)
    y_test = torch.as_tensor(np.asarray(test_labels)).reshape(-1)
    if len(y_train) != len(train_images) or len(y_test) != len(test_images):
        raise ValueError(
            f"labels: expected one per image, got {len(y_train)} labels for {len(train_images)} training "
            f"images and {len(y_test)} for {len(test_images)} test images."
        )
    if len(y_train) == 0 or len(y_test) == 0:
        raise ValueError("images: expected non-empty training and test sets.")
    train_codes = encode(torch.as_tensor(train_images)).reshape(len(y_train), -1).float().cpu()
    test_codes = encode(torch.as_tensor(test_images)).reshape(len(y_test), -1).float().cpu()
    if metric == "cosine":
        train_codes = torch.nn.functional.normalize(train_codes, dim=1)
        test_codes = torch.nn.functional.normalize(test_codes, dim=1)
    correct = 0
    for start in range(0, len(y_test), chunk):
        distances = torch.cdist(test_codes[start : start + chunk], train_codes)
        nearest = distances.argmin(dim=1)
        correct += int((y_train[nearest] == y_test[start : start + chunk]).sum())
    return correct / len(y_test)
