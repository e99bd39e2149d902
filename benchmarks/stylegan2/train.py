#!/usr/bin/env python
"""Train the reference StyleGAN2 (``architecture.py``) on the Fashion-MNIST *train* split padded to 32x32.

Usage::

    python -m benchmarks.stylegan2.train --out DIR --iterations N [--batch-size 32] [--max-seconds S]
        [--checkpoint-every 250] [--seed 0] [--data-root PATH] [--limit N] [--threads N] [--quick]
        [--channels 128,128,64,32] [--z-dim 128] [--w-dim 128] [--mapping-layers 4]

The recipe of StyleGAN2 (config F, less the path length regulariser): the non-saturating logistic loss; R1 on
reals (gamma 0.01) every 16 D steps (lazy, its loss scaled by 16, D's Adam learning rate and betas adjusted by
16/17); style mixing with probability 0.9; Adam lr 0.002, betas (0, 0.99); an EMA generator whose half-life is
10,000 images (ramped up over the first 5 % of images seen); ``w_avg`` tracked by the mapping network for
truncation. One iteration is one D step and one G step on a batch each, drawn with replacement from the split.

Resumable: when ``DIR`` holds a training state (``train_state.safetensors`` + ``train_state.json``: the weights of
G, D and the EMA G, both optimisers' states and torch's RNG; nothing pickled) the run continues from it until
``--iterations`` in all, bit-identically to a run that never stopped (same settings and threads). The model
sizes and training settings must match the stored ones. ``--max-seconds`` ends the run before an iteration
that would pass the budget; the state is written every ``--checkpoint-every`` iterations and at the end.

Output in ``DIR``: the training state, the GAN to use (``generator.safetensors``: the EMA G,
``discriminator.safetensors``, ``config.json`` with the training record under ``extra``; see
``architecture.save_stylegan2``) and ``samples.png``, an 8x8 grid of the EMA G's samples for a fixed ``z``
(``noise_mode="const"``, no truncation). ``--quick``: a smoke run (256 images, batch 8, 3 iterations unless
``--iterations`` says otherwise). Only the train split is read; the test split is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from benchmarks.common import command_line, finite_or_none
from benchmarks.paper.train_gan import GRID, tile_grid, write_png_gray
from benchmarks.stylegan2.architecture import (
    StyleGAN2Config,
    StyleGAN2Generator,
    build_stylegan2,
    ema_copy,
    mixed_ws,
    save_stylegan2,
    update_ema,
)
from discinvert.zoo.datasets import from_model_range, load_fashion_mnist, to_model_range

LR: Final[float] = 0.002
BETAS: Final[tuple[float, float]] = (0.0, 0.99)
R1_GAMMA: Final[float] = 0.01
R1_INTERVAL: Final[int] = 16
MIXING: Final[float] = 0.9
EMA_IMAGES: Final[float] = 10_000.0
EMA_RAMPUP: Final[float] = 0.05
PAD: Final[int] = 2  # 28 + 2 * 2 = 32
STATE_TENSORS: Final[str] = "train_state.safetensors"
STATE_JSON: Final[str] = "train_state.json"
_STATE_FORMAT: Final[str] = "benchmarks.stylegan2.train_state"
QUICK_LIMIT: Final[int] = 256
QUICK_BATCH: Final[int] = 8
QUICK_ITERATIONS: Final[int] = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (holds the state to resume from)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations in all, resumed ones included")
    parser.add_argument("--batch-size", type=int, default=None, help="images per D and per G step (default 32)")
    parser.add_argument("--max-seconds", type=float, default=None, help="end before an iteration that would pass this")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="write the state every N iterations")
    parser.add_argument("--log-every", type=int, default=25, help="print losses and seconds every N iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 when other processes hold the cores)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_LIMIT} images, batch {QUICK_BATCH}, {QUICK_ITERATIONS} iterations")
    defaults = StyleGAN2Config()
    parser.add_argument("--channels", default=",".join(map(str, defaults.channels)),
                        help="feature maps at 4, 8, 16, 32 (G and D)")
    parser.add_argument("--z-dim", type=int, default=defaults.z_dim)
    parser.add_argument("--w-dim", type=int, default=defaults.w_dim)
    parser.add_argument("--mapping-layers", type=int, default=defaults.mapping_layers)
    args = parser.parse_args(argv)
    if args.iterations is None:
        if not args.quick:
            parser.error("--iterations is required (except with --quick)")
        args.iterations = QUICK_ITERATIONS
    if args.batch_size is None:
        args.batch_size = QUICK_BATCH if args.quick else 32
    if args.quick and args.limit is None:
        args.limit = QUICK_LIMIT
    if args.iterations < 1 or args.batch_size < 2 or args.checkpoint_every < 1 or args.log_every < 1 or (
            args.threads is not None and args.threads < 1):
        parser.error("--iterations, --checkpoint-every, --log-every and --threads must be >= 1 and --batch-size >= 2")
    try:
        channels = tuple(int(c) for c in args.channels.split(","))
        args.config = StyleGAN2Config(z_dim=args.z_dim, w_dim=args.w_dim, mapping_layers=args.mapping_layers,
                                      channels=channels)
    except ValueError as exc:
        parser.error(f"model sizes: {exc}")
    return args


def padded_train_images(*, data_root: Path | None, limit: int | None) -> torch.Tensor:
    """The train split as ``(N, 1, 32, 32)`` in ``[-1, 1]``, padded with the background value -1."""
    images, _ = load_fashion_mnist("train", root=data_root)
    if limit is not None:
        images = images[:limit]
    return F.pad(to_model_range(images), (PAD, PAD, PAD, PAD), value=-1.0)


def sample_grid(generator: StyleGAN2Generator, z: torch.Tensor, *, pad: int = 2) -> np.ndarray:
    """``generator``'s images for ``z`` (``GRID**2`` codes, const noise) tiled into one uint8 image."""
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        images = from_model_range(generator(z, noise_mode="const"))
    generator.train(was_training)
    return tile_grid(images, pad=pad)


class Trainer:
    """G, D, the EMA G and their optimisers; :meth:`step` runs one iteration."""

    def __init__(self, config: StyleGAN2Config, settings: dict[str, Any]) -> None:
        self.config, self.settings = config, settings
        self.G, self.D = build_stylegan2(config)
        self.G_ema = ema_copy(self.G)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=LR, betas=BETAS)
        c = R1_INTERVAL / (R1_INTERVAL + 1)  # lazy regularisation: the paper's correction of D's Adam
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=LR * c, betas=(BETAS[0] ** c, BETAS[1] ** c))
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0

    def step(self, data: torch.Tensor) -> dict[str, float]:
        """One D step (with R1 every ``R1_INTERVAL``) and one G step, then the EMA update; returns the logistic
        losses (D's without the R1 term) and R1 (NaN where it was not computed)."""
        batch = int(self.settings["batch_size"])
        G, D = self.G, self.D
        # D: the logistic loss on fakes and reals, R1 on reals lazily.
        D.requires_grad_(True)
        real = data[torch.randint(0, data.shape[0], (batch,))]
        z = torch.randn(batch, self.config.z_dim)
        with torch.no_grad():
            fake = G.synthesis(mixed_ws(G.mapping, z, probability=MIXING), noise_mode="random")
        regularise = self.iteration % R1_INTERVAL == 0
        real = real.detach().requires_grad_(regularise)
        logits_real = D(real)
        logistic = F.softplus(D(fake)).mean() + F.softplus(-logits_real).mean()
        loss_d, r1 = logistic, torch.zeros(())
        if regularise:
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            r1 = grad.square().sum(dim=(1, 2, 3)).mean()
            loss_d = loss_d + r1 * (R1_GAMMA / 2) * R1_INTERVAL
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # G: the non-saturating loss through a D without gradients of its own.
        D.requires_grad_(False)
        z = torch.randn(batch, self.config.z_dim)
        fake = G.synthesis(mixed_ws(G.mapping, z, probability=MIXING, update_w_avg=True), noise_mode="random")
        loss_g = F.softplus(-D(fake)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        D.requires_grad_(True)
        self.iteration += 1
        seen = self.iteration * batch
        half_life = min(EMA_IMAGES, seen * EMA_RAMPUP)
        update_ema(self.G_ema, G, 0.5 ** (batch / max(half_life, 1e-8)))
        return {"d_loss": logistic.item(), "g_loss": loss_g.item(), "r1": r1.item() if regularise else float("nan")}

    # ------------------------------------------------------------------- the training state
    def tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for prefix, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            out.update({f"{prefix}.{k}": v.detach().contiguous().clone() for k, v in module.state_dict().items()})
        for prefix, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            for index, state in opt.state_dict()["state"].items():
                out.update({f"{prefix}.{index}.{k}": v.detach().contiguous().clone() for k, v in state.items()})
        out["rng.torch"] = torch.get_rng_state()
        return out

    def save(self, directory: Path) -> None:
        """Write the training state; each file is replaced only once written whole."""
        document = {"format": _STATE_FORMAT, "format_version": 1, "iteration": self.iteration,
                    "seconds": round(self.seconds, 3), "config": self.config.to_dict(), "settings": self.settings,
                    "param_groups": {name: opt.state_dict()["param_groups"]
                                     for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d))},
                    "history": self.history}
        tmp_tensors, tmp_json = directory / (STATE_TENSORS + ".tmp"), directory / (STATE_JSON + ".tmp")
        save_file(self.tensors(), str(tmp_tensors), metadata={"format": "pt"})
        tmp_json.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
        os.replace(tmp_tensors, directory / STATE_TENSORS)
        os.replace(tmp_json, directory / STATE_JSON)

    def load(self, directory: Path) -> None:
        """Continue from the state in ``directory`` (strict: every tensor must be there and fit)."""
        document = json.loads((directory / STATE_JSON).read_text())
        if document.get("format") != _STATE_FORMAT:
            raise SystemExit(f"{directory / STATE_JSON}: not a training state of this script")
        stored = StyleGAN2Config.from_dict(document["config"])
        if stored != self.config or document["settings"] != self.settings:
            raise SystemExit(f"{directory}: its state was trained with {stored} and {document['settings']}, this "
                             f"run asks for {self.config} and {self.settings}; use another --out or the same options")
        tensors = load_file(str(directory / STATE_TENSORS))
        for prefix, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            module.load_state_dict({k[len(prefix) + 1 :]: v for k, v in tensors.items()
                                    if k.startswith(prefix + ".")}, strict=True)
        for prefix, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith(prefix + "."):
                    _, index, name = key.split(".", 2)
                    state.setdefault(int(index), {})[name] = value
            opt.load_state_dict({"state": state, "param_groups": document["param_groups"][prefix]})
        torch.set_rng_state(tensors["rng.torch"])
        self.iteration, self.seconds, self.history = document["iteration"], document["seconds"], document["history"]


def train(args: argparse.Namespace, command: str) -> Trainer:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = {"batch_size": args.batch_size, "seed": args.seed, "limit": args.limit}
    torch.manual_seed(args.seed)
    data = padded_train_images(data_root=args.data_root, limit=args.limit)
    if data.shape[0] < args.batch_size:
        raise SystemExit(f"need at least --batch-size={args.batch_size} images, have {data.shape[0]}")
    trainer = Trainer(args.config, settings)
    if (out / STATE_JSON).is_file():
        trainer.load(out)
        print(f"resumed from {out} at iteration {trainer.iteration}", flush=True)
    print(f"data: {data.shape[0]} train images {tuple(data.shape)}; G {_count(trainer.G):,} parameters, "
          f"D {_count(trainer.D):,}; num_ws {args.config.num_ws}; torch threads {torch.get_num_threads()}", flush=True)
    fixed_z = torch.randn(GRID * GRID, args.config.z_dim, generator=torch.Generator().manual_seed(args.seed + 1))

    def checkpoint() -> None:
        trainer.save(out)
        write_png_gray(out / "samples.png", sample_grid(trainer.G_ema, fixed_z))

    started = time.perf_counter()
    last = 0.0
    window: list[dict[str, float]] = []
    while trainer.iteration < args.iterations:
        if args.max_seconds is not None and time.perf_counter() - started + last > args.max_seconds:
            print(f"stopping before iteration {trainer.iteration + 1}: --max-seconds {args.max_seconds}", flush=True)
            break
        t0 = time.perf_counter()
        losses = trainer.step(data)
        last = time.perf_counter() - t0
        trainer.seconds += last
        window.append({**losses, "seconds": last})
        if trainer.iteration % args.log_every == 0 or trainer.iteration == args.iterations:
            record = {"iteration": trainer.iteration, **_means(window)}
            trainer.history.append(record)
            print(f"iteration {trainer.iteration}/{args.iterations}  d_loss {record['d_loss']}  g_loss "
                  f"{record['g_loss']}  r1 {record['r1']}  {record['seconds']}s per iteration  "
                  f"{trainer.seconds:.1f}s in all", flush=True)
            window = []
        if trainer.iteration % args.checkpoint_every == 0:
            checkpoint()
    checkpoint()
    extra = {"command": command, "iterations": trainer.iteration, "train_seconds": round(trainer.seconds, 3),
             "seconds_per_iteration": round(trainer.seconds / max(trainer.iteration, 1), 4),
             "images_seen": trainer.iteration * args.batch_size, "device": "cpu",
             "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
             "dataset": "fashion-mnist train split, padded to 32x32", "n_train": int(data.shape[0]), **trainer.settings,
             "recipe": {"lr": LR, "betas": list(BETAS), "r1_gamma": R1_GAMMA, "r1_interval": R1_INTERVAL,
                        "style_mixing": MIXING, "ema_images": EMA_IMAGES, "ema_rampup": EMA_RAMPUP},
             "history": trainer.history}
    save_stylegan2(out, trainer.G_ema, trainer.D, args.config, extra=extra)
    print(f"{trainer.iteration} iterations, {trainer.seconds:.1f}s of training "
          f"({extra['seconds_per_iteration']}s per iteration); wrote {out}", flush=True)
    return trainer


def _means(window: list[dict[str, float]]) -> dict[str, float | None]:
    """Each quantity's mean over the iterations of a log line (R1 over those that computed it); ``None``: none."""
    means: dict[str, float | None] = {}
    for key in ("d_loss", "g_loss", "r1", "seconds"):
        values = [w[key] for w in window if not np.isnan(w[key])]
        means[key] = finite_or_none(round(float(np.mean(values)), 5)) if values else None
    return means


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> Trainer:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(f"command: {command}", flush=True)
    trainer = train(args, command)
    print(f"command: {command}", flush=True)
    return trainer


if __name__ == "__main__":
    main()
