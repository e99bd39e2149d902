#!/usr/bin/env python
"""CN shapes on one stream of pairs: which lighter connection network matches the paper's (issue 18).

    python -m benchmarks.speed.cn_shapes --shapes mlp:1024x1024 proj:64/512x512 lowrank:128/1024x512
    python -m benchmarks.speed.cn_shapes --quick --out /tmp/shapes.md

Every candidate is trained on the **same** batches of fresh pairs ``(D_f(G(z)), z)`` of the bundled
DCGAN (generated once per update, bf16 autocast and channels-last copies as the library's
``'auto'`` levers do on this CPU), with the library's optimiser and schedule (Adam 2e-3, betas
0.5/0.999, warm-up then cosine, batches of 256), so the comparison is of shapes alone, at a fraction
of the cost of one fit per shape. Each keeps its best-validation weights (1,024 held-out pairs,
as ``fit_inverter``), and is then scored by reconstruction PSNR on Fashion-MNIST train[59000:]
(1,000 training images never trained on): the figure every choice is made on. The test split is
not used.

Shapes (``kind:args``; BatchNorm and LeakyReLU(0.2) after every hidden layer, as the paper's CN):

- ``mlp:1024x1024``: the paper's CN, flattened features into an MLP of these hidden widths;
- ``proj:C/WxW``: a 1x1 convolution of D's feature map to ``C`` channels (BatchNorm, LeakyReLU)
  before flattening, then the MLP;
- ``lowrank:R/WxW``: a linear map of the flattened features to ``R`` values (no nonlinearity: a
  rank-``R`` first layer), then the MLP;
- ``pool:K/WxW``: ``K x K`` average pooling of the feature map before flattening, then the MLP;
- ``fact:R/WxW``: the MLP with every hidden layer factorised through rank ``R`` (a linear map to
  ``R`` values, then to the width): wide nonlinear layers at few parameters.

Any shape may carry the prefix ``std+`` (D's features standardised per value with the mean and
standard deviation of 4,096 fresh pairs drawn before training, fixed afterwards) and the suffix
``@LR`` (its own peak learning rate instead of ``--lr``), e.g. ``std+mlp:1024x1024@5e-4``.
``--gan DIR`` trains on a GAN written by ``benchmarks.paper.train_gan`` (its ``config.json`` names
the feature layer) instead of the bundled DCGAN.

Reports parameters, the file size at 16 bits per weight (how the zoo stores inverters), the
CN's own time per 1,000 images, the validation MSE of the latents and the held-out PSNR.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import LayerFeatures, autocast, channels_last_copy, command_line, describe_device, write_marked_section
from discinvert import zoo
from discinvert.metrics import image_quality
from discinvert.network import mlp
from discinvert.fitting.fit_config import ADAM_BETAS
from discinvert.fitting.updates import lr_factor
from discinvert.zoo.architectures import load_gan
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]


class Shaped(nn.Module):
    """A CN candidate: an optional reshaping front (projection, low rank, pooling), then an MLP."""

    def __init__(self, spec: str, feature_shape: tuple[int, ...], out_features: int,
                 stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.spec = spec
        base = spec.split("@", 1)[0]
        standardise = base.startswith("std+")
        base = base.removeprefix("std+")
        if standardise and stats is None:
            raise SystemExit(f"--shapes: {spec!r} needs feature statistics")
        mean, std = stats if standardise and stats is not None else (torch.zeros(1), torch.ones(1))
        self.register_buffer("mean", mean.reshape(-1))
        self.register_buffer("std", std.reshape(-1))
        kind, _, args = base.partition(":")
        front_arg, _, widths = args.rpartition("/")
        hidden = tuple(int(w) for w in widths.split("x")) if widths else ()
        channels, height, width = feature_shape
        self.feature_shape = feature_shape
        if kind == "mlp":
            self.front: nn.Module = nn.Flatten()
            flat = channels * height * width
        elif kind == "proj":
            c = int(front_arg)
            self.front = nn.Sequential(nn.Conv2d(channels, c, 1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2), nn.Flatten())
            flat = c * height * width
        elif kind == "lowrank":
            flat = int(front_arg)
            self.front = nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, flat))
        elif kind == "pool":
            k = int(front_arg)
            self.front = nn.Sequential(nn.AvgPool2d(k), nn.Flatten())
            flat = channels * (height // k) * (width // k)
        elif kind == "fact":
            rank = int(front_arg)
            self.front = nn.Flatten()
            layers: list[nn.Module] = []
            width = channels * height * width
            for size in hidden:
                layers += [nn.Linear(width, rank, bias=False), nn.Linear(rank, size), nn.BatchNorm1d(size),
                           nn.LeakyReLU(0.2)]
                width = size
            self.layers = nn.Sequential(*layers, nn.Linear(width, out_features))
            return
        else:
            raise SystemExit(f"--shapes: unknown kind {kind!r} in {spec!r}")
        self.layers = mlp(flat, hidden, out_features, batch_norm=True, negative_slope=0.2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = (features.reshape(len(features), -1) - self.mean) / self.std
        return self.layers(self.front(features.reshape(-1, *self.feature_shape)))


def peak_lr(spec: str, default: float) -> float:
    """The shape's own peak learning rate (its ``@LR`` suffix), else ``default``."""
    _, at, value = spec.partition("@")
    return float(value) if at else default


def cn_ms_per_1k(network: nn.Module, features: torch.Tensor) -> float:
    """The CN's own time for 1,000 feature rows (median of 5, after a warm-up)."""
    network.eval()
    batch = features[:1000]
    times = []
    with torch.no_grad():
        network(batch)
        for _ in range(5):
            start = time.perf_counter()
            network(batch)
            times.append(time.perf_counter() - start)
    return 1000.0 * sorted(times)[2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["mlp:1024x1024", "mlp:256", "proj:64/512x512",
                                                         "lowrank:128/1024x512", "pool:2/512x512"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None, help="Fashion-MNIST IDX files (default: Debian's)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "fit_speed.md")
    parser.add_argument("--section", default="cn_shapes")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--gan", type=Path, default=None,
                        help="a GAN folder written by benchmarks.paper.train_gan (default: the bundled DCGAN)")
    parser.add_argument("--teacher", action="store_true",
                        help="train on the bundled paper inverter's codes of each batch instead of the true z "
                             "(distillation); validation still scores against the true z")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every = 6, 3
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    command = command_line(__spec__, argv)
    print(command, flush=True)

    if args.gan is not None and args.teacher:
        raise SystemExit("--teacher distils the bundled paper inverter: it needs the bundled DCGAN, not --gan")
    gan_dir = args.gan if args.gan is not None else zoo.path("dcgan-fashion-mnist") / "gan"
    generator, discriminator, gan_config, _ = load_gan(gan_dir)
    generator.eval(), discriminator.eval()
    layer = gan_config.feature_layer
    latent_shape = tuple(gan_config.latent_shape)
    features = LayerFeatures(discriminator, layer)
    fast_g, fast_d = channels_last_copy(generator), channels_last_copy(discriminator)
    fast_features = LayerFeatures(fast_d, layer)
    rng = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        probe = discriminator.get_submodule(layer)
        captured: list[torch.Tensor] = []
        handle = probe.register_forward_hook(lambda _m, _i, out: captured.append(out))
        discriminator(generator(torch.randn(2, *latent_shape, generator=rng)))
        handle.remove()
        feature_shape = tuple(captured[0].shape[1:])
        z_val = torch.randn(1024, *latent_shape, generator=rng)
        f_val = torch.cat([features(generator(z_val[i : i + 256])) for i in range(0, 1024, 256)])
        z_val = z_val.reshape(1024, -1)
        stats = None
        if any(spec.startswith("std+") for spec in args.shapes):  # its own generator: the batches stay as without
            z_stats = torch.randn(4096, *latent_shape, generator=torch.Generator().manual_seed(args.seed + 1))
            f_stats = torch.cat([features(generator(z_stats[i : i + 256])) for i in range(0, 4096, 256)])
            f_stats = f_stats.reshape(4096, -1)
            stats = (f_stats.mean(0), f_stats.std(0).clamp_min(1e-6))
    out_features = z_val.shape[1]
    n_heldout = 200 if args.quick else 1000
    train_x = load_fashion_mnist("train", root=args.data_root)[0]
    heldout = to_model_range(train_x[59000 : 59000 + n_heldout])
    with torch.no_grad():
        f_heldout = torch.cat([features(heldout[i : i + 500]) for i in range(0, len(heldout), 500)])

    teacher = None
    if args.teacher:
        teacher = zoo.load("dcgan-fashion-mnist")[2].cn.float().eval()
    nets = {spec: Shaped(spec, feature_shape, out_features, stats) for spec in args.shapes}
    optims = {spec: torch.optim.Adam(net.parameters(), lr=peak_lr(spec, args.lr), betas=ADAM_BETAS, fused=True)
              for spec, net in nets.items()}
    warmup = max(1, min(100, args.steps // 20))
    best: dict[str, tuple[float, int, dict[str, torch.Tensor]]] = {s: (math.inf, 0, {}) for s in nets}
    train_seconds = {s: 0.0 for s in nets}
    curves: dict[str, list[list[float]]] = {s: [] for s in nets}
    gen_seconds = 0.0
    for net in nets.values():
        net.train()
    for step in range(args.steps):
        start = time.perf_counter()
        with torch.no_grad(), autocast("cpu", torch.bfloat16):
            z = torch.randn(args.batch_size, *latent_shape, generator=rng)
            inputs = fast_features(fast_g(z.contiguous(memory_format=torch.channels_last))).float()
        targets = z.reshape(args.batch_size, -1)
        if teacher is not None:
            with torch.no_grad():
                targets = teacher(inputs)
        gen_seconds += time.perf_counter() - start
        factor = lr_factor(step, args.steps, warmup)
        for spec, net in nets.items():
            start = time.perf_counter()
            for group in optims[spec].param_groups:
                group["lr"] = peak_lr(spec, args.lr) * factor
            with autocast("cpu", torch.bfloat16):
                prediction = net(inputs)
            loss = F.mse_loss(prediction.float(), targets)
            optims[spec].zero_grad(set_to_none=True)
            loss.backward()
            optims[spec].step()
            train_seconds[spec] += time.perf_counter() - start
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            for spec, net in nets.items():
                net.eval()
                with torch.no_grad():
                    error = float(F.mse_loss(net(f_val), z_val))
                net.train()
                curves[spec].append([step + 1, round(error, 6)])
                if error < best[spec][0]:
                    best[spec] = (error, step + 1, copy.deepcopy(net.state_dict()))
            print(f"step {step + 1}: " + ", ".join(f"{s} {curves[s][-1][1]:.4f}" for s in nets), flush=True)

    rows = []
    for spec, net in nets.items():
        net.load_state_dict(best[spec][2])
        net.eval()
        with torch.no_grad():
            codes = net(f_heldout).reshape(-1, *latent_shape)
            recon = torch.cat([generator(codes[i : i + 500]) for i in range(0, len(codes), 500)])
            psnr = float(image_quality(heldout, recon)[0].mean())
            code_sq = float(codes.reshape(len(codes), -1).pow(2).mean())
        params = sum(p.numel() for p in net.parameters())
        buffers = sum(b.numel() for b in net.buffers())
        rows.append({"shape": spec, "parameters": params, "mb_16bit": round(2 * (params + buffers) / 1e6, 2),
                     "cn_ms_per_1k": round(cn_ms_per_1k(net, f_heldout.repeat(2, 1)[:1000]), 2),
                     "ms_per_update": round(1000 * train_seconds[spec] / args.steps, 1),
                     "best_val_mse": round(best[spec][0], 5), "best_step": best[spec][1],
                     "heldout_psnr": round(psnr, 3), "code_sq_per_dim": round(code_sq, 3), "curve": curves[spec]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)

    if teacher is not None:
        with torch.no_grad():
            codes = teacher(f_heldout).reshape(-1, *latent_shape)
            recon = torch.cat([generator(codes[i : i + 500]) for i in range(0, len(codes), 500)])
            rows.append({"shape": "teacher: the bundled paper inverter (`mlp:1024x1024`, its own fit)",
                         "parameters": sum(p.numel() for p in teacher.parameters()),
                         "mb_16bit": round(2 * sum(t.numel() for t in teacher.state_dict().values()) / 1e6, 2),
                         "cn_ms_per_1k": None, "ms_per_update": None,
                         "best_val_mse": round(float(F.mse_loss(teacher(f_val), z_val)), 5), "best_step": None,
                         "heldout_psnr": round(float(image_quality(heldout, recon)[0].mean()), 3),
                         "code_sq_per_dim": round(float(codes.pow(2).mean()), 3), "curve": []})
    lines = [f"Written by `benchmarks/speed/cn_shapes.py` ({describe_device('cpu')}, "
             f"torch {torch.__version__}):", "", f"    {command}", "",
             f"All shapes trained on the same {args.steps:,} batches of {args.batch_size} fresh pairs of "
             f"{'the bundled DCGAN' if args.gan is None else f'the GAN `{args.gan}`'} (feature layer `{layer}`, {feature_shape}), bf16 autocast and channels-last generation; "
             "each keeps its best-validation weights. *Held-out PSNR*: reconstructions of Fashion-MNIST "
             f"train[59000:{59000 + n_heldout}] (never trained on). *MB*: the file at 16 bits per value "
             f"(weights and BatchNorm statistics). Generation took {1000 * gen_seconds / args.steps:.1f} ms per update "
             "(shared by all shapes)." + (" `std+`: features standardised with the statistics of 4,096 other fresh "
                                         "pairs; `@LR`: the shape's own peak learning rate (else "
                                         f"{args.lr:g})." if any(("std+" in s or "@" in s) for s in args.shapes)
                                         else "") + (" **Distilled**: each shape trained on the bundled paper inverter's codes "
                                         "of each batch (its last row) instead of the true z; the validation MSE is "
                                         "still against the true z." if teacher is not None else ""), "",
             "| shape | parameters | MB (16-bit) | CN ms / 1k images | CN ms / update | best val. MSE (step) | held-out PSNR dB | code mean sq. / dim |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = r["shape"] if r["best_step"] is None else f"`{r['shape']}`"
        step = "" if r["best_step"] is None else f" ({r['best_step']})"
        lines.append(f"| {shape} | {r['parameters']:,} | {r['mb_16bit']} | {r['cn_ms_per_1k'] or '-'} | "
                     f"{r['ms_per_update'] or '-'} | {r['best_val_mse']:.4f}{step} | {r['heldout_psnr']:.2f} | "
                     f"{r['code_sq_per_dim']:.3f} |")
    write_marked_section(args.out, args.section, "cpu", lines, "CN shapes on one stream of pairs")
    if args.json is not None:
        args.json.write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
