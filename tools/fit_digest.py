"""Fingerprints of short, seeded fits: refactors of the fit must leave them unchanged.

    python tools/fit_digest.py                  # every case: SHA-256 of the fitted weights and the recorded fit
    python tools/fit_digest.py --case images    # one case
    python tools/fit_digest.py --check tools/fit_digest.json   # exit 1 when a digest differs from the file

``tools/fit_digest.json`` holds the digests of the commit before issue 33's restructuring, with where they
were recorded (bit-identical digests need the same CPU kind, torch build and thread count).

The cases, all on the bundled DCGAN with seed 7: ``plain`` (the paper's stage alone), ``images`` (plus
the real-image stage on 256 Fashion-MNIST *train* images), ``iterations`` (plus two step networks),
``images+iterations`` (both), and ``refine`` (20 steps of :meth:`Inverter.refine` from the plain fit,
with the feature and prior terms). Each digest covers every weight of the inverter (CN and step
networks, or the refined codes) and its ``config.fit`` record without wall-clock seconds.

Run it before and after a change that must not change behaviour: the digests must match (on the same
machine, with the same torch and the same number of threads). It prints its command and settings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

import torch

from discinvert import fit_inverter, zoo
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

SETTINGS: dict[str, Any] = dict(steps=60, batch_size=64, validation_size=128, seed=7, progress=False)
IMAGE_SETTINGS: dict[str, Any] = dict(real_steps=30, real_batch_size=32, real_held_out=64)
ITERATIVE_SETTINGS: dict[str, Any] = dict(iterations=2, iteration_steps=20, iteration_batch_size=32, step_hidden=(64,))
CASES = ("plain", "images", "iterations", "images+iterations", "refine")
THREADS = 2


def _without_seconds(value: Any) -> Any:
    """``config.fit`` without what the clock measured (seconds, and the seconds column of each history row)."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds" and not k.endswith("_seconds")}
    if isinstance(value, list):
        if value and all(isinstance(row, list) and len(row) == 4 for row in value):
            return [row[:3] for row in value]  # [step, train, validation, seconds]
        return [_without_seconds(v) for v in value]
    return value


def _digest(tensors: dict[str, torch.Tensor], record: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    digest.update(json.dumps(_without_seconds(record), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _train_images() -> torch.Tensor:
    images, _ = load_fashion_mnist(split="train")
    return to_model_range(images[:256])


def run_case(case: str) -> str:
    """The digest of one case."""
    generator, discriminator, _ = zoo.load("dcgan-fashion-mnist")
    settings = dict(SETTINGS)
    if "images" in case:
        settings.update(IMAGE_SETTINGS, images=_train_images())
    if "iterations" in case:
        settings.update(ITERATIVE_SETTINGS)
    inverter = fit_inverter(generator, discriminator, "main.7", latent_shape=(100, 1, 1), **settings)
    if case == "refine":
        images = zoo.load_test_images("dcgan-fashion-mnist")[0][:16]
        codes = inverter.refine(to_model_range(images), steps=20, feature_weight=0.1,
                                prior_weight=0.01, progress=False)
        return _digest({"codes": codes}, inverter.config.fit)
    return _digest(inverter.state_dict(), inverter.config.fit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, action="append", help="run only these cases (default: all)")
    parser.add_argument("--check", metavar="JSON", help="compare with the digests stored in this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    print("command: python tools/fit_digest.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(f"settings {SETTINGS}, images {IMAGE_SETTINGS}, iterations {ITERATIVE_SETTINGS}, "
          f"torch {torch.__version__}, {THREADS} threads")
    found = {case: run_case(case) for case in (args.case or CASES)}
    for case, digest in found.items():
        print(f"{case:>18}: {digest}")
    if args.check:
        with open(args.check) as file:
            expected = json.load(file)
        differ = [case for case, digest in found.items() if expected.get(case) != digest]
        print("all digests match" if not differ else f"differ: {', '.join(differ)}")
        return 1 if differ else 0
    print(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
