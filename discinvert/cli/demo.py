"""``discinvert demo``: invert real Fashion-MNIST test images with the bundled DCGAN.

Loads the zoo's GAN and inverter (or fits a fresh inverter with ``fit=True``), encodes
the 1,000 bundled real test images, refines a subset, edits a few, and writes

- ``reconstructions.png``: rows originals | encode | encode with the real-image-stage
  inverter (when the entry bundles one and no fresh fit is asked for; with its step
  networks, if it has any) | refine | edit (sneaker → ankle boot at increasing strength),
  through the paper inverter and, when bundled, through the real-image-stage inverter;
- ``metrics.json``: ``{"dataset", "n_images", "methods": {"encode": {...}, "encode_real_images":
  {...}, "refine": {...}}}``
  with PSNR/SSIM mean and std over images, seconds and the number of images (strict
  JSON: a value that is not finite is written as ``null``).

Both are written atomically (:func:`discinvert.files.atomic_write`).

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
from discinvert.fit import DEFAULT_STEPS, fit_inverter
from discinvert.cli.images import write_png
from discinvert.metrics import image_quality
from discinvert.files import check_writable, write_json
from discinvert.validation import positive_int

__all__ = ["DemoOptions", "run_demo"]

logger = logging.getLogger(__name__)

ZOO_ENTRY = "dcgan-fashion-mnist"


@dataclass(frozen=True)
class DemoOptions:
    """What the demo does.

    Attributes:
        out: folder for ``reconstructions.png`` and ``metrics.json``.
        fit: fit a fresh inverter instead of loading the bundled one.
        fit_steps: steps of that fit.
        n_images: bundled test images to encode (at most 1,000).
        refine_images: how many of them to refine (refinement costs ~50 G passes each).
        refine_steps: refinement steps.
        seed: seed of the fresh fit.
        progress: progress bars (``None``: on a terminal only).
    """

    out: Path
    fit: bool = False
    fit_steps: int = DEFAULT_STEPS
    n_images: int = 1000
    refine_images: int = 200
    refine_steps: int = 50
    seed: int = 0
    progress: bool | None = None


def _summary(psnr: np.ndarray, ssim: np.ndarray, seconds: float) -> dict[str, float | int]:
    return {
        "psnr_mean": float(psnr.mean()), "psnr_std": float(psnr.std()),
        "ssim_mean": float(ssim.mean()), "ssim_std": float(ssim.std()),
        "seconds": round(seconds, 3), "n_images": int(len(psnr)),
    }


def _grid(rows: list[tuple[str, np.ndarray]], scale: int = 3) -> np.ndarray:
    """Rows of uint8 tiles (n, 28, 28) → one labelled uint8 image."""
    from PIL import Image, ImageDraw

    label_width = 90
    columns = max(len(tiles) for _, tiles in rows)
    size = rows[0][1].shape[-1]
    pad = 2
    height = len(rows) * (size + pad) + pad
    width = columns * (size + pad) + pad
    canvas = np.full((height, width), 40, dtype=np.uint8)
    for r, (_, tiles) in enumerate(rows):
        for c, tile in enumerate(tiles):
            y, x = pad + r * (size + pad), pad + c * (size + pad)
            canvas[y : y + size, x : x + size] = tile
    big = Image.fromarray(canvas).resize((width * scale, height * scale), Image.NEAREST)
    framed = Image.new("L", (big.width + label_width, big.height), 255)
    framed.paste(big, (label_width, 0))
    draw = ImageDraw.Draw(framed)
    for r, (label, _) in enumerate(rows):
        draw.text((4, (pad + r * (size + pad) + size // 2) * scale - 5), label, fill=0)
    return np.asarray(framed)


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Run the demo; returns the metrics written to ``metrics.json``.

    Raises:
        ValueError: ``n_images`` below 1 or above the 1,000 bundled images, ``fit_steps``
            below 1, ``refine_images`` or ``refine_steps`` below 0, or ``out`` an existing file.
        OSError: ``out`` cannot be created or written in (checked before any work), or
            writing the outputs failed.
    """
    positive_int(options.n_images, "n_images")
    positive_int(options.fit_steps, "fit_steps")
    positive_int(options.refine_images, "refine_images", 0)
    positive_int(options.refine_steps, "refine_steps", 0)
    check_writable(options.out, directory=True)
    images_u8, labels = zoo.load_test_images(ZOO_ENTRY)
    if options.n_images > len(images_u8):
        raise ValueError(f"n_images: expected at most {len(images_u8)} (the bundled test images), got {options.n_images}.")
    n = options.n_images
    images_u8, labels = images_u8[:n], labels[:n]
    G, D, inverter = zoo.load(ZOO_ENTRY)
    if options.fit:
        config = zoo.load_gan_config(ZOO_ENTRY)
        inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape,
                                steps=options.fit_steps, seed=options.seed, progress=options.progress)
    x = to_model_range(images_u8)

    start = time.perf_counter()
    codes = inverter.encode(x)
    encode_seconds = time.perf_counter() - start
    recon = inverter.decode(codes)
    psnr, ssim = image_quality(x, recon)
    methods: dict[str, Any] = {"encode": _summary(psnr, ssim, encode_seconds)}
    real_recon, real_inverter = None, None
    if not options.fit and "real-images" in zoo.inverters(ZOO_ENTRY):
        real_inverter = Inverter.from_pretrained(zoo.path(ZOO_ENTRY) / zoo.INVERTERS["real-images"], generator=G,
                                                 discriminator=D)
        start = time.perf_counter()
        real_codes = real_inverter.encode(x)
        real_seconds = time.perf_counter() - start
        real_recon = real_inverter.decode(real_codes)
        methods["encode_real_images"] = _summary(*image_quality(x, real_recon), real_seconds)

    m = min(options.refine_images, n)
    refined_recon = None
    if m and options.refine_steps:
        start = time.perf_counter()
        refined = inverter.refine(x[:m], options.refine_steps, progress=options.progress)
        refine_seconds = time.perf_counter() - start
        refined_recon = inverter.decode(refined)
        r_psnr, r_ssim = image_quality(x[:m], refined_recon)
        methods["refine"] = {**_summary(r_psnr, r_ssim, refine_seconds), "steps": options.refine_steps}
        methods["encode_on_refined_subset"] = _summary(psnr[:m], ssim[:m], encode_seconds * m / n)

    # One image of each class for the picture (taken from the refined subset when possible).
    pool = m if refined_recon is not None else n
    columns = [int(np.flatnonzero(labels[:pool] == k)[0]) for k in range(len(FASHION_MNIST_CLASSES)) if (labels[:pool] == k).any()]
    rows: list[tuple[str, np.ndarray]] = [
        ("originals", images_u8[columns]),
        ("encode", from_model_range(recon[columns])),
    ]
    if real_recon is not None and real_inverter is not None:
        label = f"real+{real_inverter.iterations} steps" if real_inverter.iterations else "encode+real"
        rows.append((label, from_model_range(real_recon[columns])))
    if refined_recon is not None:
        rows.append((f"refine {options.refine_steps}", from_model_range(refined_recon[columns])))
    sneaker, boot = FASHION_MNIST_CLASSES.index("Sneaker"), FASHION_MNIST_CLASSES.index("Ankle boot")
    if (labels == sneaker).sum() >= 2 and (labels == boot).any():
        sneakers = x[labels == sneaker][:2]
        strengths = [0.0, 0.5, 1.0, 1.5, 2.0]
        order = [i * 2 + j for j in range(2) for i in range(len(strengths))]
        editors = [("edit: +boot", inverter)] + ([("edit (real): +boot", real_inverter)] if real_inverter else [])
        for label, editor in editors:  # the same latent arithmetic through each bundled encoder
            direction = attribute_direction(editor, x[labels == boot], x[labels == sneaker])
            edited = torch.cat([edit(editor, sneakers, direction, s) for s in strengths])
            rows.append((label, from_model_range(edited[order])))

    out = Path(options.out)
    write_png(out / "reconstructions.png", _grid(rows))
    metrics = {
        "dataset": "Fashion-MNIST test split (bundled: the first 100 images of each class)",
        "n_images": n,
        "gan": ZOO_ENTRY,
        "inverter": "fitted now" if options.fit else "bundled",
        "std_over": "images",
        "methods": methods,
    }
    write_json(out / "metrics.json", metrics)
    return metrics
