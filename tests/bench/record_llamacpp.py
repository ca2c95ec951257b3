"""Record llama.cpp's real outputs for the importer tests (``tests/data/llamacpp/``).

Starts ``llama-server`` (``specsim engines install llamacpp``; n-gram self-speculation,
``--spec-draft-n-max 4``, one slot, ``--metrics``) on a free loopback port with the bundled
SmolLM2 GGUF, scrapes ``/metrics``, sends a few bounded requests, scrapes again and stops it:

- ``chat.json``, ``completion.json``: non-streamed ``/v1/chat/completions`` / ``/v1/completions``
  responses (with ``timings``)
- ``stream_chat.sse``: a streamed chat response as sent (SSE lines), with ``timings_per_token``
- ``stream_plain.sse``: a streamed completion without it (only the final chunk has ``timings``)
- ``metrics_before.prom``, ``metrics_after.prom``: the scrapes around those requests
- ``server.log``: the server's log (its per-request "draft acceptance = ..." lines)
- ``props.json``: ``GET /props``

    python tests/bench/record_llamacpp.py [--out tests/data/llamacpp] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROMPT = ("Repeat this list exactly, one item per line: apples, pears, plums, apples, pears, "
          "plums, apples, pears, plums.")


def main() -> int:
    import httpx

    from live.llamacpp_server import running_server

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "llamacpp"))
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "server.log.partial"
    chat = {"model": "m", "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": args.max_tokens, "temperature": 0.0, "seed": 1}
    comp = {"model": "m", "prompt": PROMPT + "\n", "max_tokens": args.max_tokens,
            "temperature": 0.0, "seed": 2}
    with running_server(log) as srv, httpx.Client(
            base_url=srv.url, timeout=300.0,
            limits=httpx.Limits(max_keepalive_connections=0)) as http:  # a connection each
        print("server:", " ".join(srv.command), file=sys.stderr)
        (out / "props.json").write_text(http.get("/props").text)  # as the server sent them
        (out / "metrics_before.prom").write_text(http.get("/metrics").text)
        (out / "chat.json").write_text(http.post("/v1/chat/completions", json=chat).text)
        (out / "completion.json").write_text(http.post("/v1/completions", json=comp).text)
        for name, path, body in (
                ("stream_chat.sse", "/v1/chat/completions",
                 {**chat, "stream": True, "timings_per_token": True,
                  "stream_options": {"include_usage": True}}),
                ("stream_plain.sse", "/v1/completions", {**comp, "stream": True})):
            with http.stream("POST", path, json=body) as resp:
                lines = [line for line in resp.iter_lines() if line.strip()]
            (out / name).write_text("\n".join(lines) + "\n")
        (out / "metrics_after.prom").write_text(http.get("/metrics").text)
    shutil.move(log, out / "server.log")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
