"""Regenerate tests/data/sample_synthetic.jsonl: a small SYNTHETIC trace (not measured on any model).

    python tests/data/make_synthetic_sample.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tracing import CycleRecord, RequestRecord, RunMeta, TraceWriter


def main() -> None:
    rng = np.random.default_rng(7)
    meta = RunMeta(
        source="sim",
        target_model="SmolLM2-135M-Instruct (synthetic)",
        draft_model="ngram:n=3 (synthetic)",
        device="cpu",
        policy="fixed",
        policy_params={"tau": 4},
        extra={"synthetic": True, "note": "synthetic sample; replace with a live capture",
               "target_n_params": 134515008},
    )
    alpha, tau, t = 0.7, 4, 0.0
    with TraceWriter(Path(__file__).with_name("sample_synthetic.jsonl"), meta) as w:
        for rid in range(24):
            prompt, out_target = int(rng.integers(40, 200)), int(rng.integers(32, 96))
            arrival = start = t
            prefill = 0.002 * prompt * (1 + 0.05 * rng.standard_normal() ** 2)
            t += prefill
            first, out, cyc, ctx = t, 0, 0, prompt
            while out < out_target:
                k = min(tau, out_target - out - 1)
                acc = 0
                while acc < k and rng.random() < alpha:
                    acc += 1
                emitted = min(acc + 1, out_target - out)
                draft_s = k * 0.0021 * (1 + 0.1 * rng.random())
                verify_s = (0.024 + 0.003 * (k + 1)) * (1 + 0.1 * rng.random())
                overhead_s = 0.0004 * (1 + rng.random())
                w.write_cycle(CycleRecord(rid, cyc, t, k, acc, emitted, draft_s, verify_s,
                                          overhead_s, ctx))
                if cyc == 0:
                    first = t + draft_s + verify_s
                t += draft_s + verify_s + overhead_s
                out += emitted
                ctx += emitted
                cyc += 1
            w.write_request(RequestRecord(rid, arrival, start, first, t, prompt, out, prefill,
                                          cyc, prompt_text=f"synthetic prompt {rid}"))


if __name__ == "__main__":
    main()
