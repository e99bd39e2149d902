"""What every training stage of a fit shares to turn a loss into updates: Adam, its schedule, its loss terms.

:func:`make_adam` builds Adam with :data:`~discinvert.fitting.fit_config.ADAM_BETAS`; :func:`lr_factor` is the warm-up-then-cosine
learning-rate factor; :class:`Updater` is one optimiser step per loss (zeroed gradients, backward,
the gradients averaged across ranks where the stage averages them itself, Adam, the schedule);
:func:`feature_term` is the discriminator-feature term of the real-image stage and the step networks,
weighted by :class:`LossWeights`. The stages (:mod:`~discinvert.fitting.self_generated_stage`,
:mod:`~discinvert.fitting.real_image_stage`, :mod:`~discinvert.fitting.step_network_stage`) take these
from here, never from each other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from discinvert.distributed import average_gradients
from discinvert.fitting.fit_config import ADAM_BETAS

__all__ = ["LossWeights", "Updater", "feature_term", "lr_factor", "make_adam"]

logger = logging.getLogger(__name__)


def make_adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with :data:`~discinvert.fitting.fit_config.ADAM_BETAS`, fused into one kernel per step where torch supports it.

    The fused kernel makes the CN's optimiser step several times faster on the CPU (``docs/speed.md``);
    older torch builds without it get the default implementation.
    """
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, betas=ADAM_BETAS, fused=True)
    except (RuntimeError, ValueError, TypeError) as error:  # no fused kernel for this device or build
        logger.debug("fused Adam unavailable (%s); using the default implementation", error)
        return torch.optim.Adam(model.parameters(), lr=lr, betas=ADAM_BETAS)


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Updater:
    """One update of ``model`` per loss: gradients zeroed, backward, (averaged across ranks), Adam, the schedule.

    Args:
        model: the network trained (its parameters are ``optimizer``'s).
        optimizer: from :func:`make_adam`.
        schedule: the learning-rate factor per update, for ``torch.optim.lr_scheduler.LambdaLR``
            (built here, which sets the first update's rate); ``None`` holds the rate.
        average_over: under torchrun without DistributedDataParallel, the world size: each
            gradient is replaced by its mean over the ranks before Adam's step; ``None`` leaves them.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 schedule: Callable[[int], float] | None = None, average_over: int | None = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = None if schedule is None else torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.average_over = average_over

    def step(self, loss: torch.Tensor) -> None:
        """Update the model's weights to lower ``loss`` (a scalar with a graph to them)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.average_over is not None:
            average_gradients(self.model, self.average_over)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()


@dataclass(frozen=True)
class LossWeights:
    """The weights of the terms beside the pixel MSE, in the real-image stage and the step networks.

    Attributes:
        feature: the discriminator-feature term (:func:`feature_term`); 0 drops it.
        prior: the self-generated z-regression on fresh pairs, which keeps codes where G's latents
            live; 0 drops it.
    """

    feature: float
    prior: float


def feature_term(fake_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """The discriminator-feature term: MSE of ``D_f(G(ẑ))`` against ``D_f(x)``, relative to ``D_f(x)``'s energy."""
    target = target_features.float()
    return F.mse_loss(fake_features.float(), target) / (target.pow(2).mean() + 1e-8)
