"""``discinvert demo``: invert real Fashion-MNIST test images with a bundled GAN (the DCGAN by default).

Loads the zoo entry's GAN and inverter (``--gan zoo:NAME``, default ``zoo:dcgan-fashion-mnist``; the StyleGAN2
entry ``zoo:stylegan2-fashion-mnist`` works alike, its codes in W+) (or fits a fresh inverter with ``fit=True``), encodes
the 1,000 bundled real test images, refines a subset, edits a few, and writes

- ``reconstructions.png`` (:mod:`discinvert.cli.demo_picture`): one real test image per class
  under a header of class names, in rows originals | encode | encode with the real-image-stage
  inverter (when the entry bundles one and no fresh fit is asked for; with its step networks,
  if it has any) | refine, each labelled with its inverter and mean PSNR; below, in a panel of
  its own, an edit (sneaker → ankle boot) of two sneakers: each start image, then the edit at
  each strength, through the paper inverter and, when bundled, the real-image-stage inverter;
- ``metrics.json``: ``{"dataset", "n_images", "methods": {"encode": {...}, "encode_real_images":
  {...}, "refine": {...}}}``
  with PSNR/SSIM mean and std over images, seconds and the number of images (strict
  JSON: a value that is not finite is written as ``null``).

Both are written atomically (:func:`discinvert.files.atomic_write`). Each stage prints one line on
stderr, and refinement (and a fresh fit) a progress bar on a terminal or a line every few seconds
in a log (:mod:`discinvert.cli.progress`).

Runs offline, on the CPU in a few minutes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from discinvert import zoo
from discinvert.inverter import Inverter
from discinvert.zoo.datasets import FASHION_MNIST_CLASSES, from_model_range, to_model_range
from discinvert.edit import attribute_direction, edit
from discinvert.fitting.fit import DEFAULT_STEPS, fit_inverter
from discinvert.cli.demo_picture import EditBlock, EditPanel, Row, draw_picture
from discinvert.cli.images import write_png
from discinvert.cli.progress import Progress, refine_callback
from discinvert.metrics import image_quality
from discinvert.files import check_writable, write_json
from discinvert.argument_checks import positive_int

__all__ = ["DemoOptions", "run_demo"]

logger = logging.getLogger(__name__)

ZOO_ENTRY = "dcgan-fashion-mnist"
"""The entry the demo runs on unless told otherwise."""


@dataclass(frozen=True)
class DemoOptions:
    """What the demo does.

    Attributes:
        out: folder for ``reconstructions.png`` and ``metrics.json``.
        gan: the zoo entry (:func:`discinvert.zoo.available`) whose GAN, inverters and test images are used.
        fit: fit a fresh inverter instead of loading the bundled one.
        fit_steps: steps of that fit.
        n_images: bundled test images to encode (at most 1,000).
        refine_images: how many of them to refine (refinement costs ~50 G passes each).
        refine_steps: refinement steps.
        seed: seed of the fresh fit.
        progress: progress bars on a terminal, lines every few seconds elsewhere (``None``); a bar
            even off a terminal (``True``); none (``False``). Stage lines print in every case.
    """

    out: Path
    gan: str = ZOO_ENTRY
    fit: bool = False
    fit_steps: int = DEFAULT_STEPS
    n_images: int = 1000
    refine_images: int = 200
    refine_steps: int = 50
    seed: int = 0
    progress: bool | None = None


def _db(summary: dict[str, float | int]) -> str:
    value = float(summary["psnr_mean"])
    return f"{value:.2f} dB" if np.isfinite(value) else "PSNR undefined"


def _summary(psnr: np.ndarray, ssim: np.ndarray, seconds: float) -> dict[str, float | int]:
    return {
        "psnr_mean": float(psnr.mean()), "psnr_std": float(psnr.std()),
        "ssim_mean": float(ssim.mean()), "ssim_std": float(ssim.std()),
        "seconds": round(seconds, 3), "n_images": int(len(psnr)),
    }


def run_demo(options: DemoOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the demo; returns the metrics written to ``metrics.json``.

    ``progress`` reports each stage (default: stderr, as ``discinvert demo`` does).

    Raises:
        ValueError: an unknown zoo entry, ``n_images`` below 1 or above the 1,000 bundled images, ``fit_steps``
            below 1, ``refine_images`` or ``refine_steps`` below 0, or ``out`` an existing file.
        OSError: ``out`` cannot be created or written in (checked before any work), or
            writing the outputs failed.
    """
    positive_int(options.n_images, "n_images")
    positive_int(options.fit_steps, "fit_steps")
    positive_int(options.refine_images, "refine_images", 0)
    positive_int(options.refine_steps, "refine_steps", 0)
    entry = options.gan
    zoo.path(entry)  # an unknown entry: a ValueError listing the known ones, before any work
    check_writable(options.out, directory=True)
    if progress is None:
        progress = Progress("demo", counters=options.progress is not False, bar=True if options.progress else None)
    images_u8, labels = zoo.load_test_images(entry)
    if options.n_images > len(images_u8):
        raise ValueError(f"n_images: expected at most {len(images_u8)} (the bundled test images), got {options.n_images}.")
    n = options.n_images
    images_u8, labels = images_u8[:n], labels[:n]
    progress.stage(f"loading the bundled GAN {entry} and its paper inverter")
    G, D, inverter = zoo.load(entry)
    if options.fit:
        inverter = _fit_fresh(G, D, options, progress)
    x = to_model_range(images_u8)

    progress.stage(f"encoding {n} test images with the {'fresh' if options.fit else 'paper'} inverter")
    recon, encode_seconds = _timed_reconstruction(inverter, x)
    psnr, ssim = image_quality(x, recon)
    methods: dict[str, Any] = {"encode": _summary(psnr, ssim, encode_seconds)}
    name = "fresh inverter" if options.fit else "paper CN"
    editors = [(name, inverter)]
    real_recon, real_name = None, ""
    if not options.fit and "real-images" in zoo.inverters(entry):
        real_inverter, real_name = _real_images_inverter(entry, G, D)
        progress.stage(f"encoding {n} test images with the real-images inverter ({real_inverter.iterations} step "
                       "networks)")
        real_recon, real_seconds = _timed_reconstruction(real_inverter, x)
        methods["encode_real_images"] = _summary(*image_quality(x, real_recon), real_seconds)
        editors.append((real_name, real_inverter))

    m = min(options.refine_images, n)
    refined_recon = None
    if m and options.refine_steps:
        refined_recon, refine_seconds = _refined_reconstruction(inverter, x[:m], options.refine_steps, progress)
        r_psnr, r_ssim = image_quality(x[:m], refined_recon)
        methods["refine"] = {**_summary(r_psnr, r_ssim, refine_seconds), "steps": options.refine_steps}
        methods["encode_on_refined_subset"] = _summary(psnr[:m], ssim[:m], encode_seconds * m / n)

    # One image of each class for the picture (taken from the refined subset when possible).
    pool = m if refined_recon is not None else n
    present = [k for k in range(len(FASHION_MNIST_CLASSES)) if (labels[:pool] == k).any()]
    columns = [int(np.flatnonzero(labels[:pool] == k)[0]) for k in present]
    reconstructions = [("encode", f"{name}, {_db(methods['encode'])}", recon)]
    if real_recon is not None:
        reconstructions.append(("encode", f"{real_name}, {_db(methods['encode_real_images'])}", real_recon))
    if refined_recon is not None:
        reconstructions.append((f"refine {options.refine_steps}", f"from the {name}'s codes, {_db(methods['refine'])}",
                                refined_recon))
    rows = [Row("original", "real test image", images_u8[columns]),
            *(Row(label, about, from_model_range(images[columns])) for label, about, images in reconstructions)]
    title = "Reconstructions of real test images, one per class"
    subtitle = (f"Fashion-MNIST test split, never seen in fitting; PSNR: mean over the {n:,} images"
                + (f" (refine: over the first {m:,})" if refined_recon is not None else ""))
    edit_panel = _edit_panel(images_u8, labels, x, editors, progress)

    out = Path(options.out)
    progress.stage(f"writing {out / 'reconstructions.png'} and {out / 'metrics.json'}")
    write_png(out / "reconstructions.png",
              draw_picture(title, subtitle, [FASHION_MNIST_CLASSES[k] for k in present], rows, edit_panel))
    metrics = {
        "dataset": "Fashion-MNIST test split (bundled: the first 100 images of each class)",
        "n_images": n,
        "gan": entry,
        "inverter": "fitted now" if options.fit else "bundled",
        "std_over": "images",
        "methods": methods,
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _fit_fresh(G: torch.nn.Module, D: torch.nn.Module, options: DemoOptions, progress: Progress) -> Inverter:
    """A fresh inverter for the bundled GAN, fit for ``options.fit_steps`` steps from ``options.seed``."""
    gan = zoo.load_entry_gan(options.gan)  # the feature layer and the codes' shape; a MappedGenerator G brings its sampler
    progress.stage(f"fitting a fresh inverter: {options.fit_steps} steps")
    fit = {"feature_layer": gan.feature_layer, "latent_shape": gan.latent_shape,
           "steps": options.fit_steps, "seed": options.seed}
    if progress.on_terminal or not progress.counters:  # the fit's own bar, or nothing
        return fit_inverter(G, D, progress=options.progress, **fit)
    # a log: a line every few seconds, from the fit's validations
    with progress.counter("fit", options.fit_steps, "step") as counter:
        return fit_inverter(G, D, progress=False, on_validation=lambda point: counter.update_to(point.step), **fit)


def _real_images_inverter(entry: str, G: torch.nn.Module, D: torch.nn.Module) -> tuple[Inverter, str]:
    """The entry's bundled real-image-stage inverter and its label in the picture (with its step networks)."""
    inverter = Inverter.from_pretrained(zoo.path(entry) / zoo.INVERTERS["real-images"], generator=G,
                                        discriminator=D)
    k = inverter.iterations
    return inverter, "real-images" + (f" + {k} step{'s' if k > 1 else ''}" if k else "")


def _timed_reconstruction(inverter: Inverter, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``G(encode(x))``, and the seconds ``encode`` took."""
    start = time.perf_counter()
    codes = inverter.encode(x)
    seconds = time.perf_counter() - start
    return inverter.decode(codes), seconds


def _refined_reconstruction(inverter: Inverter, x: torch.Tensor, steps: int,
                            progress: Progress) -> tuple[torch.Tensor, float]:
    """``G(refine(x, steps))``, and the seconds ``refine`` took (its progress counted in image-steps)."""
    m = len(x)
    progress.stage(f"refining {m} of them, {steps} steps each")
    start = time.perf_counter()
    with progress.counter(f"refine {m} images x {steps} steps", 0, "image-step") as counter:
        refined = inverter.refine(x, steps, progress=False, callback=refine_callback(counter, m, steps))
    seconds = time.perf_counter() - start
    return inverter.decode(refined), seconds


def _edit_panel(images_u8: np.ndarray, labels: np.ndarray, x: torch.Tensor, editors: list[tuple[str, Inverter]],
                progress: Progress) -> EditPanel | None:
    """Two sneakers edited toward ankle boots through each inverter; ``None`` without two sneakers and a boot."""
    sneaker, boot = FASHION_MNIST_CLASSES.index("Sneaker"), FASHION_MNIST_CLASSES.index("Ankle boot")
    if not ((labels == sneaker).sum() >= 2 and (labels == boot).any()):
        return None
    progress.stage("editing two sneakers toward ankle boots")
    starts = np.flatnonzero(labels == sneaker)[:2]
    strengths = (0.0, 0.5, 1.0, 1.5, 2.0)
    edits = []
    for editor_name, editor in editors:  # the same latent arithmetic through each bundled encoder
        direction = attribute_direction(editor, x[labels == boot], x[labels == sneaker])
        edited = torch.stack([edit(editor, x[starts], direction, s) for s in strengths], dim=1)  # (2, S, ...)
        edits.append((editor_name, from_model_range(edited.flatten(0, 1)).reshape(len(starts), len(strengths),
                                                                                   *images_u8.shape[1:])))
    blocks = tuple(
        EditBlock(f"sneaker {'AB'[i]} (test image {int(index)})", images_u8[index],
                  tuple(Row(f"edit, {editor_name}", "", tiles[i]) for editor_name, tiles in edits))
        for i, index in enumerate(starts))
    return EditPanel(
        "Edit toward ankle boots: code + s * (mean ankle-boot code - mean sneaker code)",
        "start: the real sneaker; s = 0: its reconstruction; the same latent arithmetic through each inverter",
        strengths, blocks)
