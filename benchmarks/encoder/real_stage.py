"""The library's real-image stage (``fit_inverter(images=...)``, issue 17) against the paper's CN.

Fits an inverter for the bundled Fashion-MNIST DCGAN with the library's defaults and the
Fashion-MNIST *train* images (all but the last ``--holdout``), then scores it beside the
bundled paper CN (20,000 self-generated steps, no real images):

- on the held-out train slice (the last ``--holdout`` train images, never trained on): the
  slice any choice of settings is made on;
- on the paper's Table 1 protocol (``benchmarks/paper/protocol.py``: 1,000 unseen *test*
  images x 5 draws, seed 0): reported, never used to choose anything;
- hybrid-``--hybrid-steps`` (``Inverter.refine``) from each start, on the first test draw;
- latent recovery on 512 fresh ``G(z)`` (MSE and cosine to the true ``z``) and the codes'
  mean squared value per dimension on the test images (the prior has 1.0).

    python -m benchmarks.encoder.real_stage                        # about 25 min on 2 CPU cores
    python -m benchmarks.encoder.real_stage --quick --out /tmp/rs.md --json /tmp/rs.json --summary ''   # smoke run
    python -m benchmarks.encoder.real_stage --iterations 2 --out docs/lab/iterative.md --json docs/results/iterative.json \
        --section iterative     # + step networks: a row per k = 0..2 from the same inverter

With ``--gan DIR`` (a ``save_gan`` folder, e.g. from ``benchmarks/paper/train_gan.py``) it fits that GAN
instead, and its first row is a fit without images with the library's defaults (the paper's method)
rather than the bundled paper CN.

With ``--feature-layer main.4,main.7`` the CN reads several depths of D (``fit_inverter``'s
``feature_layer`` as a list; ``docs/lab/multi_depth.md``). With ``--iterations K`` the fit also trains ``K`` step networks (``fit_inverter(iterations=K)``) and the
fitted inverter is scored once per ``k = 0..K`` (``encode(iterations=k)``; hybrid from those codes).

Writes ``docs/lab/real_stage.md``, ``docs/results/real_stage.json`` and the table into ``docs/lab/benchmarks.md``
(its ``real_stage`` section); ``--save`` keeps the fitted inverter.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import command_line, describe_device, write_json, timed, write_marked_section
from benchmarks.paper.protocol import Protocol
from discinvert import Inverter, fit_inverter, zoo
from discinvert.metrics import image_quality
from discinvert.zoo.architectures import load_gan
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]


def _score(label: str, inverter: Inverter, protocol: Protocol, holdout: torch.Tensor, fresh: tuple[torch.Tensor, torch.Tensor],
           hybrid_steps: int, fit_seconds: float | None, iterations: int | None = None) -> dict[str, Any]:
    def encode(x: torch.Tensor) -> torch.Tensor:
        return inverter.encode(x, range_check="ignore", iterations=iterations)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return inverter.decode(z)

    row = protocol.score_encoder(label, encode, decode)
    psnr, ssim = image_quality(holdout, inverter.reconstruct(holdout, range_check="ignore", iterations=iterations))
    codes = encode(protocol.x_used)
    refined, seconds = timed("cpu", lambda: inverter.refine(protocol.x_first, steps=hybrid_steps, range_check="ignore",
                                                            iterations=iterations))
    h_psnr, h_ssim = image_quality(protocol.x_first, inverter.decode(refined))  # type: ignore[arg-type]
    fresh_images, fresh_z = fresh
    recovered = encode(fresh_images).reshape(len(fresh_z), -1)
    row.update({
        "encoder": label, "holdout_psnr": float(psnr.mean()), "holdout_ssim": float(ssim.mean()),
        f"hybrid{hybrid_steps}_psnr": float(h_psnr.mean()), f"hybrid{hybrid_steps}_ssim": float(h_ssim.mean()),
        f"hybrid{hybrid_steps}_seconds_per_1k": seconds * 1000 / len(protocol.x_first),
        "recovery_mse": float(F.mse_loss(recovered, fresh_z)),
        "recovery_cosine": float(F.cosine_similarity(recovered, fresh_z, dim=1).mean()),
        "code_sq_norm_per_dim": float(codes.pow(2).mean()), "fit_seconds": fit_seconds,
    })
    print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), flush=True)
    return row


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    paper: Inverter | None
    if args.gan is None:
        G, D, paper = zoo.load("dcgan-fashion-mnist")
        config = zoo.load_gan_config("dcgan-fashion-mnist")
        gan_name = "The bundled Fashion-MNIST DCGAN"
    else:
        G, D, config, _ = load_gan(args.gan)
        G.eval()
        D.eval()
        paper = None
        gan_name = f"The {config.loss.upper()} in `{args.gan}` (feature layer `{config.feature_layer}`)"
    images, _ = load_fashion_mnist("train", root=args.data_root)
    x_all = to_model_range(images).float()
    train, holdout = x_all[: len(x_all) - args.holdout], x_all[len(x_all) - args.holdout :]
    if args.train_limit:
        train = train[: args.train_limit]
    protocol = Protocol(device="cpu", n=args.n, repeats=args.repeats, seed=0, data_root=args.data_root,
                        nn_train=0, batch=1000)
    fresh_z = torch.randn(512, *config.latent_shape, generator=torch.Generator().manual_seed(12345))
    with torch.no_grad():
        fresh = (G(fresh_z), fresh_z.reshape(512, -1))
    settings: dict[str, Any] = {"seed": args.seed}
    if args.fit_steps:
        settings["steps"] = args.fit_steps
    if args.real_steps:
        settings["real_steps"] = args.real_steps
    if args.iterations:
        settings["iterations"] = args.iterations
        if args.iteration_steps:
            settings["iteration_steps"] = args.iteration_steps
    layer: str | list[str] = config.feature_layer
    if args.feature_layer:
        layer = args.feature_layer.split(",") if "," in args.feature_layer else args.feature_layer
    rows = []
    if not args.no_paper_row and paper is not None:
        rows.append(_score("paper CN (bundled, 20k steps)", paper, protocol, holdout, fresh, args.hybrid_steps, None))
    elif not args.no_paper_row:  # another GAN: the paper's method is the library's fit without images
        started = time.perf_counter()
        alone = fit_inverter(G, D, layer, latent_shape=config.latent_shape,
                             **{k: v for k, v in settings.items() if k in ("seed", "steps")})
        rows.append(_score("CN without images (library defaults, fit here)", alone, protocol, holdout, fresh,
                           args.hybrid_steps, round(time.perf_counter() - started, 1)))
    started = time.perf_counter()
    fitted = fit_inverter(G, D, layer, latent_shape=config.latent_shape, images=train, **settings)
    fit_seconds = time.perf_counter() - started
    if args.save is not None:
        fitted.save(args.save)
    real = fitted.config.fit["real_images"]
    iterative = fitted.config.fit.get("iterative")
    for k in range(fitted.iterations + 1):
        label = "defaults + real-image stage" + (f", D layers {args.feature_layer}" if args.feature_layer else "") + (
            "" if not fitted.iterations else
                                                  f", k = {k} of {fitted.iterations} step networks")
        rows.append(_score(label, fitted, protocol, holdout, fresh, args.hybrid_steps, round(fit_seconds, 1), k))
        rows[-1]["stage"] = {k: v for k, v in real.items() if k != "history"}
        rows[-1]["self_generated_seconds"] = fitted.config.fit["seconds"]
        if iterative is not None:
            rows[-1]["iterative"] = {**{k: v for k, v in iterative.items() if k != "steps"},
                                     "steps": [{k: v for k, v in s.items() if k != "history"} for s in iterative["steps"]]}
    return {"command": command_line(__spec__, argv), "device": describe_device("cpu"), "gan": gan_name,
            "threads": torch.get_num_threads(),
            "settings": {**{k: v for k, v in fitted.config.fit.items()
                            if k in ("steps", "batch_size", "lr", "seed", "validation_size", "reuse")},
                         "feature_layer": ",".join([layer] if isinstance(layer, str) else layer),
                         "real_lr": real["real_lr"], "feature_dim": fitted.config.feature_dim,
                         "cn_parameters": sum(p.numel() for p in fitted.cn.parameters())},
            "train_images": len(train), "holdout": f"Fashion-MNIST train[{len(x_all) - args.holdout}:]",
            "protocol": f"{args.n} test images x {args.repeats} draws (seed 0)", "rows": rows}


_TITLES = {"real_stage": ("# The real-image stage (issue 17)", "## The real-image stage (feed-forward, issue 17)"),
           "iterative": ("# Iterative refinement: step networks (issue 17)",
                         "## Iterative refinement: feed-forward step networks (issue 17)")}


def write_page(result: dict[str, Any], path: Path, hybrid_steps: int, summary: Path | None = None,
               section: str = "real_stage") -> None:
    """Write the page, and (with ``summary``) the table as the marked ``section`` of that page too."""
    rows = result["rows"]
    lines = _page_lines(result, rows, hybrid_steps)
    page_title, section_title = _TITLES[section]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([page_title, "", *lines]) + "\n")
    if summary is not None:
        write_marked_section(summary, section, "cpu", [section_title, "", *lines], "# Benchmarks\n")


def _page_lines(result: dict[str, Any], rows: list[dict[str, Any]], hybrid_steps: int) -> list[str]:
    lines = [
        "Written by `benchmarks/encoder/real_stage.py`; the figures come from this run:",
        "",
        f"    {result['command']}",
        "",
        f"Device: {result['device']}. {result.get('gan', 'The bundled Fashion-MNIST DCGAN')}. The fitted "
        f"inverter uses the library's default settings with `images=` the first {result['train_images']} train "
        f"images; *held-out train* is {result['holdout']} (never trained on); *test* is the Table 1 protocol "
        f"({result['protocol']}), scored, never used for a choice. Timings are wall-clock on a shared 2-core "
        "machine: compare PSNR, SSIM and recovery across rows, timings only within a run.",
        "",
        f"| encoder | held-out train PSNR / SSIM | test PSNR (Table 1) | test SSIM | encode s / 1k | "
        f"hybrid-{hybrid_steps} test PSNR (first draw) | hybrid s / 1k | latent recovery MSE / cosine | "
        "codes' mean z² (prior 1.0) | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fit = "(bundled)" if r["fit_seconds"] is None else f"{r['fit_seconds']:.0f}"
        lines.append(
            f"| {r['encoder']} | {r['holdout_psnr']:.2f} / {r['holdout_ssim']:.4f} | {r['psnr_mean']:.2f} ± "
            f"{r['psnr_std']:.2f} | {r['ssim_mean']:.4f} | {r['seconds_per_1k']:.2f} | "
            f"{r[f'hybrid{hybrid_steps}_psnr']:.2f} | {r[f'hybrid{hybrid_steps}_seconds_per_1k']:.0f} | "
            f"{r['recovery_mse']:.3f} / {r['recovery_cosine']:.3f} | {r['code_sq_norm_per_dim']:.3f} | {fit} |"
        )
    stage = rows[-1]["stage"]
    lines += [
        "",
        f"Fit of the last row: self-generated stage {rows[-1]['self_generated_seconds']:.0f} s, real-image stage "
        f"{stage['seconds']:.0f} s ({stage['real_steps']} updates of {stage['real_batch_size']} images; held-out pixel "
        f"MSE {stage['start_held_out_pixel_mse']:.4f} → {stage['best_held_out_pixel_mse']:.4f}, best at update "
        f"{stage['best_step']}).",
        "",
        *_iterative_lines(rows[-1].get("iterative")),
        "Settings: " + ", ".join(f"`{k}={v}`" for k, v in result["settings"].items()),
        "",
    ]
    return lines


def _iterative_lines(iterative: dict[str, Any] | None) -> list[str]:
    if iterative is None:
        return []
    steps = "; ".join(f"step {i}: {s['metric']} {s['start_error']:.4f} → {s['best_error']:.4f} (update {s['best_step']}, "
                      f"{s['seconds']:.0f} s)" for i, s in enumerate(iterative["steps"], 1))
    return [f"Step networks ({iterative['iterations']}, trained on {iterative['trained_on']}, "
            f"{iterative['iteration_steps']} updates of {iterative['iteration_batch_size']} each, lr "
            f"{iterative['iteration_lr']}, hidden {iterative['step_hidden']}): {steps}. The k rows are one inverter, "
            "scored with `encode(iterations=k)`; its fit time is the whole fit's.", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gan", type=Path, default=None,
                        help="a save_gan directory (default: the bundled DCGAN); its first row is then a fit "
                             "without images with the library's defaults, not the bundled paper CN")
    parser.add_argument("--data-root", type=Path, default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images, scored, never trained on")
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N train images (0: all)")
    parser.add_argument("--fit-steps", type=int, default=0, help="self-generated steps (0: the library's default)")
    parser.add_argument("--real-steps", type=int, default=0, help="real-image steps (0: the library's default)")
    parser.add_argument("--iterations", type=int, default=0, help="step networks to fit too (a row per k = 0..K)")
    parser.add_argument("--feature-layer", default="",
                        help="D's layer(s) the CN reads, several separated by commas (default: the GAN config's)")
    parser.add_argument("--iteration-steps", type=int, default=0, help="updates of each (0: the library's default)")
    parser.add_argument("--section", choices=sorted(_TITLES), default="real_stage",
                        help="the marked section of --summary the table goes into")
    parser.add_argument("--hybrid-steps", type=int, default=50)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-paper-row", action="store_true", help="skip the bundled paper CN's row (budget runs)")
    parser.add_argument("--save", type=Path, default=None, help="also save the fitted inverter here")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "real_stage.md")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "real_stage.json")
    parser.add_argument("--summary", default=str(ROOT / "docs" / "lab" / "benchmarks.md"),
                        help="also put the table into this page's real_stage section ('' for none)")
    parser.add_argument("--rewrite-from", type=Path, default=None, metavar="JSON",
                        help="write the pages from an earlier run's JSON instead of running (no figure changes)")
    args = parser.parse_args(argv)
    summary = Path(args.summary) if args.summary else None
    if args.rewrite_from is not None:
        result = json.loads(args.rewrite_from.read_text())
        steps = next(int(k[len("hybrid"):-len("_psnr")]) for k in result["rows"][0] if k.startswith("hybrid")
                     and k.endswith("_psnr"))
        write_page(result, args.out, steps, summary, args.section)
        print(f"wrote {args.out}{'' if summary is None else f' and {summary}'} from {args.rewrite_from}")
        return 0
    if args.quick:
        args.holdout, args.train_limit, args.fit_steps, args.real_steps = 64, 512, 5, 5
        args.iteration_steps = 3 if args.iterations else 0
        args.hybrid_steps, args.n, args.repeats = 2, 64, 2
    torch.set_num_threads(2)
    result = run(args, argv)
    write_json(args.json, result)
    write_page(result, args.out, args.hybrid_steps, summary, args.section)
    print(f"wrote {args.out}, {args.json}{'' if summary is None else f' and {summary}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
