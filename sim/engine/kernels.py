"""Compiled per-request loops of the single-stream server for the learning policies.

The single-stream server (:mod:`sim.engine.stream`) runs a request's cycles in one tight loop. For the
heuristic and adaptive policies that loop is the policy's own work -- adaptive recomputes a
censored survival curve, a cost line and an argmax over every draft length before each cycle --
and in plain Python it costs several times SimPy's own event. Here the same loop, with the
policy's ``next_tau``/``observe`` written inline over arrays, is compiled with numba.

Exactness is the contract: every float operation happens in the order and with the rounding the
Python policy uses (``max(0.0, x)`` as ``x if x > 0.0 else 0.0``, ``sum()`` of a list as the
interpreter sums it), so a run through a kernel is bit for bit the run through the policy object
(``tests/test_sim_kernels.py``, and the pinned figures). The policy object stays the source of
truth: a kernel reads its state when built and writes it back after every request.

Used when the drafting is plain (depths straight from the run's stream), the policy is exactly
:class:`~sim.policies.library.Heuristic` or an unbudgeted :class:`~sim.policies.library.Adaptive`, and its
longest draft is inside the server's verify-cost table; anything else takes the Python loop.
``SPECSIM_NO_KERNELS=1`` turns kernels off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numba
import numpy as np

from sim.models.acceptance import Depths
from sim.policies.base import Policy
from sim.policies.library import Adaptive, Heuristic

HEURISTIC, ADAPTIVE = 0, 1
# int state: [kind, max_tau, tau, probe_every, since_probe, neumaier_sum]
I_KIND, I_MAX_TAU, I_TAU, I_PROBE_EVERY, I_SINCE_PROBE, I_NEUMAIER = range(6)
# float state: [hazard decay, prior_alpha, prior_weight, unit, cost decay, has draft cost,
#               draft per token, w, sx, sxx, sy, sxy]
(F_DECAY, F_ALPHA, F_PRIOR_W, F_UNIT, F_COST_DECAY, F_HAS_D, F_D, F_W, F_SX, F_SXX, F_SY,
 F_SXY) = range(12)
NEED_DEPTHS, DONE = 1, 0

ENABLED = os.environ.get("SPECSIM_NO_KERNELS", "") in ("", "0")
CHUNK = 65536  # rows per column buffer
# log column -> (buffer, row): what _run_request writes where
COLUMNS = {"tau": ("cols_i", 0), "accepted": ("cols_i", 1), "emitted": ("cols_i", 2),
           "context_tokens": ("cols_i", 3), "start_s": ("cols_f", 0), "draft_s": ("cols_f", 1),
           "verify_s": ("cols_f", 2)}

jit = numba.njit(cache=True, nogil=True)  # compiled on first use, cached on disk


@jit
def _list_sum(x: np.ndarray, neumaier: int) -> float:
    """``sum()`` of a list of floats as this interpreter computes it: left to right, and from
    Python 3.12 with Neumaier's compensation."""
    s = 0.0
    if not neumaier:
        for v in x:
            s += v
        return s
    c = 0.0
    for v in x:
        t = s + v
        if abs(s) >= abs(v):
            c += (s - t) + v
        else:
            c += (v - t) + s
        s = t
    if c != 0.0 and np.isfinite(c):
        s += c
    return s


@jit
def _useful_tau(tau: int, n: int, out: int) -> int:
    """:func:`sim.policies.base.useful_tau`: a draft length clipped to what the request can use."""
    room = n - out - 1
    if tau > room:
        tau = room
    return tau if tau > 0 else 0


@jit
def _adaptive_tau(n: int, out: int, ip: np.ndarray, fp: np.ndarray, reached: np.ndarray,
                  accepted: np.ndarray, cost_val: np.ndarray, cost_n: np.ndarray,
                  surv: np.ndarray) -> int:
    """:meth:`Adaptive.next_tau` (no budget) over the arrays."""
    cap = _useful_tau(ip[I_MAX_TAU], n, out)
    w = fp[F_W]
    if fp[F_HAS_D] == 0.0 or not w > 0.0:  # cold start: no costs measured yet
        tau = ip[I_TAU]
        return cap if cap < tau else tau
    # survival (HazardEstimate.survival, pooled prior)
    wh = fp[F_PRIOR_W] * fp[F_UNIT]
    pooled = (_list_sum(accepted, ip[I_NEUMAIER]) + wh * fp[F_ALPHA]) / (
        _list_sum(reached, ip[I_NEUMAIER]) + wh)
    wp = wh * pooled
    s = 1.0
    for i in range(reached.size):
        s *= (accepted[i] + wp) / (reached[i] + wh)
        surv[i] = s
    # the verify-cost line (CostEstimate.line)
    mean_x, mean_y = fp[F_SX] / w, fp[F_SY] / w
    var_x = fp[F_SXX] / w - mean_x * mean_x
    slope = 0.0
    if var_x > 1e-6:
        v = (fp[F_SXY] / w - mean_x * mean_y) / var_x
        slope = v if v > 0.0 else 0.0
    d = fp[F_D]
    best, best_rate, tokens = 0, -1.0, 1.0
    for t in range(cap + 1):
        if t:
            tokens += surv[t - 1]
        scored = t + 1
        if cost_n[scored] > 0:
            verify = cost_val[scored]
        else:
            verify = mean_y + slope * (scored - mean_x)
            verify = verify if verify > 0.0 else 0.0
        cost = t * d + verify
        rate = tokens / (cost if cost > 1e-12 else 1e-12)
        if rate > best_rate:
            best, best_rate = t, rate
    ip[I_SINCE_PROBE] += 1
    if ip[I_SINCE_PROBE] >= ip[I_PROBE_EVERY] and best < cap:
        ip[I_SINCE_PROBE] = 0
        best += 1
    return best


@jit
def _adaptive_observe(tau: int, acc: int, draft_s: float, verify_s: float, ovh: float,
                      fp: np.ndarray, reached: np.ndarray, accepted: np.ndarray,
                      cost_val: np.ndarray, cost_n: np.ndarray) -> None:
    """:meth:`Adaptive.observe`: HazardEstimate.update, then CostEstimate.update."""
    if tau > 0:
        decay = fp[F_DECAY]
        if decay < 1.0:
            fp[F_UNIT] /= decay
            if fp[F_UNIT] > 1e100:
                unit = fp[F_UNIT]
                for i in range(reached.size):
                    reached[i] = reached[i] / unit
                    accepted[i] = accepted[i] / unit
                fp[F_UNIT] = 1.0
        m, w = min(tau, reached.size), fp[F_UNIT]
        for i in range(min(acc + 1, m)):
            reached[i] += w
        for i in range(min(acc, m)):
            accepted[i] += w
        per_token = draft_s / tau
        if fp[F_HAS_D] == 0.0:
            fp[F_D], fp[F_HAS_D] = per_token, 1.0
        else:
            fp[F_D] = fp[F_D] + 0.1 * (per_token - fp[F_D])
    k = fp[F_COST_DECAY]
    x, y = float(tau + 1), verify_s + ovh
    scored = tau + 1
    count = cost_n[scored]
    cost = y if count == 0 else cost_val[scored]
    count += 1
    a, b = 1.0 / count, 1.0 - k
    cost_val[scored] = cost + (b if b > a else a) * (y - cost)
    cost_n[scored] = count
    fp[F_W] = fp[F_W] * k + 1.0
    fp[F_SX] = fp[F_SX] * k + x
    fp[F_SXX] = fp[F_SXX] * k + x * x
    fp[F_SY] = fp[F_SY] * k + y
    fp[F_SXY] = fp[F_SXY] * k + x * y


@jit
def _run_request(n: int, out: int, cycle: int, context: int, t: float, speed: float,
                 block: np.ndarray, pos: int, vt: np.ndarray, d_s: float, ovh: float, kc: float,
                 ip: np.ndarray, fp: np.ndarray, reached: np.ndarray, accepted: np.ndarray,
                 cost_val: np.ndarray, cost_n: np.ndarray, surv: np.ndarray,
                 cols_i: np.ndarray, cols_f: np.ndarray, row: int
                 ) -> tuple[int, int, int, int, float, int, int]:
    """One request's cycles from where it stands (``out`` tokens, ``cycle`` cycles done) until
    it is done (status DONE) or the depth block runs out (NEED_DEPTHS: refill and call again).
    Rows go to ``cols_i`` (tau, accepted, emitted, context) and ``cols_f`` (start, draft,
    verify) from ``row``. Returns (status, out, cycle, context, t, pos, row)."""
    scaled = speed != 1.0
    kind = ip[I_KIND]
    while out < n:
        if pos >= block.size:
            return NEED_DEPTHS, out, cycle, context, t, pos, row
        if kind == HEURISTIC:
            tau = _useful_tau(ip[I_TAU], n, out)
        else:
            tau = _adaptive_tau(n, out, ip, fp, reached, accepted, cost_val, cost_n, surv)
        depth = block[pos]
        pos += 1
        acc = tau if depth > tau else depth
        draft_s = tau * d_s
        verify_s = vt[tau] + kc * context
        if scaled:
            draft_s, verify_s = draft_s * speed, verify_s * speed
        began = t
        t = t + (draft_s + verify_s + ovh)
        left = n - out
        emitted = acc + 1 if acc + 1 < left else left
        cols_i[0, row], cols_i[1, row], cols_i[2, row], cols_i[3, row] = tau, acc, emitted, context
        cols_f[0, row], cols_f[1, row], cols_f[2, row] = began, draft_s, verify_s
        row += 1
        if kind == HEURISTIC:
            if tau > 0:
                if acc == tau:
                    up = ip[I_TAU] + 2
                    ip[I_TAU] = up if up < ip[I_MAX_TAU] else ip[I_MAX_TAU]
                else:
                    down = ip[I_TAU] - 1
                    ip[I_TAU] = down if down > 1 else 1
        else:
            _adaptive_observe(tau, acc, draft_s, verify_s, ovh, fp, reached, accepted,
                              cost_val, cost_n)
        cycle += 1
        out += emitted
        context += emitted
    return DONE, out, cycle, context, t, pos, row


class StreamKernel:
    """A policy's single-stream request loop, compiled: the policy's state in arrays, the run's
    depth block, and the cycle columns in chunked buffers that the run's log reads as arrays."""

    def __init__(self, policy: Heuristic | Adaptive, vt: list[float], d_s: float, ovh: float,
                 kc: float, depths: Depths, cols: dict[str, list[Any]]) -> None:
        self.policy, self.depths, self.cols = policy, depths, cols
        self.vt = np.asarray(vt, dtype=np.float64)
        self.d_s, self.ovh, self.kc = float(d_s), float(ovh), float(kc)
        neumaier = int(sys.version_info >= (3, 12))
        if isinstance(policy, Adaptive):
            hz, cs = policy.hazard, policy.costs
            self.ip = np.array([ADAPTIVE, policy.max_tau, policy.tau, policy.probe_every,
                                policy._since_probe, neumaier], dtype=np.int64)
            d = cs.draft_per_token
            self.fp = np.array([hz.decay, hz.prior_alpha, hz.prior_weight, hz._unit, cs.decay,
                                float(d is not None), 0.0 if d is None else d, cs._w, cs._sx,
                                cs._sxx, cs._sy, cs._sxy], dtype=np.float64)
            self.reached = np.asarray(hz.reached, dtype=np.float64)
            self.accepted = np.asarray(hz.accepted, dtype=np.float64)
            self.cost_val = np.zeros(policy.max_tau + 2)
            self.cost_n = np.zeros(policy.max_tau + 2, dtype=np.int64)
            for scored, (cost, count) in cs._cost_at.items():
                self.cost_val[scored], self.cost_n[scored] = cost, count
        else:
            self.ip = np.array([HEURISTIC, policy.max_tau, policy.tau, 1, 0, neumaier],
                               dtype=np.int64)
            self.fp = np.zeros(12)
            self.reached = self.accepted = self.cost_val = np.zeros(1)
            self.cost_n = np.zeros(1, dtype=np.int64)
        self.surv = np.zeros(self.reached.size)
        self.block, self.pos = np.zeros(0, dtype=np.int64), 0
        self.cols_i = np.empty((4, 0), dtype=np.int64)  # no chunk until the first request
        self.cols_f = np.empty((3, 0), dtype=np.float64)
        self.row = 0

    def _new_chunk(self, size: int) -> None:
        """Fresh row buffers; their filled part becomes a new last part of each log column."""
        self.cols_i = np.empty((4, size), dtype=np.int64)
        self.cols_f = np.empty((3, size), dtype=np.float64)
        self.row = 0
        for key in COLUMNS:
            self.cols[key].append(None)  # set by _publish after each request

    def request(self, n: int, context: int, t: float, speed: float) -> tuple[int, int, float]:
        """Run one request of ``n`` tokens from context ``context`` at clock ``t`` (after its
        prefill): returns (tokens out, cycles, end time); its rows are in the log's columns."""
        room = self.cols_i.shape[1] - self.row
        if not self.cols_i.shape[1] or room < n:  # a request's rows stay in one chunk
            self._new_chunk(max(CHUNK, n))
        out = cycle = 0
        while True:
            status, out, cycle, context, t, self.pos, self.row = _run_request(
                n, out, cycle, context, t, speed, self.block, self.pos, self.vt, self.d_s,
                self.ovh, self.kc, self.ip, self.fp, self.reached, self.accepted,
                self.cost_val, self.cost_n, self.surv, self.cols_i, self.cols_f, self.row)
            if status == DONE:
                break
            self.depths.refill()
            self.block, self.pos = self.depths.arrays[0], 0
        self._publish()
        self._write_back()
        return out, cycle, t

    def first_token_s(self, cycles: int) -> float:
        """End of the last request's first cycle (the same sum the clock made)."""
        row = self.row - cycles
        f = self.cols_f
        return float(f[0, row] + (f[1, row] + f[2, row] + self.ovh))

    def _publish(self) -> None:
        """The current chunk's filled rows as the last part of each column (one view per chunk,
        extended after each request)."""
        b = self.row
        for key, (buf, i) in COLUMNS.items():
            self.cols[key][-1] = getattr(self, buf)[i, :b]

    def _write_back(self) -> None:
        """The arrays' state into the policy object (after every request)."""
        policy, ip, fp = self.policy, self.ip, self.fp
        if isinstance(policy, Adaptive):
            hz, cs = policy.hazard, policy.costs
            policy._since_probe = int(ip[I_SINCE_PROBE])
            hz.reached, hz.accepted = self.reached.tolist(), self.accepted.tolist()
            hz._unit = float(fp[F_UNIT])
            cs.draft_per_token = float(fp[F_D]) if fp[F_HAS_D] else None
            cs._w, cs._sx, cs._sxx, cs._sy, cs._sxy = (float(v) for v in fp[F_W:])
            cs._cost_at = {int(k): (float(self.cost_val[k]), int(self.cost_n[k]))
                           for k in np.flatnonzero(self.cost_n)}
        else:
            policy.tau = int(ip[I_TAU])


def stream_kernel(policy: Policy, plain: bool, vt: list[float], d_s: float, ovh: float,
                  kc: float, depths: Depths, cols: dict[str, list[Any]]) -> StreamKernel | None:
    """A compiled loop for this policy, or None where the Python loop must run (see the module
    docstring); ``vt[t]`` is the verify cost of draft length t (without the context term)."""
    if not (ENABLED and plain) or policy.tau_by_batch:
        return None
    if type(policy) is Heuristic and isinstance(policy, Heuristic):
        if policy.max_tau < len(vt):
            return StreamKernel(policy, vt, d_s, ovh, kc, depths, cols)
    elif type(policy) is Adaptive and isinstance(policy, Adaptive) and not policy.budget:
        top = policy.max_tau + 1
        if top < len(vt) and all(1 <= k <= top for k in policy.costs._cost_at):
            return StreamKernel(policy, vt, d_s, ovh, kc, depths, cols)
    return None
