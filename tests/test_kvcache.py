"""live.kvcache: rollback of a KV cache, sliding-window attention included (tiny Mistral)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from live.decode import speculative_generate
from live.drafts import ModelDraft, NgramDraft
from live.kvcache import CachedLM
from live.sampling import SamplingConfig
from sim.policies.library import make_policy
from tiny import tiny_mistral

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WINDOW = 6


class Target:
    """Decode needs only .model and .device."""

    def __init__(self, model: Any) -> None:
        self.model, self.device = model, "cpu"


@pytest.fixture(scope="module")
def mistral() -> Any:
    model = tiny_mistral(0, window=WINDOW)
    with torch.no_grad():  # sharper distributions: long agreeing runs and real rejections
        model.lm_head.weight.mul_(4.0)
    return model


def noisy_copy(model: Any, seed: int, scale: float) -> Any:
    """The same architecture with noise on every weight: a draft that is sometimes rejected."""
    torch.manual_seed(seed)
    out = type(model)(model.config).eval()
    out.load_state_dict(model.state_dict())
    with torch.no_grad():
        for w in out.parameters():
            w.add_(scale * w.std() * torch.randn_like(w))
    return out


def full_forward_greedy(model: Any, ids: torch.Tensor, n: int) -> list[int]:
    """Greedy decoding with no cache at all: every step re-encodes the whole sequence, so the
    sliding-window mask is applied from scratch (the reference nothing can have cropped)."""
    seq = ids[0].tolist()
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[ids.shape[1]:]


def test_rollback_past_the_window_equals_reencoding(mistral: Any) -> None:
    """Beyond the window, a crop still gives the logits a fresh forward gives, and the windowed
    layers are trimmed back to their window after each crop."""
    history = torch.randint(0, 64, (3 * WINDOW,), generator=torch.Generator().manual_seed(2))
    seq = history.tolist()
    with torch.inference_mode():
        lm = CachedLM(mistral)
        assert lm.windowed
        lm.feed(torch.tensor([seq]))
        lm.crop_to(lm.length)  # nothing removed: still trims the layers to the window
        for keep, block in ((2, [3, 17, 29, 41]), (0, [5, 6, 7]), (3, [8, 9, 10, 11, 12])):
            lm.feed(torch.tensor([block]), logits_to_keep=len(block))
            lm.crop_to(len(seq) + keep)  # keep a prefix of the block, drop the rest
            seq += block[:keep]
            assert lm.cache.layers[0].keys.shape[-2] <= WINDOW - 1
            got = lm.feed(torch.tensor([[7]]))[-1]
            want = mistral(torch.tensor([[*seq, 7]])).logits[0, -1]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
            lm.crop_to(len(seq))
    assert len(seq) > 3 * WINDOW


@pytest.mark.parametrize("kind", ["ngram", "model"])
def test_sliding_window_greedy_crosses_the_window(mistral: Any, kind: str) -> None:
    """Speculative greedy on a sliding-window model runs far past its window (rejections and
    rollbacks on both caches) and equals cache-free greedy decoding."""
    ids = torch.tensor([[5, 6, 7, 8, 5, 6, 7]])
    draft = NgramDraft(2) if kind == "ngram" else ModelDraft(noisy_copy(mistral, 1, 0.3), "noisy")
    n = 5 * WINDOW
    r = speculative_generate(Target(mistral), draft, make_policy("fixed:tau=3"), ids,
                             max_new_tokens=n, sampling=SamplingConfig())
    assert r.tokens == full_forward_greedy(mistral, ids, n)
    assert any(c.accepted < c.tau for c in r.cycles)  # rollbacks happened past the window
    assert max(c.context_tokens for c in r.cycles) > 3 * WINDOW
