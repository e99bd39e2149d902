#!/usr/bin/env python
"""Compress the zoo's paper inverter after its fit: a data-aware low-rank first layer, then distillation (issue 18).

    python -m benchmarks.speed.compress_cn --ranks 128 144 --json docs/results/compress_cn.json
    python -m benchmarks.speed.compress_cn --quick --out /tmp/compress.md

Issue 18 asks for the zoo's inverter at or under 2 MB at the shipped file's PSNR (±0.1 dB), with the
demo's encode at or above 17.19 dB. The paper CN holds 5.35M weights, 4.19M of them in its first layer
(4096 → 1024); lighter shapes trained from scratch stay 0.22–0.51 dB short (``cn_shapes.py``). This
script starts from the fitted CN instead:

1. **Data-aware factorisation.** The first layer ``W`` (1024 × 4096) is replaced by two linear maps
   through ``R`` values, ``P_R (P_R^T W)``, where ``P_R`` holds the top ``R`` principal directions of
   the layer's *outputs* ``W (f - mean)`` over the CN's inputs ``f`` (D's features of real training
   images and of fresh ``G(z)``): the rank-``R`` map closest to ``W`` on the features it meets, with the
   mean's lost part folded into the bias. The rest of the CN is kept.
2. **Distillation.** The whole factorised CN is trained (BatchNorm statistics frozen, Adam, cosine
   decay) to reproduce the shipped CN's codes on a mix of D's features of Fashion-MNIST train[:59000]
   and of fresh generated images, half of each per batch. The last weights are kept.
3. **Storage.** The student's weight matrices are quantised as the library's int8 files do (int8 with
   a float32 scale per output row, ``w ≈ q · max|w_row| / 127``; biases and BatchNorm in float32) and
   written with safetensors to measure the file's bytes; the dequantised student is scored too.

Scored on Fashion-MNIST train[59000:] (1,000 training images never trained on, the figure every
choice is made on) and on the zoo entry's 1,000 bundled test images (the demo's images; reported).
The student is a benchmark artefact: the library has no factorised CN, and the zoo file is not changed.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from benchmarks.common import command_line, describe_device, write_json, write_marked_section
from discinvert import Inverter, zoo
from discinvert.metrics import reconstruction_score
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]
ZOO_NAME = "dcgan-fashion-mnist"


def score(inverter: Inverter, images: torch.Tensor) -> float:
    """Mean encode PSNR (dB) over ``images`` (one pass, no draws)."""
    return float(reconstruction_score(inverter, images, n=len(images), repeats=1)["psnr_mean"])


def cn_inputs(inverter: Inverter, images: torch.Tensor) -> torch.Tensor:
    """The CN's input rows ``(N, in_features)`` for ``images``, captured at its first layer during ``encode``."""
    captured: list[torch.Tensor] = []
    handle = inverter.cn.layers[0].register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().float()))
    try:
        with torch.no_grad():
            inverter.encode(images)
    finally:
        handle.remove()
    return torch.cat(captured)


def factorise(teacher: Inverter, features: torch.Tensor, rank: int) -> Inverter:
    """A copy of ``teacher`` whose first CN layer goes through ``rank`` values (step 1 of the docstring)."""
    first = teacher.cn.layers[0]
    weight, bias = first.weight.detach().float(), first.bias.detach().float()
    mean = features.mean(0)
    outputs = (features - mean) @ weight.T
    _, vectors = torch.linalg.eigh(outputs.T @ outputs / len(outputs))
    basis = vectors.flip(1)[:, :rank].contiguous()
    down, up = nn.Linear(weight.shape[1], rank, bias=False), nn.Linear(rank, weight.shape[0])
    with torch.no_grad():
        down.weight.copy_(basis.T @ weight)
        up.weight.copy_(basis)
        lost = weight @ mean - basis @ (basis.T @ (weight @ mean))
        up.bias.copy_(bias + lost)
    student = copy.deepcopy(teacher)
    student.cn.layers = nn.Sequential(down, up, *list(student.cn.layers)[1:])
    return student


def quantised_file(network: nn.Module) -> tuple[dict[str, torch.Tensor], int]:
    """The int8 storage of ``network`` (step 3): its dequantised state dict and the file's bytes."""
    stored: dict[str, torch.Tensor] = {}
    dequantised: dict[str, torch.Tensor] = {}
    for name, tensor in network.state_dict().items():
        tensor = tensor.detach().contiguous()
        if tensor.dim() == 2 and tensor.is_floating_point():
            scale = tensor.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny) / 127.0
            q = torch.round(tensor / scale).clamp(-127, 127).to(torch.int8)
            stored[name], stored[f"{name}.int8_scale"] = q, scale.reshape(-1).float()
            dequantised[name] = q.float() * scale
        else:
            stored[name] = tensor.float() if tensor.is_floating_point() else tensor
            dequantised[name] = tensor
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file(stored, str(path))
        size = path.stat().st_size
    return dequantised, size


def distil(student: Inverter, teacher_codes: tuple[torch.Tensor, torch.Tensor], features: tuple[torch.Tensor, torch.Tensor],
           *, steps: int, lr: float, batch_size: int, seed: int, eval_every: int, heldout: torch.Tensor) -> list[list[float]]:
    """Train ``student.cn`` on the teacher's codes (step 2); returns ``[update, loss, held-out PSNR]`` rows."""
    network = student.cn
    network.eval()  # BatchNorm statistics frozen: the student keeps the teacher's
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    (real, fake), (real_codes, fake_codes) = features, teacher_codes
    half = batch_size // 2
    curve: list[list[float]] = []
    for step in range(1, steps + 1):
        i, j = torch.randint(len(real), (half,), generator=rng), torch.randint(len(fake), (batch_size - half,), generator=rng)
        inputs, targets = torch.cat([real[i], fake[j]]), torch.cat([real_codes[i], fake_codes[j]])
        for group in optimiser.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        loss = (network.layers(inputs) - targets).pow(2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % eval_every == 0 or step == steps:
            curve.append([step, round(loss.item(), 6), round(score(student, heldout), 3)])
            print(f"update {step}: distillation MSE {curve[-1][1]:.5f}, held-out train PSNR {curve[-1][2]:.3f}", flush=True)
    return curve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[128, 144])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--generated", type=int, default=49152, help="fresh G(z) whose features join the pool")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "fit_speed.md")
    parser.add_argument("--section", default="compress_cn")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.generated = 4, 2, 512
    command = command_line(__spec__, argv)
    print(command, flush=True)
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    G, _, teacher = zoo.load(ZOO_NAME, inverter="paper")
    teacher.eval()
    train = load_fashion_mnist("train", root=args.data_root)[0]
    n_real = 2000 if args.quick else 59000
    heldout = to_model_range(train[59000 : 59200 if args.quick else 60000]).float()
    test = to_model_range(zoo.load_test_images(ZOO_NAME)[0]).float()
    real = cn_inputs(teacher, to_model_range(train[:n_real]).float())
    with torch.no_grad():
        generated = torch.cat([G(torch.randn(512, *teacher.latent_shape)).clamp(-1, 1)
                               for _ in range(max(1, args.generated // 512))])
    fake = cn_inputs(teacher, generated)
    with torch.no_grad():
        codes = tuple(torch.cat([teacher.cn.layers(x) for x in part.split(4096)]) for part in (real, fake))
    teacher_file = zoo.path(ZOO_NAME) / zoo.INVERTERS["paper"] / "model.safetensors"
    rows: list[dict[str, Any]] = [{
        "name": "the shipped paper inverter (float16 file)", "rank": None,
        "parameters": sum(p.numel() for p in teacher.cn.parameters()), "bytes": teacher_file.stat().st_size,
        "heldout_start": None, "heldout": round(score(teacher, heldout), 3), "test": round(score(teacher, test), 3),
        "curve": [],
    }]
    _, teacher_int8 = quantised_file(teacher.cn)
    print(f"teacher: held-out {rows[0]['heldout']}, test {rows[0]['test']}, int8 file {teacher_int8 / 1e6:.2f} MB", flush=True)
    pool = torch.cat([real[:8192], fake[:8192]])
    for rank in args.ranks:
        student = factorise(teacher, pool, rank)
        start_psnr = round(score(student, heldout), 3)
        print(f"rank {rank}: factorised, held-out {start_psnr}", flush=True)
        curve = distil(student, codes, (real, fake), steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                       seed=args.seed, eval_every=args.eval_every, heldout=heldout)
        dequantised, size = quantised_file(student.cn)
        stored = copy.deepcopy(student)
        stored.cn.load_state_dict(dequantised, strict=True)
        rows.append({"name": f"rank {rank}, distilled, int8", "rank": rank,
                     "parameters": sum(p.numel() for p in student.cn.parameters()), "bytes": size,
                     "heldout_start": start_psnr, "heldout_float32": curve[-1][2],
                     "heldout": round(score(stored, heldout), 3), "test": round(score(stored, test), 3), "curve": curve})
        print(f"rank {rank}: int8 file {size / 1e6:.2f} MB, held-out {rows[-1]['heldout']}, test {rows[-1]['test']}", flush=True)

    reference = rows[0]
    lines = [f"Written by `benchmarks/speed/compress_cn.py` ({describe_device('cpu')}, torch {torch.__version__}):", "",
             f"    {command}", "",
             f"The student starts from the shipped paper inverter's CN with its first layer factorised through the rank "
             f"below, and is distilled for {args.steps:,} updates of {args.batch_size} feature rows (half from "
             f"Fashion-MNIST train[:{n_real}], half from {len(fake):,} generated images), Adam from {args.lr:g} with "
             f"cosine decay, BatchNorm statistics frozen. *Held-out train*: encode PSNR on train[59000:"
             f"{59000 + len(heldout)}] (never trained on), on which the choice is made; *test*: the zoo entry's "
             f"{len(test):,} bundled test images (the demo's), reported. The shipped file stored in int8 would be "
             f"{teacher_int8 / 1e6:.2f} MB. Run time {time.perf_counter() - start:.0f} s.", "",
             "| CN | parameters | file MB | held-out train PSNR dB: factorised → distilled (float32) → int8 | vs shipped | test PSNR dB |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        if row["rank"] is None:
            path = f"{row['heldout']:.3f}"
            delta = ""
        else:
            path = f"{row['heldout_start']:.3f} → {row['heldout_float32']:.3f} → {row['heldout']:.3f}"
            delta = f"{row['heldout'] - reference['heldout']:+.3f}"
        lines.append(f"| {row['name']} | {row['parameters']:,} | {row['bytes'] / 1e6:.2f} | {path} | {delta} | "
                     f"{row['test']:.3f} |")
    write_marked_section(args.out, args.section, "cpu", lines, "Compressing the paper inverter")
    if args.json is not None:
        write_json(args.json, {"command": command, "teacher_int8_bytes": teacher_int8, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
