"""live.device: the clock waits for the device the work runs on (a fake backend stands in)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import live.decode
from live.decode import speculative_generate
from live.device import synchronizer
from live.sampling import SamplingConfig
from sim.policies.library import make_policy
from tiny import tiny_llama


class Recorder:
    """A fake ``synchronize``: records the arguments of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)


@pytest.mark.parametrize(("device", "backend", "expected"), [
    ("cuda:1", "cuda", (torch.device("cuda:1"),)),
    ("cuda", "cuda", (torch.device("cuda"),)),
    ("xpu:2", "xpu", (torch.device("xpu:2"),)),
    ("mps", "mps", ()),
])
def test_synchronizer_waits_for_the_named_device(monkeypatch: pytest.MonkeyPatch, device: str,
                                                 backend: str, expected: tuple[Any, ...]) -> None:
    fake = Recorder()
    monkeypatch.setattr(getattr(torch, backend), "synchronize", fake)
    sync = synchronizer(device)
    assert fake.calls == []  # nothing waits until the function is called
    sync()
    assert fake.calls == [expected]


def test_cpu_needs_no_synchronize(monkeypatch: pytest.MonkeyPatch) -> None:
    fakes = {name: Recorder() for name in ("cuda", "xpu", "mps")}
    for name, fake in fakes.items():
        monkeypatch.setattr(getattr(torch, name), "synchronize", fake)
    synchronizer("cpu")()
    assert all(not f.calls for f in fakes.values())


def test_decode_syncs_the_targets_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """speculative_generate asks for the synchronizer of the target's own device and waits on
    it after prefill, after drafting and after each verify pass."""
    asked: list[str] = []
    waits = Recorder()

    def fake_synchronizer(device: str) -> Any:
        asked.append(device)
        return waits

    monkeypatch.setattr(live.decode, "synchronizer", fake_synchronizer)

    class Target:
        model = tiny_llama(0, layers=1, hidden=16)
        device = "cpu"

    r = speculative_generate(Target(), None, make_policy("target_only"), torch.tensor([[1, 2]]),
                             max_new_tokens=3, sampling=SamplingConfig())
    assert asked == ["cpu"]
    assert len(waits.calls) == 1 + 2 * len(r.cycles)
