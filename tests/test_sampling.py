"""The accept/resample rule and the sampler, without any model.

The exactness checks draw many cycles with a fixed seed and run a chi-square goodness-of-fit
test of the emitted tokens against the target distribution p. The same check is run on two
classic wrong rules written below, and must reject them: that is what shows it can fail.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from live.sampling import (
    SamplingConfig,
    accept_greedy,
    accept_sampling,
    make_generator,
    match_vocab,
    pick_token,
    probs_from_logits,
)
from tracing.errors import SpecsimError

Rule = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Generator], tuple[int, int]]

V = 6
DRAWS = 12000


def _dists(seed: int, rows: int) -> torch.Tensor:
    """Random, clearly non-uniform distributions (rows, V)."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2.0 * torch.randn(rows, V, generator=g), dim=-1)


def _accept_without_draw(x: torch.Tensor, q: torch.Tensor | None, p: torch.Tensor,
                         gen: torch.Generator) -> tuple[int, int]:
    """WRONG: accepts x_i whenever p_i(x_i) > 0, i.e. even when p < q, with no random draw."""
    tau = x.shape[0]
    n = 0
    while n < tau and float(p[n, x[n]]) > 0:
        n += 1
    dist = p[tau] if n == tau else p[n]
    return n, int(torch.multinomial(dist, 1, generator=gen))


def _resample_from_p(x: torch.Tensor, q: torch.Tensor | None, p: torch.Tensor,
                     gen: torch.Generator) -> tuple[int, int]:
    """WRONG: the right acceptance test, but a rejection resamples from p, not the residual."""
    tau = x.shape[0]
    q_x = q[torch.arange(tau), x] if q is not None else torch.ones(tau)
    p_x = p[torch.arange(tau), x]
    u = torch.rand(tau, generator=gen)
    keep = (u * q_x < p_x).int()
    n = int(keep.cumprod(0).sum())
    return n, int(torch.multinomial(p[n], 1, generator=gen))


def _emitted_counts(rule: Rule, p: torch.Tensor, q: torch.Tensor | None,
                    fixed_draft: list[int] | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Run the rule DRAWS times with tau = 2. Returns counts of the first emitted token, and of
    the second emitted token among cycles that accepted x_1 (it must then follow p_2)."""
    gen = make_generator(seed)
    tau = 2
    if fixed_draft is None:
        assert q is not None
        xs = torch.stack([torch.multinomial(q[i], DRAWS, replacement=True, generator=gen)
                          for i in range(tau)], dim=1)  # (DRAWS, tau)
    else:
        xs = torch.tensor([fixed_draft] * DRAWS)
    first = np.zeros(V, dtype=np.int64)
    second = np.zeros(V, dtype=np.int64)
    for x in xs:
        n, y = rule(x, q, p, gen)
        emitted = [*x[:n].tolist(), y]
        first[emitted[0]] += 1
        if n >= 1:
            second[emitted[1]] += 1
    return first, second


def _pvalues(rule: Rule, p: torch.Tensor, q: torch.Tensor | None,
             fixed_draft: list[int] | None = None, seed: int = 7) -> tuple[float, float]:
    first, second = _emitted_counts(rule, p, q, fixed_draft, seed)
    exact = p.double().numpy()
    exact = exact / exact.sum(axis=1, keepdims=True)
    p1, p2 = first.sum() * exact[0], second.sum() * exact[1]
    return float(chisquare(first, p1).pvalue), float(chisquare(second, p2).pvalue)


@pytest.mark.parametrize("seed", [0, 1])
def test_speculative_sampling_output_follows_p(seed: int) -> None:
    p, q = _dists(100 + seed, 3), _dists(200 + seed, 2)
    first, second = _pvalues(accept_sampling, p, q)
    assert first > 1e-3 and second > 1e-3


def test_one_hot_draft_is_exact() -> None:
    """A deterministic draft (q = None, one-hot on its tokens) keeps the output distribution p."""
    p = _dists(300, 3)
    first, second = _pvalues(accept_sampling, p, None, fixed_draft=[2, 4])
    assert first > 1e-3 and second > 1e-3


@pytest.mark.parametrize("wrong", [_accept_without_draw, _resample_from_p])
def test_the_check_catches_classic_bugs(wrong: Rule) -> None:
    p, q = _dists(100, 3), _dists(200, 2)
    first, _ = _pvalues(wrong, p, q)
    assert first < 1e-6


def test_the_check_catches_resample_from_p_with_one_hot_draft() -> None:
    p = _dists(300, 3)
    first, _ = _pvalues(_resample_from_p, p, None, fixed_draft=[2, 4])
    assert first < 1e-6


def test_sampling_rule_edge_cases() -> None:
    gen = make_generator(0)
    p = torch.zeros(3, V)
    p[0, 1], p[1, 2], p[2, 5] = 1.0, 1.0, 1.0
    # The draft matches a deterministic target: all accepted, bonus from p_3.
    assert accept_sampling(torch.tensor([1, 2]), p[:2].clone(), p, gen) == (2, 5)
    # p gives x_1 zero mass: always rejected, the correction is p_1's only token.
    q = torch.full((2, V), 1.0 / V)
    assert accept_sampling(torch.tensor([3, 2]), q, p, gen) == (0, 1)
    # p == q exactly: always accepted (the residual is never needed).
    assert accept_sampling(torch.tensor([1]), p[:1].clone(), p[:2], gen) == (1, 2)


def test_accept_greedy() -> None:
    assert accept_greedy([3, 4, 5], [3, 4, 5, 9]) == (3, 9)
    assert accept_greedy([3, 7, 5], [3, 4, 5, 9]) == (1, 4)
    assert accept_greedy([8], [3, 4]) == (0, 3)
    assert accept_greedy([], [6]) == (0, 6)


def test_probs_from_logits_temperature_and_top_p() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    greedy = probs_from_logits(logits, SamplingConfig())
    torch.testing.assert_close(greedy, torch.tensor([0.5, 0.3, 0.15, 0.05]))
    hot = probs_from_logits(logits, SamplingConfig(temperature=0.5))
    expect = torch.tensor([0.25, 0.09, 0.0225, 0.0025])
    torch.testing.assert_close(hot, expect / expect.sum())
    # top_p = 0.7: 0.5 alone is below 0.7, so 0.3 is kept too; the rest is cut and renormalised.
    nucleus = probs_from_logits(logits, SamplingConfig(temperature=1.0, top_p=0.7))
    torch.testing.assert_close(nucleus, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    batched = probs_from_logits(torch.stack([logits, logits.flip(0)]),
                                SamplingConfig(temperature=1.0, top_p=0.7))
    torch.testing.assert_close(batched[1], torch.tensor([0.0, 0.0, 0.375, 0.625]))


def test_pick_token_uses_only_the_generator() -> None:
    probs = _dists(5, 4)
    torch.manual_seed(0)
    a = pick_token(probs, False, make_generator(3))
    torch.manual_seed(99)
    b = pick_token(probs, False, make_generator(3))
    assert torch.equal(a, b)
    assert torch.equal(pick_token(probs, True, make_generator(3)), probs.argmax(-1))


def test_sampling_config_validation() -> None:
    with pytest.raises(SpecsimError, match="temperature"):
        SamplingConfig(temperature=-1.0)
    with pytest.raises(SpecsimError, match="top_p"):
        SamplingConfig(top_p=0.0)


def test_match_vocab() -> None:
    probs = torch.ones(2, 4)
    assert match_vocab(probs, 4) is probs
    assert match_vocab(probs, 6).shape == (2, 6)
    assert float(match_vocab(probs, 6)[:, 4:].sum()) == 0.0
    assert match_vocab(probs, 3).shape == (2, 3)


def test_request_seeds_differ_by_request_and_repeat_by_seed() -> None:
    from live.sampling import request_seed

    seeds = [request_seed(7, rid) for rid in range(100)]
    assert len(set(seeds)) == 100  # every request its own stream
    assert seeds == [request_seed(7, rid) for rid in range(100)]  # reproducible from the seed
    assert request_seed(8, 0) != request_seed(7, 0)
    assert all(0 <= s < 2**63 for s in [*seeds, request_seed(-1, 3)])
