"""Does the model fit the device, and how many sequences' KV caches fit beside it?

On a modelled device (a cost model bound to a catalog entry: :class:`sim.models.costmodel.PassModel`),
the weights (the target's, and a separate draft model's) and the KV cache of the scenario's
longest request must fit the memory of ``tp`` GPUs of that kind; what is left after the weights,
divided by the KV cache of a request of the workload's mean length, bounds the concurrent batch
(the continuous-batching server admits no more). ``USABLE`` of the memory is counted as
available: the rest goes to the CUDA context, activations and the allocator's slack (vLLM's
default ``gpu_memory_utilization`` is the same 0.9).

A what-if point that does not fit carries ``fits: false`` with the numbers (``memory``), is
never feasible, and so is never "best".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sim.models.costmodel import DTYPE_BYTES, PassModel

USABLE = 0.90
GB = 1e9


@dataclass(frozen=True)
class MemoryCheck:
    """The numbers behind ``fits`` (bytes in GB)."""

    device: str
    gpus: int
    usable_gb: float
    weights_gb: float
    kv_gb_per_token: float
    mean_tokens: float
    longest_tokens: int
    capacity_seqs: int  # requests of mean length whose caches fit beside the weights

    @property
    def needed_gb(self) -> float:
        """Weights plus the longest request's KV cache."""
        return self.weights_gb + self.kv_gb_per_token * self.longest_tokens

    @property
    def fits(self) -> bool:
        """The weights and one longest request's cache fit."""
        return self.needed_gb <= self.usable_gb

    def to_dict(self) -> dict[str, Any]:
        """``simulate --json``'s ``memory``."""
        return {"fits": self.fits, "device": self.device, "gpus": self.gpus,
                "usable_gb": round(self.usable_gb, 3), "weights_gb": round(self.weights_gb, 3),
                "kv_gb_per_token": self.kv_gb_per_token,
                "needed_gb": round(self.needed_gb, 3), "longest_tokens": self.longest_tokens,
                "mean_tokens": round(self.mean_tokens, 1),
                "kv_capacity_seqs": self.capacity_seqs}

    def warning(self, max_batch: int) -> str | None:
        """What to tell the user: it does not fit, or the KV cache bounds the batch."""
        if not self.fits:
            return (f"does not fit: weights {self.weights_gb:.1f} GB + the longest request's KV "
                    f"cache {self.needed_gb - self.weights_gb:.1f} GB > {self.usable_gb:.1f} GB "
                    f"usable on {self.gpus} x {self.device} (raise [target] tp, or a smaller "
                    "dtype); figures are for a machine that does not exist")
        if self.capacity_seqs < max_batch:
            return (f"KV cache bounds the batch: {self.capacity_seqs} requests of "
                    f"{self.mean_tokens:.0f} tokens fit beside {self.weights_gb:.1f} GB of "
                    f"weights on {self.gpus} x {self.device}, so at most "
                    f"{self.capacity_seqs} run at once ([server] max_batch = {max_batch})")
        return None


def check(model: PassModel, mean_tokens: float, longest_tokens: int) -> MemoryCheck:
    """The memory check of ``model``'s device, target (and separate draft) for requests of
    ``mean_tokens`` (prompt + output) on average and ``longest_tokens`` at most."""
    width = DTYPE_BYTES[model.dtype]
    weights = model.target.n_params * width
    kv_token = model.target.kv_bytes_per_token(model.dtype)
    if model.draft is not None and model.draft_separate:
        weights += model.draft.n_params * width
        kv_token += model.draft.kv_bytes_per_token(model.dtype)
    usable = model.device.memory_gb * GB * model.tp * USABLE
    left = usable - weights
    per_seq = kv_token * max(mean_tokens, 1.0)
    capacity = max(0, math.floor(left / per_seq)) if left > 0 else 0
    return MemoryCheck(device=model.device.key, gpus=model.tp, usable_gb=usable / GB,
                       weights_gb=weights / GB, kv_gb_per_token=kv_token / GB,
                       mean_tokens=float(mean_tokens), longest_tokens=int(longest_tokens),
                       capacity_seqs=capacity)
