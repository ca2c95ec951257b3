"""Record measured load curves: ``specsim serve`` under ``specsim load`` on the bundled model.

One server per configuration (target-only, n-gram tau=4, layer-skip; ``--config`` adds more, e.g.
``ngram=goodput``) is started on its own port and profiled once (its batched verify profile goes
into its trace's metadata). Then every load point -- concurrency 1, 2, 4, 8 (closed loop) and a
Poisson rate sweep -- is run against every server, the configurations *interleaved* point by
point in a rotating order (a slow spell of this shared machine then lands on every
configuration alike, not on whichever ran during it), ``--repeat`` rounds. Each run writes its
client trace ``OUT/CONFIG-POINT[-rK].client.jsonl``; when all runs are done the servers are
stopped (SIGINT: a clean trace) and each server trace is split into one server trace per point
(``...server.jsonl``: the run metadata with the profile, and that point's requests and cycles,
matched to the client's requests in arrival order and checked by prompt length; request ids
are set to the client's so the pair is matched by id). The whole server traces and the servers'
logs stay in ``OUT/raw/`` (not kept in git).

    python tests/bench/record_load.py [--out traces/load] [--threads 2] [--max-tokens 24]
        [--requests 12] [--concurrency 1,2,4,8] [--rates 0.2,0.4,0.8] [--repo DIR]
        [--warmup-requests 8] [--profile-context 160] [--profile-rounds 5]

``--repo`` runs another checkout's ``specsim`` (read-only: e.g. a branch not yet on main);
``--split-only`` splits the server traces of an interrupted recording (same flags).
Then ``specsim validate OUT/*.jsonl`` predicts every point from the lowest-load one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"none": ("none", "target_only"), "ngram": ("ngram", "fixed:tau=4"),
           "layerskip": ("layerskip", "fixed:tau=2")}


def _cli(repo: Path) -> list[str]:
    """``specsim`` of the checkout ``repo`` (run with ``cwd=repo``, so its code is imported)."""
    return [sys.executable, "-m", "analysis.cli"]


def _wait_healthy(port: int, proc: subprocess.Popen, timeout_s: float = 900.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2.0)
    raise SystemExit(f"server on port {port} not healthy after {timeout_s:.0f} s")


def start_servers(args: argparse.Namespace, configs: dict[str, tuple[str, str]], out: Path
                  ) -> dict[str, tuple[subprocess.Popen, int, Path]]:
    """One server per configuration, each on its own port; returns when all are healthy."""
    servers = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for i, (name, (draft, policy)) in enumerate(configs.items()):
        port = args.port + i
        trace = out / "raw" / f"{name}.server-full.jsonl"
        cmd = [*_cli(args.repo), "serve", "--target", "smollm2", "--draft", draft,
               "--policy", policy, "--max-batch", str(args.max_batch), "--port", str(port),
               "--threads", str(args.threads), "--trace-out", str(trace), "--force",
               "--profile-rounds", str(args.profile_rounds),
               "--profile-context", str(args.profile_context)]
        log = open(out / "raw" / f"{name}.serve.log", "w")  # noqa: SIM115 -- as long as the server
        proc = subprocess.Popen(cmd, cwd=args.repo, env=env, stdout=log, stderr=subprocess.STDOUT)
        servers[name] = (proc, port, trace)
        _wait_healthy(port, proc)  # one at a time: start-up profiles must not overlap
        print(f"server {name}: {draft} {policy} on port {port}", flush=True)
    return servers


def stop_servers(servers: dict[str, tuple[subprocess.Popen, int, Path]]) -> None:
    """SIGINT every server (a clean trace) and wait for it."""
    for proc, _, _ in servers.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc, _, _ in servers.values():
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def points(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(label, load flags) of every load point, in recording order."""
    out = [(f"c{c}", ["--concurrency", c]) for c in args.concurrency.split(",") if c]
    out += [(f"rate{r}", ["--rate", r]) for r in args.rates.split(",") if r]
    return out


def run_load(args: argparse.Namespace, port: int, flags: list[str], client: Path) -> None:
    """One ``specsim load`` run."""
    cmd = [*_cli(args.repo), "load", "--endpoint", f"http://127.0.0.1:{port}", "--prompts",
           args.prompts, *flags, "--requests", str(args.requests), "--max-tokens",
           str(args.max_tokens), "--out", str(client), "--force", "--no-progress", "--json"]
    done = subprocess.run(cmd, cwd=args.repo, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"load failed ({client.name}): {done.stderr.strip()[-400:]}")
    summary = json.loads(done.stdout)
    lat = summary.get("latency_s") or {}
    print(f"  {client.name}: p50 {1e3 * lat.get('p50', float('nan')):.0f} ms, "
          f"p95 {1e3 * lat.get('p95', float('nan')):.0f} ms, "
          f"{summary.get('throughput_tok_s', float('nan')):.1f} tok/s, "
          f"{summary.get('errors', 0)} errors", flush=True)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def split_server_trace(full: Path, clients: list[Path]) -> None:
    """One server trace per client run (in the order the runs were made), ids set to the
    client's."""
    lines = _lines(full)
    run = next(x for x in lines if x["type"] == "run")
    requests = sorted((x for x in lines if x["type"] == "request"), key=lambda x: x["arrival_s"])
    cycles: dict[object, list[dict]] = {}
    for x in lines:
        if x["type"] == "cycle":
            cycles.setdefault(x["request_id"], []).append(x)
    at = 0
    for client in clients:
        mine = [x for x in _lines(client) if x["type"] == "request"]
        mine.sort(key=lambda x: x["arrival_s"])
        chunk = requests[at:at + len(mine)]
        at += len(mine)
        if [r["prompt_tokens"] for r in chunk] != [r["prompt_tokens"] for r in mine]:
            chunk = _match_by_prompt(chunk, mine, client)
        out = [run]
        renamed = []
        for server_req, client_req in zip(chunk, mine, strict=True):
            rid = client_req["request_id"]
            out += [{**c, "request_id": rid} for c in cycles.get(server_req["request_id"], [])]
            renamed.append({**server_req, "request_id": rid})
        out += renamed
        target = Path(str(client).replace(".client.jsonl", ".server.jsonl"))
        target.write_text("".join(json.dumps(x) + "\n" for x in out))


def _match_by_prompt(chunk: list[dict], mine: list[dict], client: Path) -> list[dict]:
    """Server requests reordered so that each has its client request's prompt length."""
    pool = list(chunk)
    out = []
    for c in mine:
        hit = next((s for s in pool if s["prompt_tokens"] == c["prompt_tokens"]), None)
        if hit is None:
            raise SystemExit(f"{client.name}: cannot match the server's requests to the client's")
        pool.remove(hit)
        out.append(hit)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "traces" / "load"))
    ap.add_argument("--repo", type=Path, default=ROOT, help="checkout whose specsim runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--prompts", default="builtin:edit")
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--rates", default="0.2,0.4,0.8")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--port", type=int, default=8610)
    ap.add_argument("--profile-rounds", type=int, default=5)
    ap.add_argument("--profile-context", type=int, default=0,
                    help="context tokens per profiled row (serve --profile-context)")
    ap.add_argument("--warmup-requests", type=int, default=0,
                    help="a discarded run of N requests at concurrency 2 against every server "
                         "before the points (its traces stay in OUT/raw/)")
    ap.add_argument("--config", action="append", default=[],
                    help="NAME=POLICY with NAME a draft (none, ngram, layerskip), e.g. "
                         "ngram=goodput; replaces the default three when given")
    ap.add_argument("--split-only", action="store_true",
                    help="only split the server traces of runs already recorded in OUT")
    args = ap.parse_args()
    configs = dict(CONFIGS)
    if args.config:
        configs = {}
        for item in args.config:
            draft, _, policy = item.partition("=")
            slug = policy.replace(":", "_").replace("=", "").replace(",", "-")
            configs[f"{draft}-{slug}"] = (draft, policy)
    out = Path(args.out).resolve()
    (out / "raw").mkdir(parents=True, exist_ok=True)
    if args.split_only:  # after an interrupted recording: split what was recorded
        for name in configs:
            clients = [out / f"{name}-{label}{f'-r{k}' if args.repeat > 1 else ''}.client.jsonl"
                       for k in range(args.repeat) for label, _ in points(args)]
            clients.insert(0, out / "raw" / f"{name}-warmup.client.jsonl")
            split_server_trace(out / "raw" / f"{name}.server-full.jsonl",
                               [c for c in clients if c.exists()])
        return
    t0 = time.monotonic()
    servers = start_servers(args, configs, out)
    made: dict[str, list[Path]] = {name: [] for name in configs}
    try:
        names = list(configs)
        if args.warmup_requests:  # the machine and the servers settle before anything counts
            warm = argparse.Namespace(**{**vars(args), "requests": args.warmup_requests})
            for name in names:
                client = out / "raw" / f"{name}-warmup.client.jsonl"
                run_load(warm, servers[name][1], ["--concurrency", "2"], client)
                made[name].append(client)
            print(f"[{time.monotonic() - t0:.0f} s] warm-up done", flush=True)
        for k in range(args.repeat):
            for i, (label, flags) in enumerate(points(args)):
                order = names[i % len(names):] + names[: i % len(names)]  # rotate
                for name in order:
                    suffix = f"-r{k}" if args.repeat > 1 else ""
                    client = out / f"{name}-{label}{suffix}.client.jsonl"
                    run_load(args, servers[name][1], flags, client)
                    made[name].append(client)
                print(f"[{time.monotonic() - t0:.0f} s] {label} done", flush=True)
    finally:
        stop_servers(servers)
    for name, (_, _, full) in servers.items():
        split_server_trace(full, made[name])
    print(f"recorded {sum(map(len, made.values()))} points in {time.monotonic() - t0:.0f} s "
          f"under {out}")


if __name__ == "__main__":
    main()
