"""Waiting for a device: the clock is read only once the work queued on the device has ended.

GPU kernels run asynchronously, so a timestamp taken right after a call measures when the work
was *queued*. :func:`synchronizer` returns the call that waits for the device the tensors live on:
``torch.cuda.synchronize(device)`` for ``cuda:N`` (a bare ``torch.cuda.synchronize()`` waits for
the *current* device only, so with ``--device cuda:1`` it would stamp times before the work
ends), ``torch.xpu.synchronize(device)`` for ``xpu:N``, ``torch.mps.synchronize()`` on Apple
silicon (one device), and nothing on the CPU, whose work is done when the call returns.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _nothing() -> None:
    """The CPU's synchronize: its work ended when the call returned."""


def synchronizer(device: str | torch.device) -> Callable[[], None]:
    """A function that blocks until all work queued on ``device`` has finished."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    if dev.type == "xpu":
        return lambda: torch.xpu.synchronize(dev)
    if dev.type == "mps":
        return lambda: torch.mps.synchronize()
    return _nothing


def synchronize(device: str | torch.device) -> None:
    """Block until all work queued on ``device`` has finished (see :func:`synchronizer`)."""
    synchronizer(device)()
