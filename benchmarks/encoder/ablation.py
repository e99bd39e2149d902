"""First ablations toward a faithful feed-forward encoder (issue 17): what each lever buys on the bundled DCGAN.

Every encoder here uses D as its only feature network. Scored on a held-out slice of the Fashion-MNIST
*train* split (the last ``--holdout`` images, never trained on); the test split is not touched, so
nothing here can be tuned on it. Variants:

- ``paper-cn``: the bundled inverter (the paper's CN on D's last hidden layer, 20,000 self-generated steps).
- ``cn+real(pixel)``: that CN fine-tuned on real train images with a pixel loss through the frozen G,
  plus the self-generated z-regression as the prior term.
- ``cn+real(pixel+D)``: the same plus a discriminator-feature term (D's activations of ``G(ẑ)`` and of
  ``x`` at several depths, each normalised by the target's energy): D as the perceptual network.
- ``multi-depth``: a new encoder reading D at three depths (projected by 1x1 convolutions) and the image
  itself, trained first on self-generated pairs (z-regression) and then like ``cn+real(pixel+D)``.
- ``multi-depth+iter``: one feed-forward correction step on top of ``multi-depth``: a network reading D's
  multi-depth features of the target and of ``G(z0)``, and ``z0``, predicting ``z1 - z0``; trained on real
  images with the same losses.

Columns: PSNR/SSIM (the library's metric), encode seconds per 1k images, latent recovery on fresh
``G(z)`` (MSE and cosine to the true ``z``), the codes' mean squared norm per dimension on real images
(the prior has 1.0), and hybrid-50 (50 Adam steps of ``discinvert.optimize.optimize_latents`` from
each start). Writes ``docs/lab/encoder_ablations.md`` and ``docs/results/encoder_ablations.json``.

    python -m benchmarks.encoder.ablation                 # the full run (about 30 min on 2 CPU cores)
    python -m benchmarks.encoder.ablation --quick --out /tmp/abl.md --json /tmp/abl.json   # smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import command_line, describe_device, finish_run
from discinvert import zoo
from discinvert.fitting.fit_config import ADAM_BETAS
from discinvert.guard import frozen
from discinvert.metrics import image_quality
from discinvert.optimize import optimize_latents
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]
DEPTHS = ("main.1", "main.4", "main.7")  # D's activations at 14x14, 7x7 and 4x4 (list_layers names)


class Taps:
    """D's activations at several layers in one forward pass (hooks alive for that pass only)."""

    def __init__(self, discriminator: nn.Module, names: Sequence[str]) -> None:
        self.discriminator = discriminator
        self.layers = [discriminator.get_submodule(n) for n in names]

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        captured: list[torch.Tensor] = []
        handles = [layer.register_forward_hook(lambda _m, _i, out: captured.append(out)) for layer in self.layers]
        try:
            self.discriminator(images.clone())
        finally:
            for handle in handles:
                handle.remove()
        return captured


class MultiDepthEncoder(nn.Module):
    """Image + D's features at three depths → code: 1x1 projections, pooled to at most 7x7, then an MLP."""

    def __init__(self, channels: Sequence[int], latent_dim: int, width: int = 1024, projected: int = 32) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Conv2d(c, projected, 1) for c in channels)
        sizes = [projected * 7 * 7, projected * 7 * 7, projected * 4 * 4]
        self.mlp = nn.Sequential(
            nn.Linear(sum(sizes) + 28 * 28, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2),
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2),
            nn.Linear(width, latent_dim),
        )

    def features(self, images: torch.Tensor, depths: list[torch.Tensor]) -> torch.Tensor:
        parts = []
        for projection, feature in zip(self.projections, depths):
            h = projection(feature)
            if h.shape[-1] > 7:
                h = F.avg_pool2d(h, 2)
            parts.append(h.flatten(1))
        return torch.cat([*parts, images.flatten(1)], dim=1)

    def forward(self, images: torch.Tensor, depths: list[torch.Tensor]) -> torch.Tensor:
        return self.mlp(self.features(images, depths))


class TrunkEncoder(nn.Module):
    """A trainable copy of D up to the feature layer, read by a copy of the paper CN: D's features adapted to inversion.

    The user's D is never trained: the copy starts from its weights (BatchNorm kept in eval mode,
    so D's running statistics are used as they are) and the CN from the bundled paper CN.
    """

    def __init__(self, discriminator: nn.Module, layer: str, cn: nn.Module) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(discriminator)
        for parameter in self.trunk.parameters():
            parameter.requires_grad_(True)
        self.layer = layer
        self.cn = copy.deepcopy(cn)

    def train(self, mode: bool = True) -> "TrunkEncoder":
        super().train(mode)
        self.trunk.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.cn(Taps(self.trunk, [self.layer])(images)[0].flatten(1))


class StepNetwork(nn.Module):
    """One correction: (features of x, features of G(z0), z0) → z1 - z0."""

    def __init__(self, encoder: MultiDepthEncoder, latent_dim: int, width: int = 1024) -> None:
        super().__init__()
        self.reader = copy.deepcopy(encoder)  # starts from the trained reader's projections
        size = self.reader.mlp[0].in_features
        self.mlp = nn.Sequential(
            nn.Linear(2 * size + latent_dim, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2),
            nn.Linear(width, latent_dim),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)  # the untrained step changes nothing

    def forward(self, x: torch.Tensor, dx: list[torch.Tensor], g: torch.Tensor, dg: list[torch.Tensor],
                z0: torch.Tensor) -> torch.Tensor:
        a, b = self.reader.features(x, dx), self.reader.features(g, dg)
        return z0 + self.mlp(torch.cat([a, b, z0], dim=1))


def _feature_loss(taps: Taps, fake: torch.Tensor, target_depths: list[torch.Tensor]) -> torch.Tensor:
    fake_depths = taps(fake)
    terms = [F.mse_loss(f, t) / (t.pow(2).mean() + 1e-8) for f, t in zip(fake_depths, target_depths)]
    return torch.stack(terms).mean()


def _batches(images: torch.Tensor, batch: int, rng: torch.Generator) -> Callable[[], torch.Tensor]:
    def draw() -> torch.Tensor:
        return images[torch.randint(0, len(images), (batch,), generator=rng)]

    return draw


def _adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr, betas=ADAM_BETAS)


def train_real(encode: Callable[[torch.Tensor], torch.Tensor], module: nn.Module, G: nn.Module, taps: Taps,
               draw_real: Callable[[], torch.Tensor], *, steps: int, lr: float, feature_weight: float,
               prior_weight: float, prior_pairs: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Real-image stage: pixel (+ D-feature) loss through the frozen G, plus z-regression on fresh pairs."""
    optimizer = _adam(module, lr)
    module.train()
    for _ in range(steps):
        x = draw_real()
        with torch.no_grad():
            target_depths = taps(x) if feature_weight > 0 else []
        fake = G(encode(x).reshape(-1, 100, 1, 1))
        loss = F.mse_loss(fake, x)
        if feature_weight > 0:
            loss = loss + feature_weight * _feature_loss(taps, fake, target_depths)
        if prior_weight > 0:
            gx, z = prior_pairs()
            loss = loss + prior_weight * F.mse_loss(encode(gx), z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    module.eval()


def train_self(encode: Callable[[torch.Tensor], torch.Tensor], module: nn.Module,
               prior_pairs: Callable[[], tuple[torch.Tensor, torch.Tensor]], *, steps: int, lr: float) -> None:
    """Self-generated stage: regress z on D's features of G(z), with a cosine-decayed lr."""
    optimizer = _adam(module, lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    module.train()
    for _ in range(steps):
        gx, z = prior_pairs()
        loss = F.mse_loss(encode(gx), z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    module.eval()


def evaluate(name: str, encode: Callable[[torch.Tensor], torch.Tensor], G: nn.Module, holdout: torch.Tensor,
             fresh: tuple[torch.Tensor, torch.Tensor], refine_steps: int, seconds_fit: float) -> dict[str, Any]:
    with torch.no_grad():
        started = time.perf_counter()
        codes = torch.cat([encode(holdout[i : i + 250]) for i in range(0, len(holdout), 250)])
        seconds = (time.perf_counter() - started) * 1000 / len(holdout)
        recon = torch.cat([G(codes[i : i + 250].reshape(-1, 100, 1, 1)) for i in range(0, len(codes), 250)])
        fresh_images, fresh_z = fresh
        recovered = encode(fresh_images)
    psnr, ssim = image_quality(holdout, recon)
    refined = optimize_latents(G, holdout, codes.reshape(-1, 100, 1, 1), steps=refine_steps, batch_size=250)
    with torch.no_grad():
        refined_images = torch.cat([G(refined[i : i + 250]) for i in range(0, len(refined), 250)])
    r_psnr, r_ssim = image_quality(holdout, refined_images)
    return {
        "encoder": name, "psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "encode_s_per_1k": seconds,
        "recovery_mse": float(F.mse_loss(recovered, fresh_z)),
        "recovery_cosine": float(F.cosine_similarity(recovered, fresh_z, dim=1).mean()),
        "code_sq_norm_per_dim": float(codes.pow(2).mean()),
        f"hybrid{refine_steps}_psnr": float(r_psnr.mean()), f"hybrid{refine_steps}_ssim": float(r_ssim.mean()),
        "fit_seconds": round(seconds_fit, 1),
    }


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    rng = torch.Generator().manual_seed(args.seed)
    G, D, inverter = zoo.load("dcgan-fashion-mnist")
    images, _ = load_fashion_mnist("train", root=args.data_root)
    x_all = to_model_range(images).float()
    train, holdout = x_all[: len(x_all) - args.holdout], x_all[len(x_all) - args.holdout :]
    if args.train_limit:
        train = train[: args.train_limit]
    taps = Taps(D, args.feature_depths)  # the D-feature term
    depth_taps = Taps(D, DEPTHS)  # what the multi-depth encoder reads
    cn_tap = Taps(D, ["main.7"])
    draw_real = _batches(train, args.batch, rng)

    def prior_pairs() -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(args.batch, 100, generator=rng)
        with torch.no_grad():
            return G(z.reshape(-1, 100, 1, 1)), z

    fresh_z = torch.randn(512, 100, generator=torch.Generator().manual_seed(12345))
    with torch.no_grad():
        fresh = (G(fresh_z.reshape(-1, 100, 1, 1)), fresh_z)
    rows = []
    with frozen(G, D):
        def paper_encode(x: torch.Tensor) -> torch.Tensor:
            return inverter.encode(x, range_check="ignore").reshape(len(x), -1)

        rows.append(evaluate("paper-cn", paper_encode, G, holdout, fresh, args.refine_steps, 0.0))
        print(json.dumps(rows[-1]), flush=True)

        variants = set(args.variants.split(","))
        if "trunk" in variants:
            for trunk_lr in args.trunk_lrs:
                trunk = TrunkEncoder(D, "main.7", inverter.cn)
                started = time.perf_counter()
                train_real(trunk, trunk, G, taps, draw_real, steps=args.real_steps, lr=trunk_lr,
                           feature_weight=args.feature_weight, prior_weight=args.prior_weight, prior_pairs=prior_pairs)
                rows.append(evaluate(f"D-trunk copy + CN, real (pixel+D), lr {trunk_lr:g}", trunk, G, holdout, fresh,
                                     args.refine_steps, time.perf_counter() - started))
                print(json.dumps(rows[-1]), flush=True)
        if not variants & {"cn", "cn-prior", "multi"}:
            return _result(args, argv, x_all, rows)

        cn_variants: list[tuple[str, float, float]] = []
        if "cn" in variants and not args.skip_cn:
            cn_variants.append(("cn+real(pixel)", 0.0, args.prior_weight))
            cn_variants.append(("cn+real(pixel+D)", args.feature_weight, args.prior_weight))
        if "cn-prior" in variants:
            cn_variants += [(f"cn+real(pixel+D), prior weight {w:g}", args.feature_weight, w) for w in args.prior_weights]
        for name, feature_weight, prior_weight in cn_variants:
            cn = copy.deepcopy(inverter.cn)

            def cn_encode(x: torch.Tensor, cn: nn.Module = cn) -> torch.Tensor:
                return cn(cn_tap(x)[0].flatten(1))

            started = time.perf_counter()
            train_real(cn_encode, cn, G, taps, draw_real, steps=args.real_steps, lr=args.real_lr,
                       feature_weight=feature_weight, prior_weight=prior_weight, prior_pairs=prior_pairs)
            rows.append(evaluate(name, cn_encode, G, holdout, fresh, args.refine_steps, time.perf_counter() - started))
            print(json.dumps(rows[-1]), flush=True)

        if "multi" not in variants:
            return _result(args, argv, x_all, rows)
        encoder = MultiDepthEncoder([64, 128, 256], 100)

        def multi_encode(x: torch.Tensor) -> torch.Tensor:
            return encoder(x, depth_taps(x))

        started = time.perf_counter()
        train_self(multi_encode, encoder, prior_pairs, steps=args.self_steps, lr=args.self_lr)
        rows.append(evaluate("multi-depth (self-generated only)", multi_encode, G, holdout, fresh, args.refine_steps,
                             time.perf_counter() - started))
        print(json.dumps(rows[-1]), flush=True)
        train_real(multi_encode, encoder, G, taps, draw_real, steps=args.real_steps, lr=args.real_lr,
                   feature_weight=args.feature_weight, prior_weight=args.prior_weight, prior_pairs=prior_pairs)
        rows.append(evaluate("multi-depth (+ real pixel+D)", multi_encode, G, holdout, fresh, args.refine_steps,
                             time.perf_counter() - started))
        print(json.dumps(rows[-1]), flush=True)

        encoder.eval()
        steps: list[StepNetwork] = []

        def iterate(x: torch.Tensor, k: int) -> torch.Tensor:
            """The codes after ``k`` corrections; the last step network keeps its graph (it is trained)."""
            with torch.no_grad():
                z = encoder(x, depth_taps(x))
                dx = depth_taps(x)
            for index, step in enumerate(steps[:k]):
                with torch.no_grad():
                    g = G(z.detach().reshape(-1, 100, 1, 1))
                    dg = depth_taps(g)
                if index < k - 1:
                    with torch.no_grad():
                        z = step(x, dx, g, dg, z)
                else:
                    z = step(x, dx, g, dg, z.detach())
            return z

        for k in range(1, args.iterations + 1):
            steps.append(StepNetwork(encoder, 100))
            for earlier in steps[:-1]:
                earlier.eval()

            def iter_encode(x: torch.Tensor, k: int = k) -> torch.Tensor:
                return iterate(x, k)

            train_real(iter_encode, steps[-1], G, taps, draw_real, steps=args.real_steps, lr=args.real_lr,
                       feature_weight=args.feature_weight, prior_weight=0.0, prior_pairs=prior_pairs)
            label = "multi-depth + 1 iteration" if k == 1 else f"multi-depth + {k} iterations"
            rows.append(evaluate(label, iter_encode, G, holdout, fresh, args.refine_steps,
                                 time.perf_counter() - started))
            print(json.dumps(rows[-1]), flush=True)
    return _result(args, argv, x_all, rows)


def _result(args: argparse.Namespace, argv: list[str] | None, x_all: torch.Tensor, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"command": command_line(__spec__, argv), "device": describe_device("cpu"),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "holdout": f"Fashion-MNIST train[{len(x_all) - args.holdout}:] ({args.holdout} images, never trained on)",
            "rows": rows}


def write_page(result: dict[str, Any], path: Path) -> None:
    steps = result["settings"]["refine_steps"]
    lines = [
        f"# Encoder ablations (issue 17, {result['settings'].get('title', 'first round')})",
        "",
        "Written by `benchmarks/encoder/ablation.py`; the figures come from this run:",
        "",
        f"    {result['command']}",
        "",
        f"Device: {result['device']}. Scored on {result['holdout']}; the test split is not used, so nothing",
        "here is tuned on it. The bundled DCGAN and its inverter; every encoder reads only D (and the image).",
        "",
        f"| encoder | PSNR dB | SSIM | encode s / 1k | hybrid-{steps} PSNR | latent recovery MSE / cosine | codes' mean z² (prior 1.0) | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['encoder']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['encode_s_per_1k']:.2f} | "
            f"{r[f'hybrid{steps}_psnr']:.2f} | {r['recovery_mse']:.3f} / {r['recovery_cosine']:.3f} | "
            f"{r['code_sq_norm_per_dim']:.3f} | {r['fit_seconds']} |"
        )
    lines += ["", "Settings: " + ", ".join(f"`{k}={v}`" for k, v in result["settings"].items()
                                          if k not in ("out", "json", "data_root")), ""]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images scored, never trained on")
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N train images (0: all)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--real-steps", type=int, default=1500, help="steps of each real-image stage")
    parser.add_argument("--self-steps", type=int, default=3000, help="self-generated steps of the multi-depth encoder")
    parser.add_argument("--real-lr", type=float, default=1e-4)
    parser.add_argument("--self-lr", type=float, default=1e-3)
    parser.add_argument("--feature-weight", type=float, default=0.5)
    parser.add_argument("--prior-weight", type=float, default=0.1)
    parser.add_argument("--refine-steps", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=1, help="feed-forward correction steps, each trained on "
                        "the codes of the ones before (a row per k)")
    parser.add_argument("--skip-cn", action="store_true", help="skip the two fine-tuned-CN rows")
    parser.add_argument("--variants", default="cn,multi", help="comma list: cn (the fine-tuned CN rows), cn-prior "
                        "(the CN fine-tuned with pixel+D at each --prior-weights), multi (the multi-depth encoder and "
                        "its iterations), trunk (a trainable copy of D's trunk + the CN)")
    parser.add_argument("--prior-weights", type=float, nargs="+", default=[0.1, 0.3, 1.0],
                        help="prior weights of the cn-prior rows")
    parser.add_argument("--feature-depths", nargs="+", default=list(DEPTHS),
                        help="D's layers the D-feature term reads (the library's stage reads the feature layer, main.7)")
    parser.add_argument("--trunk-lrs", type=float, nargs="+", default=[1e-4], help="learning rates of the trunk rows")
    parser.add_argument("--title", default="first round", help="the page title's round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "encoder_ablations.md")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "encoder_ablations.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.holdout, args.train_limit, args.real_steps, args.self_steps, args.refine_steps = 64, 512, 3, 3, 2
    return finish_run(args, argv, run, write_page)


if __name__ == "__main__":
    raise SystemExit(main())
