"""Shared fixtures: a seeded generator and a small, hand-checkable trace."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from tracing import CycleRecord, RequestRecord, RunMeta, Trace

# Property tests draw the same examples on every run: a failure in CI is reproducible, never a
# flake. HYPOTHESIS_PROFILE=explore draws fresh random examples each run, to search further.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    """One seeded generator per test."""
    return np.random.default_rng(1234)


def make_small_trace(with_probs: bool = False) -> Trace:
    """Two requests: r0 with cycles (tau, accepted) = (4,4) (4,1) (4,0); r1 with (2,2) (0,0)."""
    meta = RunMeta(source="sim", target_model="t", draft_model="d", policy="fixed",
                   policy_params={"tau": 4}, extra={"synthetic": True})
    cycles: list[CycleRecord] = []
    t = 0.0
    for rid, plan in ((0, [(4, 4), (4, 1), (4, 0)]), (1, [(2, 2), (0, 0)])):
        for i, (tau, acc) in enumerate(plan):
            probs = [0.9 - 0.1 * j for j in range(tau)] if with_probs else None
            cycles.append(CycleRecord(rid, i, t, tau, acc, acc + 1, 0.001 * tau, 0.01, 0.0005,
                                      10 + i, draft_prob=probs, target_prob=probs))
            t += 0.001 * tau + 0.0105
    requests = [
        RequestRecord(0, 0.0, 0.0, 0.0115, 0.05, 10, 8, 0.002, 3, prompt_text="hello <b>"),
        RequestRecord(1, 0.05, 0.05, 0.07, 0.09, 12, 4, 0.002, 2),
    ]
    return Trace.from_records(meta, requests, cycles)


@pytest.fixture
def small_trace() -> Trace:
    """A tiny valid trace (see make_small_trace)."""
    return make_small_trace()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models run ~15x faster single-threaded on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama saved to disk, once per test module."""
    from test_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> Any:
    """The tiny model (a ``live.models.LoadedModel``), loaded once per test module."""
    from live.models import load_model

    return load_model(str(tiny_dir), device="cpu")
