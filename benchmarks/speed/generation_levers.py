#!/usr/bin/env python
"""Micro-benchmark of the fit's two parts, one lever at a time, in one run.

    python -m benchmarks.speed.generation_levers --device cpu --repeats 5

On the bundled DCGAN, times (median of ``--repeats`` after a warm-up):

* **making one batch of pairs** (G + D up to the feature layer, batch 256) under
  ``torch.no_grad`` (what ``fit_inverter`` uses), ``torch.inference_mode``, bf16 autocast,
  channels-last copies, both, and ``torch.compile`` of G (default mode; the compile time is
  reported apart);
* **one CN step** (forward, backward, Adam) with the default Adam, fused Adam (what
  ``fit_inverter`` uses), and the CN's forward/backward under bf16 autocast.

It answers which levers pay on this device; ``benchmarks/speed/fit_speed.py`` measures the ones
built into ``fit_inverter`` end to end with their accuracy. Writes its section of
``docs/lab/fit_speed.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import (
    LayerFeatures,
    autocast,
    channels_last_copy,
    command_line,
    describe_device,
    median_seconds,
    sync,
    write_marked_section,
)
from discinvert import CNConfig, ConnectionNetwork, zoo
from discinvert.fitting.fit_config import ADAM_BETAS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--out", type=Path, default=Path("docs/lab/fit_speed.md"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    device = torch.device(args.device)

    def median(fn: Callable[[], object]) -> float:
        return median_seconds(device, fn, args.repeats, warmups=2)  # oneDNN / cuDNN pick their kernels on the first calls

    G, D, _ = zoo.load("dcgan-fashion-mnist", device=args.device)
    config = zoo.load_gan_config("dcgan-fashion-mnist")
    G_cl, D_cl = channels_last_copy(G), channels_last_copy(D)
    z = torch.randn((args.batch_size, *config.latent_shape), device=device)

    tap, tap_cl = LayerFeatures(D, config.feature_layer), LayerFeatures(D_cl, config.feature_layer)

    def pairs(generator: torch.nn.Module, features: LayerFeatures, grad_mode: Callable[[], object] = torch.no_grad,
              dtype: torch.dtype | None = None) -> Callable[[], object]:
        def run() -> object:
            with grad_mode(), autocast(device, dtype):  # type: ignore[attr-defined]
                return features(generator(z)).float()
        return run

    rows: list[dict[str, object]] = []

    def record(part: str, lever: str, seconds: float, note: str = "") -> None:
        base = next((r["seconds"] for r in rows if r["part"] == part and r["seconds"] is not None), seconds)
        rows.append({"part": part, "lever": lever, "seconds": seconds, "speedup": base / seconds, "note": note})
        print(f"{part:>12} | {lever:<40} {seconds * 1000:8.1f} ms  x{base / seconds:.2f} {note}", flush=True)

    part = f"pairs ({args.batch_size})"
    record(part, "no_grad, float32 (fit_inverter's default)", median(pairs(G, tap)))
    record(part, "inference_mode", median(pairs(G, tap, torch.inference_mode)))
    record(part, "bf16 autocast", median(pairs(G, tap, dtype=torch.bfloat16)))
    record(part, "channels-last copies", median(pairs(G_cl, tap_cl)))
    record(part, "bf16 autocast + channels-last copies", median(pairs(G_cl, tap_cl, dtype=torch.bfloat16)))
    if not args.no_compile:
        for label, generator, features, dtype in (("torch.compile(G)", G, tap, None),
                                                  ("torch.compile(G), bf16 + channels-last", G_cl, tap_cl, torch.bfloat16)):
            compiled = torch.compile(copy.deepcopy(generator))
            start = time.perf_counter()
            try:
                pairs(compiled, features, dtype=dtype)()
            except Exception as error:  # inductor needs a C++ compiler and Python headers
                first_line = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
                print(f"{label}: failed ({type(error).__name__}: {first_line})", flush=True)
                rows.append({"part": part, "lever": label, "seconds": None, "speedup": None,
                             "note": f"(failed here: {type(error).__name__})"})
                continue
            sync(device)
            compile_seconds = time.perf_counter() - start
            record(part, label, median(pairs(compiled, features, dtype=dtype)), f"(compiling took {compile_seconds:.0f} s)")

    with torch.no_grad():
        feature_dim = tap(G(z[:2])).shape[1]
    x = torch.randn(args.batch_size, feature_dim, device=device)
    y = torch.randn(args.batch_size, z[0].numel(), device=device)

    def cn_step(fused: bool, dtype: torch.dtype | None = None) -> Callable[[], object]:
        torch.manual_seed(0)
        cn = ConnectionNetwork(CNConfig(in_features=feature_dim, out_features=y.shape[1], batch_norm=True)).to(device)
        optimizer = torch.optim.Adam(cn.parameters(), lr=1e-3, betas=ADAM_BETAS, fused=fused)

        def run() -> object:
            with autocast(device, dtype):
                loss = F.mse_loss(cn(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss
        return run

    part = "CN step"
    record(part, "Adam (torch's default implementation)", median(cn_step(False)))
    record(part, "fused Adam (fit_inverter's default)", median(cn_step(True)))
    record(part, "fused Adam, bf16 autocast for the CN", median(cn_step(True, torch.bfloat16)))

    device_name = describe_device(device)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "device": device_name, "torch": torch.__version__,
                                         "rows": rows}, indent=1))
    lines = [f"## Levers one at a time: {device_name}", "",
             f"Written by `benchmarks/speed/generation_levers.py` (torch {torch.__version__}; medians of {args.repeats} runs "
             "after a warm-up):", "", f"    {command}", "",
             "| part | lever | ms | speed-up over the part's first row |", "|---|---|---|---|"]
    lines += [f"| {r['part']} | {r['lever']} {r['note']} | {float(r['seconds']) * 1000:.1f} | {float(r['speedup']):.2f}x |"
              if r["seconds"] is not None else f"| {r['part']} | {r['lever']} {r['note']} | - | - |" for r in rows]
    key = "levers-" + ("cuda" if device.type == "cuda" else "cpu")
    write_marked_section(args.out, "fit_speed", key, lines,
                         "# Fit speed: the levers\n\nEach section is written by its own run of a benchmark script.\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
