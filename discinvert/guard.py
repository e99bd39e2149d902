"""Leave the user's models exactly as they were handed over.

Every entry point that runs the user's generator or discriminator does so inside
:func:`frozen`, which switches the models to eval mode with gradients off for their
parameters and puts every ``training`` flag and ``requires_grad`` back afterwards,
also when the body raises or is interrupted (``KeyboardInterrupt`` included).

Eval mode keeps standard layers still: BatchNorm stops updating its running statistics
and ``torch.nn.utils`` spectral normalisation stops its power iteration. Some user
modules change state in every forward regardless of mode (hand-written spectral norms
that iterate on each call, quantisation observers): :func:`frozen` notices any buffer
whose version counter moved and copies its original value back, and refuses to hide a
parameter changed in place.

Entry points are serialised by one process-wide re-entrant lock: two threads running the
same model would otherwise save each other's flags and read each other's hooked features.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import torch
from torch import nn

__all__ = ["buffer_snapshot", "frozen"]

_LOCK = threading.RLock()


@contextlib.contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Run ``modules`` in eval mode with ``requires_grad=False``, then restore them.

    Args:
        *modules: the models to freeze; ``None`` entries are skipped, and a module
            reachable from several arguments (a shared submodule) is handled once.

    Restores, in a ``finally`` block, each submodule's ``training`` flag, each
    parameter's ``requires_grad``, and the value of any buffer that a forward pass
    changed in place.

    Raises:
        RuntimeError: a forward pass changed a parameter in place (after restoring
            everything else); discinvert cannot undo that without copying every weight.
    """
    with _LOCK:
        seen_modules: dict[int, tuple[nn.Module, bool]] = {}
        seen_params: dict[int, tuple[nn.Parameter, bool, int]] = {}
        restore_buffers = buffer_snapshot(*modules)
        for module in modules:
            if module is None:
                continue
            for sub in module.modules():
                seen_modules.setdefault(id(sub), (sub, sub.training))
            for param in module.parameters():
                seen_params.setdefault(id(param), (param, param.requires_grad, param._version))
        try:
            for sub, _ in seen_modules.values():
                # Set each flag directly: Module.eval() would call overridden train()
                # methods of user modules, which may do more than flip the flag.
                sub.training = False
            for param, _, _ in seen_params.values():
                param.requires_grad_(False)
            yield
        finally:
            for sub, was_training in seen_modules.values():
                sub.training = was_training
            for param, required, _ in seen_params.values():
                param.requires_grad_(required)
            restore_buffers()
            changed = [p for p, _, version in seen_params.values() if p._version != version]
        if changed:
            raise RuntimeError(
                f"a forward pass of your model changed {len(changed)} parameter(s) in place even in eval "
                "mode (e.g. a hand-written normalisation that updates its weights on every call); "
                "discinvert cannot leave such a model untouched. Register that state as a buffer instead."
            )


def buffer_snapshot(*modules: nn.Module | None) -> Callable[[], None]:
    """Take the modules' buffer values now; calling the returned function copies them back in place.

    For checks that compare several forward passes of a model whose buffers move on every call even
    in eval mode (a hand-written spectral norm's power iteration): each pass then starts from the
    same state, so the comparison sees what the check asks about, not the model's own drift. Only
    buffers whose version counter moved are copied back.
    """
    taken = {}
    for module in modules:
        if module is None:
            continue
        for buffer in module.buffers():
            taken.setdefault(id(buffer), (buffer, buffer._version, buffer.detach().clone()))

    def restore() -> None:
        with torch.no_grad():
            for buffer, version, original in taken.values():
                if buffer._version != version:
                    buffer.copy_(original)

    return restore
