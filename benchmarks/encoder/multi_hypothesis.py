"""Several feed-forward guesses, the best one kept (issue 17): does choosing among K codes beat one?

The connection network regresses to the posterior mean: where an image could come from several
codes, one smooth map answers with their average, which G draws as an average-looking picture. An
encoder with K output heads trained *winner-takes-all* (multiple-choice learning: each image trains
only the head whose code G reproduces it best) can keep K distinct answers; at encode time the input
image itself picks the head whose ``G(z_k)`` is closest to it. No gradient step is taken: the cost
is K G passes instead of one.

Every variant starts from the bundled real-images inverter's connection network (its trunk, and its
last layer copied into each head with a little noise, so the heads can part) and is fine-tuned on the
Fashion-MNIST *train* images (all but the last ``--holdout``) with the pixel loss through the frozen G,
from the same batches:

- ``heads=1``: the control, the same updates with one head;
- ``heads=K``: K heads, winner-takes-all;
- ``jitter=K``: no training; K codes around the CN's (``z + sigma * noise``, the first one ``z``), the best kept.

Scored on the held-out train slice (never trained on; the test split is not touched): PSNR/SSIM of the
chosen reconstruction, how often each head wins, and the encode time per 1,000 images.

    python -m benchmarks.encoder.multi_hypothesis                 # about 25 min on 2 CPU cores
    python -m benchmarks.encoder.multi_hypothesis --quick --out /tmp/mh.md --json /tmp/mh.json   # smoke run

Writes ``docs/lab/multi_hypothesis.md`` and ``docs/results/multi_hypothesis.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import command_line, describe_device, finish_run, median_seconds, settings_line, settings_of
from discinvert import zoo
from discinvert.fitting.fit_config import ADAM_BETAS
from discinvert.metrics import image_quality
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]


class MultiHead(nn.Module):
    """The CN's trunk (every layer but the last) and K copies of its last layer: features ``(B, F)`` → codes ``(B, K, D)``."""

    def __init__(self, cn_layers: nn.Sequential, heads: int, noise: float, generator: torch.Generator) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(cn_layers[:-1])
        last = cn_layers[-1]
        weight = last.weight.detach().unsqueeze(0).repeat(heads, 1, 1)
        bias = last.bias.detach().unsqueeze(0).repeat(heads, 1)
        if heads > 1:
            weight = weight + noise * weight.std() * torch.randn(weight.shape, generator=generator)
            bias = bias + noise * torch.randn(bias.shape, generator=generator)
        self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.trunk(features)
        return torch.einsum("bh,kdh->bkd", hidden, self.weight) + self.bias


def choose(G: nn.Module, x: torch.Tensor, codes: torch.Tensor, latent_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The code of each image whose ``G(z_k)`` is closest to it (pixel MSE), and which ``k`` that was.

    Args:
        codes: ``(B, K, D)``.

    Returns:
        ``(chosen codes (B, D), winners (B,))``.
    """
    b, k, d = codes.shape
    with torch.no_grad():
        fakes = G(codes.reshape(b * k, *latent_shape)).float().reshape(b, k, *x.shape[1:])
        errors = (fakes - x[:, None]).pow(2).flatten(2).mean(2)
    winners = errors.argmin(1)
    return codes[torch.arange(b), winners], winners


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    G, D, inverter = zoo.load(inverter="real-images")
    tap, latent_shape = inverter._gan.tap, tuple(inverter.latent_shape)
    images, _ = load_fashion_mnist("train", root=args.data_root)
    x_all = to_model_range(images).float()
    train, holdout = x_all[: len(x_all) - args.holdout], x_all[len(x_all) - args.holdout :]
    if args.train_limit:
        train = train[: args.train_limit]
    for p in list(G.parameters()) + list(D.parameters()):
        p.requires_grad_(False)
    G.eval()
    D.eval()
    with torch.no_grad():
        held_features = tap(holdout).float()
        base_codes = inverter.cn(held_features)
    rows: list[dict[str, Any]] = []

    def score(label: str, codes: torch.Tensor, train_seconds: float, encode: Any, heads: int) -> None:
        chosen, winners = choose(G, holdout, codes, latent_shape)
        with torch.no_grad():
            psnr, ssim = image_quality(holdout, G(chosen.reshape(-1, *latent_shape)))
        usage = torch.bincount(winners, minlength=heads).tolist()
        seconds = median_seconds("cpu", encode, 3) * 1000 / len(holdout)
        rows.append({"variant": label, "heads": heads, "psnr": float(psnr.mean()), "ssim": float(ssim.mean()),
                     "wins": usage, "train_seconds": round(train_seconds, 1), "encode_seconds_per_1k": seconds,
                     "code_sq_norm_per_dim": float(chosen.pow(2).mean())})
        print(json.dumps(rows[-1]), flush=True)

    def encode_base() -> Any:
        with torch.no_grad():
            return choose(G, holdout, inverter.cn(tap(holdout).float())[:, None], latent_shape)

    score("bundled real-images CN (k=0)", base_codes[:, None], 0.0, encode_base, 1)

    for k in args.jitter:
        rng = torch.Generator().manual_seed(args.seed + 1)
        noise = args.sigma * torch.randn((len(holdout), k, base_codes.shape[1]), generator=rng)
        noise[:, 0] = 0.0
        jittered = base_codes[:, None] + noise

        def encode_jitter(k: int = k, noise: torch.Tensor = noise) -> Any:
            with torch.no_grad():
                return choose(G, holdout, inverter.cn(tap(holdout).float())[:, None] + noise, latent_shape)

        score(f"jitter={k} (sigma {args.sigma}, no training)", jittered, 0.0, encode_jitter, k)

    for k in args.heads:
        model = MultiHead(inverter.cn.layers, k, args.head_noise, torch.Generator().manual_seed(args.seed + 2))
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=ADAM_BETAS)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda u: 0.01 + 0.99 * 0.5 * (1 + torch.cos(torch.tensor(u / args.steps * torch.pi))).item())
        batches = torch.Generator().manual_seed(args.seed + 3)
        model.train()
        began = time.perf_counter()
        for _ in range(args.steps):
            x = train[torch.randint(0, len(train), (args.batch,), generator=batches)]
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
                features = tap(x)
            codes = model(features.float())
            if k > 1:
                with torch.autocast("cpu", torch.bfloat16):
                    _, winners = choose(G, x, codes.detach(), latent_shape)
                chosen = codes[torch.arange(len(x)), winners]
            else:
                chosen = codes[:, 0]
            with torch.autocast("cpu", torch.bfloat16):
                fake = G(chosen.reshape(-1, *latent_shape))
            loss = F.mse_loss(fake.float(), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        seconds = time.perf_counter() - began
        model.eval()

        def encode_heads(model: MultiHead = model) -> Any:
            with torch.no_grad():
                return choose(G, holdout, model(tap(holdout).float()), latent_shape)

        with torch.no_grad():
            codes = model(held_features)
        score(f"heads={k} ({'winner-takes-all' if k > 1 else 'control'}, {args.steps} updates)", codes, seconds,
              encode_heads, k)
    return {"command": command_line(__spec__, argv), "device": describe_device("cpu"),
            "holdout": f"Fashion-MNIST train[{len(x_all) - args.holdout}:] ({args.holdout} images, never trained on)",
            "settings": settings_of(args),
            "rows": rows}


def write_page(result: dict[str, Any], path: Path) -> None:
    lines = [
        "# Several feed-forward guesses, the best kept (issue 17)",
        "",
        "Written by `benchmarks/encoder/multi_hypothesis.py`; the figures come from this run:",
        "",
        f"    {result['command']}",
        "",
        f"Device: {result['device']}. Scored on {result['holdout']}; the test split is not used. Every row starts from "
        "the bundled real-images inverter's connection network (no step networks); *heads=K* rows fine-tune its trunk "
        "and K copies of its last layer winner-takes-all with the pixel loss through the frozen G, *heads=1* is the "
        "control with the same updates, *jitter=K* takes K codes around the CN's without training. The input image picks "
        "the code whose G(z) is closest to it (no gradient step). *wins*: how many held-out images each head won. "
        "*encode s / 1k*: D's partial pass, the network and K G passes per 1,000 images.",
        "",
        "| variant | PSNR dB | SSIM | wins per head | encode s / 1k | train s | codes' mean z² |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        wins = ", ".join(str(w) for w in r["wins"]) if len(r["wins"]) <= 16 else f"{sum(w > 0 for w in r['wins'])} of {len(r['wins'])} heads win"
        lines.append(f"| {r['variant']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {wins} | {r['encode_seconds_per_1k']:.2f} | "
                     f"{r['train_seconds']:.0f} | {r['code_sq_norm_per_dim']:.3f} |")
    lines += ["", settings_line(result["settings"]), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images scored, never trained on")
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N train images (0: all)")
    parser.add_argument("--heads", type=int, nargs="*", default=[1, 4, 16], help="winner-takes-all head counts")
    parser.add_argument("--jitter", type=int, nargs="*", default=[16], help="codes around the CN's, no training")
    parser.add_argument("--sigma", type=float, default=0.3, help="the jitter's standard deviation")
    parser.add_argument("--head-noise", type=float, default=0.1, help="relative noise parting the heads at the start")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "multi_hypothesis.md")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "multi_hypothesis.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.holdout, args.train_limit, args.steps, args.heads, args.jitter = 64, 512, 3, [1, 3], [3]
    return finish_run(args, argv, run, write_page)


if __name__ == "__main__":
    raise SystemExit(main())
