"""The HTML report: plots present, trace text escaped and inert, self-contained, size-bounded."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from plotly.offline import get_plotlyjs

from analysis import figures as F
from analysis.report import (
    ReportConfig,
    WhatIfConfig,
    build_report,
    first_requests,
    order_findings,
    render_html,
    script_json,
    write_report,
)
from conftest import make_small_trace
from tracing import RunMeta, Trace, validate_trace

PWN = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=\"window.__pwned=2\">"
CLOSE = "</script><script>window.__pwned=3</script>"


def hostile_trace() -> Trace:
    """The small trace with markup in every text field a trace can carry."""
    trace = make_small_trace()
    trace.requests["prompt_text"] = [f"summarise {PWN} please", IMG]
    trace.requests["output_text"] = [CLOSE, "a & b <i>"]
    trace.meta.target_model = f"model{PWN}"
    trace.meta.draft_model = IMG
    trace.meta.extra["note"] = CLOSE
    trace.meta.extra["target_n_params"] = 1.3e8  # a size and a shape: the hardware and depth
    trace.meta.extra["target_config"] = {  # what-ifs run (a size alone says no shape)
        "num_hidden_layers": 30, "hidden_size": 576, "intermediate_size": 1536,
        "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
        "vocab_size": 49152}
    trace.meta.policy_params = {"tau": 4, "note": PWN}
    return trace


HOSTILE_FINDING = {"kind": "draft_bound", "severity": 0.8, "level": "high", "title": PWN,
                   "evidence": {IMG: 1.0}, "recommendation": CLOSE, "predicted": {"p95_s": 0.1}}

FAST_WHATIF = WhatIfConfig(taus=(2, 4), budget_fractions=(1.0,), hardware=("H100",),
                           draft_scales=(0.9, 1.1), requests=30)


def synthetic_trace(requests: int, cycles_per_request: int, seed: int = 0) -> Trace:
    """A valid closed-loop trace built with numpy (a million cycles in about a second)."""
    rng = np.random.default_rng(seed)
    n = requests * cycles_per_request
    tau = rng.integers(1, 8, n)
    accepted = np.minimum(rng.geometric(0.3, n) - 1, tau)
    emitted = accepted + 1
    draft_s = 0.0015 * tau * rng.lognormal(0, 0.05, n)
    verify_s = 0.02 + 0.0003 * tau + rng.exponential(0.001, n)
    overhead_s = np.full(n, 0.0005)
    dur = (draft_s + verify_s + overhead_s).reshape(requests, cycles_per_request)
    prefill = np.full(requests, 0.01)
    req_s = prefill + dur.sum(axis=1)
    end = np.cumsum(req_s)
    start = end - req_s
    offsets = np.cumsum(dur, axis=1) - dur  # each cycle starts where the previous ended
    cycles = pd.DataFrame({
        "request_id": np.repeat(np.arange(requests), cycles_per_request),
        "cycle": np.tile(np.arange(cycles_per_request), requests),
        "start_s": (start[:, None] + prefill[:, None] + offsets).ravel(),
        "tau": tau, "accepted": accepted, "emitted": emitted,
        "draft_s": draft_s, "verify_s": verify_s, "overhead_s": overhead_s,
        "context_tokens": np.tile(np.arange(cycles_per_request), requests) * 3 + 100,
    })
    reqs = pd.DataFrame({
        "request_id": np.arange(requests), "arrival_s": start, "start_s": start,
        "first_token_s": start + prefill + dur[:, 0], "end_s": end,
        "prompt_tokens": np.full(requests, 100),
        "output_tokens": emitted.reshape(requests, cycles_per_request).sum(axis=1),
        "prefill_s": prefill, "verify_passes": np.full(requests, cycles_per_request),
    })
    meta = RunMeta(source="sim", target_model="synthetic-target", draft_model="synthetic-draft",
                   policy="fixed", policy_params={"tau": 7}, extra={"synthetic": True})
    return Trace(meta, reqs, cycles)


class _Tags(HTMLParser):
    """Collects every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


@pytest.fixture(scope="module")
def hostile_page() -> str:
    data = build_report(hostile_trace(), ReportConfig(whatif=FAST_WHATIF),
                        findings=[HOSTILE_FINDING], metrics={"note": PWN})
    return render_html(data)


def test_report_has_every_plot(hostile_page: str) -> None:
    blocks = re.findall(r"<script type='application/json' data-plot='(plot-\d+)'>(.*?)</script>",
                        hostile_page, flags=re.S)
    headings = re.findall(r"<h2>(.*?)</h2>", hostile_page)
    for heading in ("Findings", "Timeline", "Accepted length", "Acceptance by position",
                    "Latency breakdown", "Draft length over time", "What-if: draft length",
                    "What-if: verify budget", "What-if: hardware", "What-if: draft quality",
                    "What-if: draft depth", "Measured vs simulated"):
        assert any(h == heading or h.startswith(heading + " (") for h in headings), heading
    assert len(blocks) == 11
    for plot_id, payload in blocks:
        assert f"<div class='plot' id='{plot_id}'></div>" in hostile_page
        spec = json.loads(payload)
        assert spec["data"], plot_id  # every figure draws something
    assert headings.index("Findings") < headings.index("Timeline (measured)")  # findings first


def test_trace_text_is_escaped_and_inert(hostile_page: str) -> None:
    for raw in (PWN, IMG, CLOSE, "<i>"):
        assert raw not in hostile_page
    assert "summarise &lt;script&gt;window.__pwned=1&lt;/script&gt; please" in hostile_page
    assert "&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;" in hostile_page
    assert "a &amp; b &lt;i&gt;" in hostile_page
    scripts = [attrs for tag, attrs in _tags(hostile_page) if tag == "script"]
    runnable = [a for a in scripts if a.get("type") != "application/json"]
    assert len(runnable) == 2  # plotly.js and the render loop, nothing injected
    nonces = {a.get("nonce") for a in runnable}
    assert len(nonces) == 1 and None not in nonces
    assert f"'nonce-{nonces.pop()}'" in hostile_page  # only they may run (CSP)
    assert not any(tag == "img" for tag, _ in _tags(hostile_page))


def test_self_contained(hostile_page: str) -> None:
    plotly_js = get_plotlyjs()
    assert hostile_page.count(plotly_js[:300]) == 1  # plotly.js embedded exactly once
    for tag, attrs in _tags(hostile_page):
        assert "src" not in attrs, (tag, attrs)  # no external script, image or frame
        assert not (tag == "link" and attrs.get("href")), attrs
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', hostile_page)
    assert csp is not None and "default-src 'none'" in csp.group(1)


@given(st.recursive(st.text() | st.integers() | st.booleans() | st.none(),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12))
def test_script_json_cannot_close_the_tag(obj: object) -> None:
    text = script_json(obj)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == obj


def test_order_findings_most_severe_first() -> None:
    found = [{"kind": "a", "severity": 0.2}, {"kind": "b", "severity": 0.9},
             {"kind": "c", "severity": "high"}, {"kind": "d", "severity": 0.2}]
    assert [f["kind"] for f in order_findings(found)] == ["c", "b", "a", "d"]


def test_figures_from_counts_match_the_trace() -> None:
    trace = make_small_trace()
    hist = F.accepted_histogram(trace)
    total = sum(int(np.sum(bar.y)) for bar in hist.data)
    assert total == int((trace.cycles["tau"] > 0).sum()) == 4
    assert {bar.name for bar in hist.data} == {"tau=4", "tau=2"}
    phases = F.request_phases(trace)
    assert phases["draft"].tolist() == pytest.approx([0.012, 0.002])
    assert phases["verify"].tolist() == pytest.approx([0.03, 0.02])
    parts = phases[["queue", "prefill", "draft", "verify", "overhead", "other"]].sum(axis=1)
    assert np.all(parts >= phases["latency"] - 1e-12)


def test_large_trace_report_stays_small(tmp_path: Path) -> None:
    trace = synthetic_trace(2000, 100)  # 200,000 cycles
    validate_trace(trace)
    out = tmp_path / "big.html"
    config = ReportConfig(timeline_requests=20, timeline_cycles=1000, whatif=FAST_WHATIF)
    data = write_report(trace, out, config, findings=[], metrics={})
    timeline = data.figures[0][1]
    assert sum(len(bar.x) for bar in timeline.data if bar.name == "verify") <= 1000
    size = out.stat().st_size
    # The bound is 10 MB at a million cycles; 200k cycles get a fifth of it beyond plotly.js.
    assert size - len(get_plotlyjs()) < 10e6 * 0.2
    assert size < 10e6


def test_report_without_whatif_or_text(tmp_path: Path) -> None:
    trace = make_small_trace()
    trace.requests = trace.requests.drop(columns=["prompt_text"])
    data = write_report(trace, tmp_path / "r.html", ReportConfig(whatif=None),
                        findings=[], metrics={})
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "What-if analysis was not run." in page and "(not recorded)" in page
    assert "No bottleneck found" in page
    assert len(data.figures) == 5


def test_tau_within_a_request() -> None:
    fig = F.tau_over_time(make_small_trace())
    within = [d for d in fig.data if d.xaxis == "x2"]
    tau = next(d for d in within if d.name == "mean tau (raw)")
    accepted = next(d for d in within if d.name == "mean accepted (raw)")
    assert tau.marker.opacity < 0.5  # the raw points are faint ...
    smooth = next(d for d in within if d.name.startswith("mean tau, rolling mean"))
    assert smooth.mode == "lines" and list(smooth.y) == pytest.approx(list(tau.y))  # window 1
    assert list(tau.x) == [0, 1, 2]
    assert list(tau.y) == pytest.approx([3.0, 2.0, 4.0])  # (4+2)/2, (4+0)/2, 4
    assert list(accepted.y) == pytest.approx([3.0, 0.5, 0.0])


def test_first_requests_is_a_valid_prefix() -> None:
    trace = synthetic_trace(50, 7)
    part = first_requests(trace, 10)
    validate_trace(part)
    assert part.requests["request_id"].tolist() == list(range(10))
    assert len(part.cycles) == 70
    assert first_requests(trace, 500) is trace
