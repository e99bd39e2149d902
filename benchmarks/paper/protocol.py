"""The paper's Table 1 protocol, shared by ``benchmarks/paper/table1.py`` for every model and method it scores.

One :class:`Protocol` holds the draws of unseen **test** images (1,000 images drawn 5 times,
seed 0, from ``discinvert.metrics.draw_subsets``) and, when 1-NN accuracy is asked for, the
train and test splits with their labels. Every row of the table is scored by it, so a
reference GAN's CN, a rival's own encoder and our CN on a rival's generator are measured
in exactly the same way:

- PSNR / SSIM (scikit-image, images mapped to [0, 1]) of the reconstructions, mean ± std
  over the draws (``discinvert.metrics.image_quality`` and ``summarize_draws``);
- 1-nearest-neighbour accuracy in code space, for feed-forward encoders only
  (``discinvert.metrics.nearest_neighbour_accuracy``: the codes of the 10,000 test images
  against the codes of the train images; the BiGAN protocol);
- seconds to invert 1,000 images, timed on the first draw after a warm-up (fitting excluded).

The paper's figures live here too, so the table and its comparison read from one place;
timing comes from ``benchmarks/common.py``, as for the other benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import timed
from discinvert.metrics import draw_subsets, image_quality, nearest_neighbour_accuracy, summarize_draws
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

# The paper's Table 1, Fashion-MNIST row (PSNR dB / SSIM), from shared/docs/anchors.md.
PAPER_FASHION_MNIST: dict[str, tuple[float, float]] = {
    "VAE": (11.83, 0.3921), "ALI/BiGAN": (13.02, 0.3623), "DCGAN": (15.10, 0.5332), "LSGAN": (15.25, 0.5665),
    "DFM": (15.74, 0.5434), "RFGAN": (15.94, 0.5848), "WGAN-GP": (15.80, 0.5233),
}
PAPER_BEST_PSNR = max(p for p, _ in PAPER_FASHION_MNIST.values())
# BiGAN slides (shared/seeds/002): 1-NN accuracy (%) on the permutation-invariant MNIST test set.
MNIST_1NN: dict[str, float] = {
    "BiGAN": 97.39, "D (discriminator features)": 97.30, "latent regressor": 97.44,
    "joint latent regressor": 97.13, "autoencoder (l2)": 97.58, "autoencoder (l1)": 97.63,
}

Encode = Callable[[torch.Tensor], torch.Tensor]
Decode = Callable[[torch.Tensor], torch.Tensor]


class Protocol:
    """The draws of test images, and the scoring of one encoder or one set of codes.

    Args:
        device: where the images live (``"cpu"``, ``"cuda"``).
        n, repeats, seed: ``repeats`` draws of ``n`` test images (``draw_subsets``).
        data_root: folder with the Fashion-MNIST IDX files (``None``: the usual places).
        nn_train: train images whose codes the 1-NN classifier uses (``None``: all 60,000);
            ``0`` turns 1-NN accuracy off.
        batch: images per forward pass when encoding for 1-NN.

    Attributes:
        x_used: ``(U, 1, 28, 28)`` in [-1, 1] on ``device``: every test image in any draw.
        x_first: ``(n, 1, 28, 28)``: the first draw, used for timing.
    """

    def __init__(self, *, device: str, n: int, repeats: int, seed: int, data_root: Path | None,
                 nn_train: int | None, batch: int) -> None:
        self.device = device
        self.batch = batch
        test_images, test_labels = load_fashion_mnist("test", root=data_root)
        self.total = len(test_images)
        self.subsets = draw_subsets(self.total, n, repeats, seed)
        self.used = np.unique(np.concatenate(self.subsets))
        position = {int(i): j for j, i in enumerate(self.used)}
        first = torch.as_tensor([position[int(i)] for i in self.subsets[0]])
        self.x_used = to_model_range(test_images[self.used]).to(device)
        self.x_first = self.x_used[first]
        self.nn_enabled = nn_train != 0
        self.x_test = self.y_test = self.x_train = self.y_train = None
        if self.nn_enabled:
            self.x_test, self.y_test = to_model_range(test_images), test_labels  # CPU; encoders batch it
            train_images, train_labels = load_fashion_mnist("train", root=data_root)
            if nn_train is not None:
                train_images, train_labels = train_images[:nn_train], train_labels[:nn_train]
            self.x_train, self.y_train = to_model_range(train_images), train_labels

    @property
    def nn_sizes(self) -> tuple[int, int]:
        """(train codes, test codes) of the 1-NN classifier; (0, 0) when it is off."""
        return (len(self.y_train), len(self.y_test)) if self.nn_enabled else (0, 0)

    def nn_accuracy(self, encode: Encode) -> float | None:
        """1-NN accuracy in ``encode``'s code space, in [0, 1]; ``None`` when 1-NN is off."""
        if not self.nn_enabled:
            return None
        return nearest_neighbour_accuracy(encode, self.x_train, self.y_train, self.x_test, self.y_test)

    def pixel_nn_accuracy(self) -> float | None:
        """1-NN accuracy on the raw pixels (784 values): the reference an encoder's codes are read against."""
        return self.nn_accuracy(lambda x: x.flatten(1))

    def score_codes(self, label: str, codes_used: torch.Tensor, decode: Decode, seconds_1k: float,
                    nn_accuracy: float | None = None, **info: Any) -> dict[str, Any]:
        """One table row from the codes of ``x_used``: PSNR/SSIM over the draws, plus the given extras."""
        psnr_used, ssim_used = image_quality(self.x_used, decode(codes_used))
        psnr = np.full(self.total, np.nan)
        ssim = np.full(self.total, np.nan)
        psnr[self.used], ssim[self.used] = psnr_used, ssim_used
        row = {**summarize_draws(psnr, ssim, self.subsets), "nn_accuracy": nn_accuracy, "seconds_per_1k": seconds_1k,
               **info}
        nn = "" if nn_accuracy is None else f"  1-NN {100 * nn_accuracy:.2f}%"
        print(f"  {label:24s} PSNR {row['psnr_mean']:.2f} ± {row['psnr_std']:.2f}  SSIM {row['ssim_mean']:.4f} ± "
              f"{row['ssim_std']:.4f}{nn}  {seconds_1k:.4f} s/1k", flush=True)
        return row

    def score_encoder(self, label: str, encode: Encode, decode: Decode, **info: Any) -> dict[str, Any]:
        """One row for a feed-forward encoder: timed on the first draw, scored on all, and its 1-NN accuracy."""
        encode(self.x_first[:8])  # warm-up
        _, seconds = timed(self.device, lambda: encode(self.x_first))
        seconds_1k = seconds * 1000.0 / len(self.x_first)
        return self.score_codes(label, encode(self.x_used), decode, seconds_1k, self.nn_accuracy(encode), **info)
