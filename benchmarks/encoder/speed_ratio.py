"""Feed-forward encode against optimisation at matched PSNR (issue 17's speed column).

For an inverter of the bundled Fashion-MNIST DCGAN, times ``encode(images, iterations=k)`` for each
``k`` and scores its reconstructions, then runs optimisation only (Adam on pixel MSE from ``z ~ N(0, I)``,
step size 0.05, as ``benchmarks/paper/table1.py``'s optimisation-only row) on the same images, checking
the PSNR of its best codes so far every ``--check-every`` steps (the checks are left out of its clock).
The *speed ratio* of a ``k`` is the seconds optimisation took to first reach that ``k``'s PSNR divided by
the seconds ``encode`` takes: how many times faster the feed-forward answer is at the same fidelity.

The images are the first of the Table 1 protocol's draws (1,000 Fashion-MNIST **test** images, seed 0),
as the Table 1 speed line uses: nothing here is chosen on them. The checkpointed optimisation is
:func:`optimise_with_checks`; at each check its codes are exactly those
``discinvert.optimize.optimize_latents(steps=s)`` returns (``tests/test_benchmarks_surface.py``).

    python -m benchmarks.encoder.speed_ratio                                   # about 15 min on 2 CPU cores
    python -m benchmarks.encoder.speed_ratio --quick --out /tmp/sr.md --json /tmp/sr.json   # smoke run

Writes ``docs/lab/speed_ratio.md`` and ``docs/results/speed_ratio.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import command_line, describe_device, finish_run, median_seconds, settings_line, settings_of
from discinvert import Inverter, zoo
from discinvert.guard import frozen
from discinvert.metrics import draw_subsets, image_quality
from discinvert.optimize import DEFAULT_REFINE_LR
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]


def optimise_with_checks(generator: nn.Module, images: torch.Tensor, init: torch.Tensor, *, steps: int,
                         check_every: int, lr: float = DEFAULT_REFINE_LR,
                         on_check: Any = None) -> list[dict[str, Any]]:
    """Adam on per-image pixel MSE from ``init`` (all images as one batch); call ``on_check`` every ``check_every`` steps.

    The same updates as :func:`discinvert.optimize.optimize_latents` with ``loss="mse"`` and no
    feature or prior term: after ``s`` updates the best code seen per image (over the ``s + 1``
    scored codes) is what ``optimize_latents(steps=s)`` returns.

    Args:
        generator: G (frozen here).
        images: ``(N, *image_shape)`` targets in G's range.
        init: ``(N, *latent_shape)`` starting codes.
        steps: the most updates to run.
        check_every: updates between checks (and a check at step 0).
        on_check: ``(step, best codes (N, *latent_shape), seconds so far) → bool``: ``True`` stops
            the run after this check. Its own time is not counted in the seconds.

    Returns:
        ``[{"step", "seconds"}]``, one per check.
    """
    checks: list[dict[str, Any]] = []
    with frozen(generator):
        z = init.detach().clone().float().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        best = z.detach().clone()
        best_loss = torch.full((z.shape[0],), math.inf)
        clock = 0.0
        for step in range(steps + 1):
            began = time.perf_counter()
            per_image = F.mse_loss(generator(z).float(), images.float(), reduction="none").flatten(1).mean(1)
            with torch.no_grad():
                improved = per_image < best_loss
                best_loss = torch.where(improved, per_image.detach(), best_loss)
                best[improved] = z.detach()[improved]
            last = step == steps
            if not last:
                optimizer.zero_grad(set_to_none=True)
                per_image.sum().backward()
                optimizer.step()
            clock += time.perf_counter() - began
            # The codes after ``step`` updates are scored at the next pass, so a check at ``step``
            # reads the best of the ``step + 1`` codes scored so far: the pass just made.
            if step % check_every == 0 or last:
                checks.append({"step": step, "seconds": clock})
                if on_check is not None and on_check(step, best.clone(), clock):
                    break
    return checks


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    G, D, inverter = _load(args.inverter)
    images, _ = load_fashion_mnist("test", root=args.data_root)
    first = draw_subsets(len(images), args.n, 5, args.seed)[0]
    x = to_model_range(images[first]).float()
    iterations = list(range(inverter.iterations + 1)) if args.iterations is None else args.iterations
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        for k in iterations:
            psnr, ssim = image_quality(x, inverter.reconstruct(x, range_check="ignore", iterations=k))
            seconds = median_seconds("cpu", lambda: inverter.encode(x, range_check="ignore", iterations=k),
                                     args.repeats)
            rows.append({"k": k, "psnr": float(psnr.mean()), "ssim": float(ssim.mean()),
                         "encode_seconds": seconds})
            print(json.dumps(rows[-1]), flush=True)
    goal = max(r["psnr"] for r in rows)
    curve: list[dict[str, Any]] = []

    def on_check(step: int, codes: torch.Tensor, seconds: float) -> bool:
        with torch.no_grad():
            psnr, _ = image_quality(x, G(codes))
        curve.append({"step": step, "psnr": float(psnr.mean()), "seconds": seconds})
        print(json.dumps(curve[-1]), flush=True)
        return curve[-1]["psnr"] >= goal

    rng = torch.Generator().manual_seed(args.seed)
    init = torch.randn((len(x), *inverter.latent_shape), generator=rng)
    optimise_with_checks(G, x, init, steps=args.max_steps, check_every=args.check_every, on_check=on_check)
    for row in rows:
        reached = next((c for c in curve if c["psnr"] >= row["psnr"]), None)
        row["optimisation_step"] = None if reached is None else reached["step"]
        row["optimisation_seconds"] = None if reached is None else reached["seconds"]
        row["ratio"] = None if reached is None else reached["seconds"] / row["encode_seconds"]
    return {"command": command_line(__spec__, argv), "device": describe_device("cpu"),
            "inverter": args.inverter, "n": len(x), "lr": DEFAULT_REFINE_LR,
            "settings": settings_of(args),
            "rows": rows, "optimisation_curve": curve}


def _load(source: str) -> tuple[nn.Module, nn.Module, Inverter]:
    """``paper`` / ``real-images`` (the zoo's inverters) or a saved inverter's path (for the zoo's GAN)."""
    if source in zoo.inverters():
        return zoo.load("dcgan-fashion-mnist", inverter=source)
    G, D, _ = zoo.load("dcgan-fashion-mnist")
    return G, D, Inverter.from_pretrained(source, generator=G, discriminator=D)


def write_page(result: dict[str, Any], path: Path) -> None:
    lines = [
        "# Feed-forward encode against optimisation at matched PSNR (issue 17)",
        "",
        "Written by `benchmarks/encoder/speed_ratio.py`; the figures come from this run:",
        "",
        f"    {result['command']}",
        "",
        f"Device: {result['device']}. Inverter: `{result['inverter']}` of the bundled DCGAN. Images: the first draw of the "
        f"Table 1 protocol ({result['n']} Fashion-MNIST test images, seed 0), reported only. *encode s*: median "
        "wall-clock seconds of `encode(images, iterations=k)` for all of them. Optimisation only: Adam on pixel MSE "
        f"from `z ~ N(0, I)`, step size {result['lr']}, all images as one batch, the best code per image so far "
        "scored every few steps (the scoring left out of its clock). *optimisation to match*: the first check at "
        "which its PSNR reached the row's; *ratio*: its seconds over encode's.",
        "",
        "| k | encode PSNR dB | SSIM | encode s | optimisation to match: steps, s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        matched = ("not reached" if r["optimisation_step"] is None
                   else f"{r['optimisation_step']} steps, {r['optimisation_seconds']:.1f} s")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.0f}x"
        lines.append(f"| {r['k']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['encode_seconds']:.3f} | {matched} | {ratio} |")
    lines += ["", "Optimisation only, PSNR of the best codes so far:", "",
              "| steps | PSNR dB | s |", "|---|---|---|"]
    lines += [f"| {c['step']} | {c['psnr']:.2f} | {c['seconds']:.1f} |" for c in result["optimisation_curve"]]
    lines += ["", settings_line(result["settings"]), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inverter", default="real-images",
                        help="the zoo's 'paper' or 'real-images' inverter, or a saved inverter's path")
    parser.add_argument("--iterations", type=int, nargs="*", default=None,
                        help="the k to time (default: 0 .. the inverter's iterations)")
    parser.add_argument("--n", type=int, default=1000, help="test images (the protocol's first draw)")
    parser.add_argument("--max-steps", type=int, default=400, help="the most optimisation steps")
    parser.add_argument("--check-every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="timed encode calls (median)")
    parser.add_argument("--data-root", type=Path, default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "speed_ratio.md")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "speed_ratio.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.max_steps, args.check_every, args.repeats = 32, 4, 2, 1
    return finish_run(args, argv, run, write_page)


if __name__ == "__main__":
    raise SystemExit(main())
