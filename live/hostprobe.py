"""How fast the measuring process dispatches eager work: a yardstick recorded beside every
profile, so that two profiles' levels can be told apart from their host's speed.

An eager transformers pass of a small model on a GPU is launch-bound: ~15 kernels a layer, each
dispatched from Python through the ATen dispatcher to a CUDA launch, while the GPU idles. Its time
is the host's speed, and that speed drifts between processes on a shared machine: on the H200
machine of ``traces/h200/`` the same 30-layer 1-token pass took 18.2, 31.1 and 24-28 ms in three
processes minutes apart. A cost model fitted on one process's profile then misses another's by
the drift, whatever its shape terms.

:func:`host_probe` times a fixed stream of tiny in-place ops on the device (each one dispatch and,
on a GPU, one kernel launch whose work is nothing), synchronized at the end of each round, and
reports the microseconds per op over all rounds: wall time, not a median of short rounds, because
what slows a host is often its share of a core (a busy neighbour, CPU steal), which a window
shorter than a scheduler slice never sees (``tests/bench/bench_hostprobe.py``: with a busy
process on the same core, 1.2 ms rounds read 0.88x quiet while a dispatch-bound pass took
1.77x). A round is ~25 ms of dispatch on a CPU, a few scheduler slices, about one pass. It reads
the path a launch-bound pass pays -- Python, the dispatcher, the launch -- and none of the model.
``specsim profile`` records it before and after its passes (``host_probe``), a capture after its
warm-up and a server after its start-up profile; ``specsim costs --fit-on A --against B
--host-probe`` scales the host time fitted on A by B's probe over A's.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from live.device import synchronizer

OPS = 8000  # ops a round: ~25 ms on a CPU, ~60 ms of launches on a GPU
ROUNDS = 5


def host_probe(device: str | torch.device, *, ops: int = OPS, rounds: int = ROUNDS
               ) -> dict[str, Any]:
    """Microseconds per dispatched tiny op on ``device``: the wall time of ``rounds`` rounds of
    ``ops`` ops (one untimed round first) over their ops. Returns ``{"us_per_op", "ops",
    "rounds"}``."""
    if ops < 1 or rounds < 1:
        raise ValueError(f"host_probe: ops and rounds must be >= 1, got {ops}, {rounds}")
    sync = synchronizer(device)
    times = []
    with torch.inference_mode():
        x = torch.zeros(8, device=device)
        for r in range(rounds + 1):
            sync()
            t0 = time.perf_counter()
            for _ in range(ops):
                x.add_(1.0)
            sync()
            if r:  # round 0 warms the allocator and the dispatcher's caches
                times.append(time.perf_counter() - t0)
    return {"us_per_op": round(sum(times) / (ops * rounds) * 1e6, 4), "ops": ops,
            "rounds": rounds}
