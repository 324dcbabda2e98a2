"""Gradient checkpointing of a model's blocks (``Warpaint.enable_gradient_checkpointing()``).

A checkpointed block keeps only its inputs and runs again in the backward pass: about a third
more compute for activations several times smaller, with the same gradients.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.utils.checkpoint import checkpoint


def run_block(module: nn.Module, *args, checkpointing: bool = False, **kwargs):
    """``module(*args, **kwargs)``; checkpointed when ``checkpointing`` and autograd is recording
    (without a backward pass there is nothing to save)."""
    if not (checkpointing and torch.is_grad_enabled()):
        return module(*args, **kwargs)
    return checkpoint(module, *args, use_reentrant=False, context_fn=lambda: _spectral_norm_contexts(module),
                      **kwargs)


def _spectral_norm_contexts(module: nn.Module):
    """Contexts for the first run and the re-run of a checkpointed block. A spectral norm takes a
    power-iteration step at every training-mode call, so the re-run must not: it reuses the
    singular vectors that this very call used (a block called twice per step, like the exemplar
    encoder, has moved them on since), in eval mode. The gradients are then exactly those of the
    plain forward."""
    norms = [m for m in module.modules() if isinstance(m, _SpectralNorm)]
    used: list[tuple[torch.Tensor, torch.Tensor]] = []

    @contextmanager
    def first_run():
        yield
        used[:] = [(m._u.clone(), m._v.clone()) for m in norms]

    @contextmanager
    def rerun():
        current = [(m._u.clone(), m._v.clone(), m.training) for m in norms]
        for m, (u, v) in zip(norms, used):
            m._u.copy_(u)
            m._v.copy_(v)
            m.training = False
        try:
            yield
        finally:
            for m, (u, v, training) in zip(norms, current):
                m._u.copy_(u)
                m._v.copy_(v)
                m.training = training

    return first_run(), rerun()
