#!/usr/bin/env python
"""What storing a StyleGAN2 zoo entry's G and D in float16 costs: its images and its encodes against float32.

    python -m tools.check_zoo_storage --run runs/stylegan2 --name stylegan2-fashion-mnist [--n 1000] [--json F]

Compares the GAN of a training run (``--run``, float32 as trained) with the same GAN as the zoo entry stores it
(``discinvert/zoo/<name>/gan/``, loaded as the zoo loads it), on:

- **images**: G's images for the same ``--n`` codes (drawn in the entry's space by ``MappedGenerator.sample``,
  seed 0, fixed noise): the largest absolute pixel difference (range [-1, 1]) and the PSNR of the stored G's images
  against the float32 G's;
- **encodes**, for each inverter the entry bundles: the entry's bundled real test images encoded and decoded once
  through the stored G and D (as shipped) and once through the float32 G and D (the same inverter, loaded with
  ``on_mismatch="warn"``: its fingerprints are of the stored weights): the largest absolute difference of the
  codes, the PSNR between the two reconstructions, and each one's mean PSNR against the originals.

``tools/build_zoo_stylegan2.py`` runs :func:`image_check` and :func:`encode_check` and writes their figures
into the entry's model cards; run this by hand to check an entry as shipped.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.common import command_line, write_json
from discinvert import Inverter, zoo
from discinvert.mapped import MappedGenerator
from discinvert.metrics import image_quality
from discinvert.zoo.datasets import to_model_range
from discinvert.zoo.gans import STYLEGAN2_INVERSION, load_zoo_gan
from discinvert.zoo.stylegan2 import load_stylegan2, read_document


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of ``a`` against ``b`` over every pixel together, range [-1, 1] (peak-to-peak 2)."""
    mse = float((a.double() - b.double()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def float32_twin(run: Path, inversion: dict[str, Any]) -> MappedGenerator:
    """The run's float32 G, wrapped as the entry's ``inversion`` record wraps the stored one (space, noise,
    truncation)."""
    G, _, _, _ = load_stylegan2(run)
    return MappedGenerator.nvidia(G, space=inversion["space"], noise_mode=inversion["noise_mode"],
                                  truncation_psi=float(inversion["truncation_psi"])).eval()


@torch.no_grad()
def image_check(fp32: MappedGenerator, stored: MappedGenerator, *, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """G's images for the same ``n`` codes of the stored G's space: the largest absolute difference and the PSNR."""
    codes = stored.sample(n, torch.Generator().manual_seed(seed), torch.device("cpu"))
    a, b = fp32(codes), stored(codes)
    return {"n_codes": n, "max_abs_pixel_difference": float((a - b).abs().max()), "psnr_db_stored_vs_fp32": _psnr(b, a)}


def encode_check(directory: Path, stored: tuple[nn.Module, nn.Module], fp32: tuple[nn.Module, nn.Module],
                 images: torch.Tensor) -> dict[str, Any]:
    """The inverter saved in ``directory`` loaded against the ``stored`` G and D (as shipped) and against the
    ``fp32`` ones, on ``images`` in G's range: codes, reconstructions, and their PSNR against the originals."""
    inverter = Inverter.from_pretrained(directory, generator=stored[0], discriminator=stored[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fingerprints are of the stored weights: a mismatch is the point
        twin = Inverter.from_pretrained(directory, generator=fp32[0], discriminator=fp32[1], on_mismatch="warn")
    codes, codes32 = inverter.encode(images), twin.encode(images)
    recon, recon32 = inverter.decode(codes), twin.decode(codes32)
    value_range = tuple(inverter.value_range)  # as reconstruction_score scores
    psnr, _ = image_quality(images, recon, value_range=value_range)
    psnr32, _ = image_quality(images, recon32, value_range=value_range)
    return {"n_images": len(images), "max_abs_code_difference": float((codes - codes32).abs().max()),
            "psnr_db_reconstructions_stored_vs_fp32": _psnr(recon, recon32),
            "encode_psnr_db_stored": float(psnr.mean()), "encode_psnr_db_fp32": float(psnr32.mean())}


def check_entry(run: Path, name: str, *, n: int = 1000) -> dict[str, Any]:
    """:func:`image_check` and, for each bundled inverter, :func:`encode_check` of the zoo entry ``name``."""
    stored = load_zoo_gan(zoo.path(name) / "gan")
    if not isinstance(stored.generator, MappedGenerator):
        raise ValueError(f"--name {name}: expected a StyleGAN2 entry, got a {stored.architecture} one.")
    fp32 = float32_twin(run, read_document(zoo.path(name) / "gan").get("inversion", STYLEGAN2_INVERSION))
    _, fp32_d, _, _ = load_stylegan2(run)
    result: dict[str, Any] = {"images": image_check(fp32, stored.generator, n=n)}
    test_u8, _ = zoo.load_test_images(name)
    x = to_model_range(test_u8)
    for kind in zoo.inverters(name):
        result[f"encode_{kind}"] = encode_check(zoo.path(name) / zoo.INVERTERS[kind],
                                                (stored.generator, stored.discriminator), (fp32, fp32_d), x)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the training run's folder (float32 G and D)")
    parser.add_argument("--name", default="stylegan2-fashion-mnist", help="the zoo entry")
    parser.add_argument("--n", type=int, default=1000, help="codes for the image comparison")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    result = {"command": command, **check_entry(args.run, args.name, n=args.n)}
    print(json.dumps(result, indent=1))
    if args.json is not None:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
