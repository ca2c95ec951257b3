"""Many runs of one scenario: what-if grids over scenario keys (and which point is best, when its
interval says so), 95% intervals from replications plus a bootstrap over the trace's requests,
replications under several seeds, and where a grid's points run (this process, a pool, a Dask
cluster).

Public names load their module on first use (no import at package import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracing.lazy import lazy_getattr

if TYPE_CHECKING:
    from sim.sweep.capacity import find_capacity
    from sim.sweep.decide import Option, better
    from sim.sweep.execution import check_cluster
    from sim.sweep.intervals import (
        above_zero,
        basis,
        below_zero,
        brief,
        caveats,
        make_draws,
        ratio_text,
        run_draws,
    )
    from sim.sweep.tune import DRAWS, parse_batches, parse_taus
    from sim.sweep.whatif import WhatIfResult, output_paths, parse_vary, sweep, write_outputs

_EXPORTS = {
    "DRAWS": "sim.sweep.tune",
    "Option": "sim.sweep.decide",
    "WhatIfResult": "sim.sweep.whatif",
    "above_zero": "sim.sweep.intervals",
    "basis": "sim.sweep.intervals",
    "below_zero": "sim.sweep.intervals",
    "better": "sim.sweep.decide",
    "brief": "sim.sweep.intervals",
    "caveats": "sim.sweep.intervals",
    "check_cluster": "sim.sweep.execution",
    "find_capacity": "sim.sweep.capacity",
    "make_draws": "sim.sweep.intervals",
    "output_paths": "sim.sweep.whatif",
    "parse_batches": "sim.sweep.tune",
    "parse_taus": "sim.sweep.tune",
    "parse_vary": "sim.sweep.whatif",
    "ratio_text": "sim.sweep.intervals",
    "run_draws": "sim.sweep.intervals",
    "sweep": "sim.sweep.whatif",
    "write_outputs": "sim.sweep.whatif",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


__all__ = [
    "DRAWS",
    "Option",
    "WhatIfResult",
    "above_zero",
    "basis",
    "below_zero",
    "better",
    "brief",
    "caveats",
    "check_cluster",
    "find_capacity",
    "make_draws",
    "output_paths",
    "parse_batches",
    "parse_taus",
    "parse_vary",
    "ratio_text",
    "run_draws",
    "sweep",
    "write_outputs",
]
