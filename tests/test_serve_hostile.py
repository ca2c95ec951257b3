"""``specsim serve`` under hostile requests, in-process (httpx's ASGITransport) on a tiny random
Llama: each request the issue found fatal or mishandled gets a JSON 4xx (never a 500 text
traceback, never a dead engine), one request's failure stays with it, the queue bound is exact,
the body size is capped, tokenizing leaves the event loop, and ``/metrics`` parses."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from live.engine import Engine, EngineRequest, Overloaded  # noqa: E402
from live.sampling import SamplingConfig  # noqa: E402
from live.serve import ServeConfig, Served, start_service  # noqa: E402
from live.server import Service, create_app  # noqa: E402

TIMEOUT_S = 20  # a request that hangs fails its test instead of hanging the suite


@pytest.fixture(scope="module")
def served(tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server (engine thread running) for the module; its trace is read by the tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    trace = tmp_path_factory.mktemp("serve") / "server.jsonl"
    s = start_service(ServeConfig(target=tiny.name, trace_out=str(trace), draft="ngram",
                                  policy="fixed:tau=3", max_batch=2, max_queue=8,
                                  profile_tokens=0, warmup_tokens=2), target=tiny)
    yield s
    s.engine.shutdown()
    torch.set_num_threads(before)


def call(service: Service, method: str, path: str, **kw: Any) -> Any:
    """One request to the app in-process (a fresh event loop), bounded by TIMEOUT_S."""
    async def go() -> Any:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://specsim") as client:
            return await asyncio.wait_for(client.request(method, path, **kw), TIMEOUT_S)

    return asyncio.run(go())


def post_raw(service: Service, path: str, text: str) -> Any:
    return call(service, "POST", path, content=text.encode(),
                headers={"content-type": "application/json"})


def assert_alive(service: Service) -> None:
    """/health is 200 and the next valid request is served."""
    health = call(service, "GET", "/health")
    assert health.status_code == 200, health.text
    ok = call(service, "POST", "/v1/completions", json={"prompt": "the cat", "max_tokens": 3,
                                                        "temperature": 0})
    assert ok.status_code == 200, ok.text
    assert ok.json()["usage"]["completion_tokens"] >= 1


def assert_json_error(resp: Any, status: int, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text[:300]
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param
    return dict(err)


def request_lines(served: Served) -> list[dict[str, Any]]:
    lines = Path(served.config.trace_out).read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("type") == "request"]


def test_seed_at_or_past_2_to_the_63_is_a_400(served: Served) -> None:
    svc = served.service
    for seed in (2**64, 2**63):
        resp = call(svc, "POST", "/v1/completions", json={"prompt": "a", "max_tokens": 2,
                                                          "seed": seed})
        assert_json_error(resp, 400, "seed")
    for seed in (2**63 - 1, -1):  # the largest, and a negative one (folded into range)
        resp = call(svc, "POST", "/v1/completions", json={"prompt": "a", "max_tokens": 2,
                                                          "seed": seed, "temperature": 1.0})
        assert resp.status_code == 200, resp.text
    assert_alive(svc)


def _chat_len(tiny: Any, content: str) -> int:
    ids = tiny.tokenizer.apply_chat_template([{"role": "user", "content": content}],
                                             add_generation_prompt=True, tokenize=True,
                                             return_dict=False)
    return len(ids["input_ids"] if isinstance(ids, dict) else ids)


def test_chat_without_max_tokens_filling_the_context_is_a_400(served: Served, tiny: Any) -> None:
    svc = served.service
    over = call(svc, "POST", "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "hello " * 1200}]})
    assert_json_error(over, 400)
    # room 0: the prompt is exactly the context
    n = _chat_len(tiny, "hello there")
    exact = dataclasses.replace(svc, max_model_len=n)
    full = call(exact, "POST", "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "hello there"}]})
    assert "context" in assert_json_error(full, 400)["message"]
    # room 1: one token, not a refusal
    one = call(dataclasses.replace(svc, max_model_len=n + 1), "POST", "/v1/chat/completions",
               json={"messages": [{"role": "user", "content": "hello there"}], "temperature": 0})
    assert one.status_code == 200 and one.json()["usage"]["completion_tokens"] == 1
    assert_alive(svc)


@pytest.mark.parametrize("path,text,param", [
    ("/v1/completions", '{"prompt": "a", "temperature": NaN}', "temperature"),
    ("/v1/completions", '{"prompt": "a", "top_p": NaN}', "top_p"),
    ("/v1/completions", '{"prompt": "a", "temperature": Infinity}', "temperature"),
    ("/v1/completions", '{"prompt": "a\\ud800b"}', "prompt"),
    ("/v1/completions", '{"prompt": "a", "stop": ["\\udfff"]}', "stop"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "\\ud800"}]}',
     "messages"),
    ("/v1/chat/completions", '{"messages": [{"role": "\\ud800", "content": "hi"}]}', "messages"),
    ("/v1/completions", '{"prompt": ' + "[" * 5000 + "]" * 5000 + "}", None),
    ("/v1/completions", '{"prompt": ' + "[" * 900 + "1" + "]" * 900 + "}", "prompt"),
])
def test_hostile_values_are_json_400s(served: Served, path: str, text: str,
                                      param: str | None) -> None:
    assert_json_error(post_raw(served.service, path, text), 400, param)
    assert call(served.service, "GET", "/health").status_code == 200


def test_body_over_the_limit_is_a_413_json(served: Served) -> None:
    svc = dataclasses.replace(served.service, max_body_bytes=4096)
    big = {"prompt": "hello " * 2000, "max_tokens": 2}
    err = assert_json_error(call(svc, "POST", "/v1/completions", json=big), 413)
    assert "4096" in err["message"]

    async def chunks() -> Any:  # no Content-Length: counted while read
        for _ in range(10):
            yield b" " * 1000
        yield json.dumps(big).encode()

    assert_json_error(call(svc, "POST", "/v1/completions", content=chunks(),
                           headers={"content-type": "application/json"}), 413)
    small = call(svc, "POST", "/v1/completions", json={"prompt": "hi", "max_tokens": 2})
    assert small.status_code == 200
    assert served.service.max_body_bytes == 1 << 20  # the default


def test_tokenizing_runs_off_the_event_loop(served: Served) -> None:
    real = served.service.tokenizer
    where: list[bool] = []

    class Watched:
        """The tokenizer, noting whether each call ran on a thread with a running loop."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def __len__(self) -> int:
            return len(real)

        def __call__(self, *a: Any, **kw: Any) -> Any:
            self._note()
            return real(*a, **kw)

        def apply_chat_template(self, *a: Any, **kw: Any) -> Any:
            self._note()
            return real.apply_chat_template(*a, **kw)

        def _note(self) -> None:
            try:
                asyncio.get_running_loop()
                where.append(True)
            except RuntimeError:
                where.append(False)

    svc = dataclasses.replace(served.service, tokenizer=Watched())
    assert call(svc, "POST", "/v1/completions", json={"prompt": "a b", "max_tokens": 1}
                ).status_code == 200
    assert call(svc, "POST", "/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "a b"}], "max_tokens": 1}).status_code == 200
    assert where == [False, False]


def test_one_requests_failure_stays_with_it(served: Served, monkeypatch: Any) -> None:
    """A failure while admitting one request, then one in a batched step: each fails only the
    requests it touched (JSON 500, request line with stop_reason "error"); the engine goes on."""
    svc, decoder = served.service, served.engine.decoder
    real_add, real_step = decoder.add, decoder.step
    fail = {"add": 1, "step": 0}

    def add(request: Any) -> Any:
        if fail["add"]:
            fail["add"] -= 1
            raise RuntimeError("prefill exploded")
        return real_add(request)

    def step() -> Any:
        if fail["step"]:
            fail["step"] -= 1
            raise RuntimeError("step exploded")
        return real_step()

    monkeypatch.setattr(decoder, "add", add)
    monkeypatch.setattr(decoder, "step", step)
    resp = call(svc, "POST", "/v1/completions", json={"prompt": "doomed prefill",
                                                      "max_tokens": 4})
    assert "prefill exploded" in assert_json_error(resp, 500)["message"]
    assert_alive(svc)
    fail["step"] = 1
    # a streamed request: headers are sent before the step, so the error comes as a chunk
    resp = call(svc, "POST", "/v1/completions", json={"prompt": "doomed step",
                                                      "max_tokens": 4, "stream": True})
    assert resp.status_code == 200
    data = [line[5:].strip() for line in resp.text.splitlines() if line.startswith("data:")]
    assert "step exploded" in json.loads(data[0])["error"]["message"]
    assert_alive(svc)
    by_prompt = {r.get("prompt_text"): r for r in request_lines(served)}
    assert by_prompt["doomed prefill"]["stop_reason"] == "error"
    assert by_prompt["doomed step"]["stop_reason"] == "error"
    assert served.engine.error is None


def test_an_exception_in_the_route_is_a_json_500(served: Served, monkeypatch: Any) -> None:
    import live.server as server

    def broken(*a: Any, **kw: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(server, "_metrics", broken)
    resp = call(served.service, "POST", "/v1/completions", json={"prompt": "a", "max_tokens": 1})
    assert_json_error(resp, 500)
    monkeypatch.undo()
    assert_alive(served.service)


def test_metrics_parse_as_prometheus_with_vllm_finished_reasons(served: Served) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    svc = served.service
    call(svc, "POST", "/v1/completions", json={"prompt": "the cat sat", "max_tokens": 6,
                                               "temperature": 0})
    page = call(svc, "GET", "/metrics").text
    families = {f.name: f for f in parser.text_string_to_metric_families(page)}
    for name in ("vllm:spec_decode_num_drafts", "vllm:spec_decode_num_draft_tokens",
                 "vllm:spec_decode_num_accepted_tokens", "vllm:prompt_tokens",
                 "vllm:generation_tokens", "vllm:request_success"):
        assert families[name].type == "counter", name
        assert {s.name for s in families[name].samples} == {f"{name}_total"}
    assert families["vllm:num_requests_running"].type == "gauge"
    reasons = {s.labels["finished_reason"] for s in families["vllm:request_success"].samples}
    assert reasons and reasons <= {"stop", "length", "abort", "error"}
    assert not any(f.type == "unknown" for f in families.values())


def test_queue_bound_is_exact_while_a_prefill_runs(tiny: Any) -> None:
    """batch 1 + queue 1: two requests are taken, the third refused, even while the first is
    being prefilled (it has left the queue but not yet taken its row)."""
    engine = Engine(tiny, None, policy="target_only", eos_token_ids=set(), writer=None,
                    max_batch=1, max_queue=1)
    entered, gate = threading.Event(), threading.Event()
    real_add = engine.decoder.add

    def slow_add(request: Any) -> Any:
        entered.set()
        assert gate.wait(TIMEOUT_S)
        return real_add(request)

    engine.decoder.add = slow_add  # type: ignore[method-assign]

    def req(i: int) -> EngineRequest:
        return EngineRequest(f"r{i}", [5, 6, 7], 2, SamplingConfig())

    engine.start()
    try:
        engine.submit(req(0))
        assert entered.wait(TIMEOUT_S)
        engine.submit(req(1))
        with pytest.raises(Overloaded):
            engine.submit(req(2))
    finally:
        gate.set()
        engine.shutdown()


def test_a_dead_engine_fails_health_and_serve_exits_nonzero(tiny: Any, tmp_path: Path,
                                                            monkeypatch: Any) -> None:
    import live.serve as serve_mod

    config = ServeConfig(target=tiny.name, trace_out=str(tmp_path / "t.jsonl"), port=0)
    engine = Engine(tiny, None, policy="target_only", eos_token_ids=set(), writer=None)
    engine.error = RuntimeError("engine thread died")
    service = Service(engine=engine, tokenizer=tiny.tokenizer, model_name="tiny",
                      max_model_len=64, num_spec_tokens=None)
    assert call(service, "GET", "/health").status_code == 503
    monkeypatch.setattr(serve_mod, "start_service",
                        lambda cfg: serve_mod.Served(service, engine, cfg))
    servers: list[Any] = []
    real_make = serve_mod.make_server

    def make(served: Any, **kw: Any) -> Any:
        servers.append(real_make(served, **kw))
        return servers[-1]

    monkeypatch.setattr(serve_mod, "make_server", make)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(serve_mod.serve(config)), daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    if thread.is_alive():  # still serving on a dead engine: stop it, and fail
        servers[0].should_exit = True
        thread.join(TIMEOUT_S)
    assert codes == [1]


# -- property: any body, either endpoint: never a 5xx, and the engine is alive after it -------

_EXTREME_INTS = [-1, 0, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30]
_ODD_TEXT = ["", "\ud800", "a\udfffb", "<|im_end|>", "\x00", "é" * 5, "[" * 50]


def _hostile() -> Any:
    from hypothesis import strategies as st

    return st.one_of(st.none(), st.booleans(), st.integers(-3, 8),
                     st.sampled_from(_EXTREME_INTS), st.floats(allow_nan=True),
                     st.sampled_from(_ODD_TEXT), st.text(max_size=12),
                     st.lists(st.integers(-2, 400), max_size=4),
                     st.dictionaries(st.sampled_from(["text", "type", "include_usage"]),
                                     st.booleans() | st.text(max_size=3), max_size=2))


def _bodies() -> Any:
    from hypothesis import strategies as st

    hostile = _hostile()
    message = st.fixed_dictionaries({
        "role": st.sampled_from(["user", "system", "assistant", "tool", "\ud800", ""]) | hostile,
        "content": st.text(max_size=16) | st.sampled_from(_ODD_TEXT) | hostile})
    fields = {
        "prompt": st.text(max_size=24) | st.lists(st.integers(0, 299), min_size=1, max_size=6)
        | hostile,
        "messages": st.lists(message, max_size=3) | hostile,
        "max_tokens": st.integers(1, 6) | hostile,
        "max_completion_tokens": st.integers(1, 6) | hostile,
        "temperature": st.floats(0, 2) | hostile, "top_p": st.floats(0, 1) | hostile,
        "seed": hostile, "stop": st.lists(st.sampled_from([*_ODD_TEXT, "a", "the"]), max_size=5)
        | hostile, "stream": hostile, "stream_options": hostile, "ignore_eos": hostile,
        "n": hostile, "logprobs": hostile, "echo": hostile, "model": hostile,
    }
    return st.fixed_dictionaries({}, optional=fields)


def test_any_body_gets_no_5xx_and_leaves_the_engine_alive(served: Served) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    svc = served.service

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(_bodies(), st.sampled_from(["/v1/completions", "/v1/chat/completions"]))
    def check(body: dict[str, Any], path: str) -> None:
        text = json.dumps(body)  # NaN/Infinity and lone surrogates as JSON writes them
        resp = post_raw(svc, path, text)
        assert resp.status_code < 500, (body, resp.text[:300])
        if resp.status_code != 200:
            assert_json_error(resp, resp.status_code)
        assert call(svc, "GET", "/health").status_code == 200
        assert served.engine.error is None

    check()
    assert_alive(svc)
