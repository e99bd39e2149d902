"""Leave the user's models exactly as they were handed over.

Every entry point that runs the user's generator or discriminator does so inside
:func:`frozen`, which switches the models to eval mode with gradients off for their
parameters and puts every ``training`` flag and ``requires_grad`` back afterwards,
also when the body raises or is interrupted (``KeyboardInterrupt`` included).

Eval mode is what keeps parameters and buffers bit-identical: BatchNorm stops
updating its running statistics and spectral normalisation stops its power
iteration, so running the models changes nothing in them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["frozen"]


@contextlib.contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Run ``modules`` in eval mode with ``requires_grad=False``, then restore them.

    Args:
        *modules: the models to freeze; ``None`` entries are skipped, and a module
            reachable from several arguments (a shared submodule) is handled once.

    Restores, in a ``finally`` block, each submodule's ``training`` flag and each
    parameter's ``requires_grad`` to the values they had on entry.
    """
    seen_modules: dict[int, tuple[nn.Module, bool]] = {}
    seen_params: dict[int, tuple[nn.Parameter, bool]] = {}
    for module in modules:
        if module is None:
            continue
        for sub in module.modules():
            seen_modules.setdefault(id(sub), (sub, sub.training))
        for param in module.parameters():
            seen_params.setdefault(id(param), (param, param.requires_grad))
    try:
        for sub, _ in seen_modules.values():
            # Set each flag directly: Module.eval() would call overridden train()
            # methods of user modules, which may do more than flip the flag.
            sub.training = False
        for param, _ in seen_params.values():
            param.requires_grad_(False)
        yield
    finally:
        for sub, was_training in seen_modules.values():
            sub.training = was_training
        for param, required in seen_params.values():
            param.requires_grad_(required)
