"""Record llama.cpp's server at n-gram draft lengths 2, 4, 8 x 1, 2, 4 slots (``traces/tune/llamacpp/``).

The measured sweep behind the llama.cpp rows of ``specsim tune``'s validation (issue 25):
``llama-server`` (bundled SmolLM2 GGUF, ``-t 1``, ``--no-repack``, ``ngram-simple``) with draft
length ``--spec-ngram-simple-size-m`` = ``--spec-draft-n-max`` = 2, 4, 8 (size-n 3; 2 for draft
length 2, since ngram-simple never drafts when size-m < size-n) and target-only (no ``--spec-*``
flags: what ``specsim tune`` calls tau 0) at ``-np`` 1, 2, 4 slots, each
under closed-loop concurrency = slots, driven by ``specsim load`` (``builtin:edit``, bounded
requests x tokens). Configurations are interleaved and rotated round by round (each its own
server: ``record_llamacpp_runs.one_run``); every trace carries its server command and the load
average before/after (``extra.server_command``, ``extra.uptime``). Run it under ``nice -n -10``:

    nice -n -10 python tests/bench/record_llamacpp_tune.py [--out traces/tune/llamacpp]
        [--requests 12] [--max-tokens 32] [--rounds 2] [--only NAME,...]

Writes ``OUT/ngram-nmaxT-npS-rK.jsonl`` and ``OUT/none-npS-rK.jsonl``; ``tests/bench/tune_validation.py --llamacpp OUT`` makes
the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DRAFTS = (2, 4, 8)
SLOTS = (1, 2, 4)


def configs() -> dict[str, tuple[int, int, int, tuple[str, ...], tuple[str, ...]]]:
    """name -> (slots, concurrency, draft length (0: target-only), drafter flags, extra flags)."""
    out = {}
    for slots in SLOTS:
        out[f"none-np{slots}"] = (slots, slots, 0, (), ())  # target-only: no --spec-* flags
        for n in DRAFTS:
            size_n = "2" if n == 2 else "3"
            drafter = ("--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", size_n)
            out[f"ngram-nmax{n}-np{slots}"] = (slots, slots, n, drafter, ())
    return out


def main() -> int:
    from record_llamacpp_runs import record

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "traces" / "tune" / "llamacpp"))
    ap.add_argument("--prompts", default="builtin:edit")
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--first-round", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated configuration names")
    record(ap.parse_args(), configs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
