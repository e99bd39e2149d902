#!/usr/bin/env python
"""Write docs/lab/reference_gans.md from the training records of the reference GANs.

    python -m benchmarks.paper.describe_gans runs/dcgan runs/lsgan runs/wgan-gp

Reads each directory's ``config.json`` (written by ``benchmarks/paper/train_gan.py``: the command,
device, time, epochs, losses per epoch) and copies its ``samples.png`` into ``images/`` beside ``--out``
(``docs/lab/images/``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from benchmarks.common import command_line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gans", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("docs/lab/reference_gans.md"))
    parser.add_argument("--title", default="Reference GANs", help="the page's title")
    parser.add_argument("--image-suffix", default="", help="appended to the sample pictures' names (samples-NAME<suffix>.png)")
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command)
    images = args.out.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = [f"# {args.title}", "", f"Written by `{command}` from the training records.", "",
             "All trained on the Fashion-MNIST **train** split only (60,000 images in [-1, 1]); the test split is",
             "kept for evaluation. Architecture: `discinvert/zoo/architectures.py` (DCGAN-style, z of shape (100, 1, 1);",
             "D's feature layer is its last hidden activation, 256x4x4 = 4,096 values).", ""]
    for folder in args.gans:
        record = json.loads((folder / "config.json").read_text())
        config, extra = record["config"], record["extra"]
        name = config["loss"]
        last = extra["losses_per_epoch"][-1]
        opt = extra.get("optimiser", {})
        lines += [
            f"## {name}",
            "",
            f"    {extra['command']}",
            "",
            f"- {extra['epochs']} epochs"
            + (f" (of {extra.get('epochs_requested')} asked; stopped by --max-seconds {extra.get('max_seconds')})"
               if extra.get("stopped_early") else "") + f", batch {extra['batch_size']}, {extra['train_seconds']:.0f} s on {extra.get('device_name', extra['device'])} "
            f"(torch {extra['torch_version']}); seed {extra['seed']}.",
            f"- Optimiser: {opt.get('name')} lr {opt.get('lr')} betas {opt.get('betas')}; n_critic {extra.get('n_critic')}, "
            f"gradient penalty {extra.get('gp_weight')}; D BatchNorm: {config['d_batch_norm']}; feature layer `{config['feature_layer']}`.",
            f"- Last epoch: D loss {last['d_loss']:.4f}, G loss {last['g_loss']:.4f}.",
            "",
        ]
        if (folder / "samples.png").is_file():
            picture = f"samples-{name}{args.image_suffix}.png"
            shutil.copyfile(folder / "samples.png", images / picture)
            lines += [f"![samples of {name}](images/{picture})", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
