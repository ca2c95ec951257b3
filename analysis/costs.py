"""``specsim costs``: the cost model's answer for a target on a device, and its check against a
measured profile.

    specsim costs --hardware H200 (--target NAME | --target-config CONFIG.json) [--dtype bf16]
                  [--tp N] [--stack eager|cuda-graph] --batch 1,8,32 --tokens 1,5,17
                  --context 512,2048 [--against PROFILE.json [--anchor]] [--fit-on PROFILE.json]
                  [--host-probe] [--json]

``points``: [{batch, tokens (per sequence), context (per sequence), seconds}] as ``specsim
profile`` writes them, with ``basis`` and ``band``; with ``--against``, the profile's own points
(those in the grid, when a grid is given), each with ``measured_s`` and ``ratio`` (model /
measured), and a ``summary``: median ratio, points within 1.5x, worst. ``--anchor`` scales the
stack's host time so that the profile's batch-1 1-token pass (at its shortest context) is
matched -- one measured point used, every other one a check. ``--host-probe`` (with
``--fit-on`` and ``--against``) instead scales the host time fitted on one profile by the other's
host probe over the first's (microseconds per eager op, measured by ``specsim profile`` in the
same process as its passes): the drift of host speed between the two recordings taken out, and
no pass of the checked profile used. ``--target-config`` also reads a
``specsim profile`` file (its ``target_config``), so a profile checks against its own model.
With ``--tp N`` > 1, ``allreduce``: the seconds a 1-token pass spends in its all-reduces and the
link they are priced on (a CPU device refuses ``--tp`` > 1).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tracing.errors import SpecsimError


def register(sub: Any) -> None:
    """Add ``costs`` to the ``specsim`` parser."""
    p = sub.add_parser(
        "costs", help="the cost model's pass times for a target on a device (and a check "
                      "against a measured profile)",
        description="Seconds of target passes by batch x tokens per sequence x context per "
                    "sequence, from the catalog and the target's real shape; with --against, "
                    "beside a `specsim profile` of the device.")
    p.add_argument("--hardware", required=True, help="catalog device (key, alias or name)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--target", help="a model of the built-in table, e.g. llama-3.1-8b")
    who.add_argument("--target-config", metavar="CONFIG.json",
                     help="a transformers config.json (or a specsim profile file)")
    p.add_argument("--dtype", default="", help="bf16, fp16, fp32, int8, int4 (default: the "
                                                "device's)")
    p.add_argument("--tp", type=int, default=1, help="GPUs in tensor parallel (default 1)")
    p.add_argument("--stack", default="", choices=("", "eager", "cuda-graph"),
                   help="software stack (default: the device's measured eager stack)")
    p.add_argument("--batch", default="", help="batch sizes, e.g. 1,8,32 or 1-4")
    p.add_argument("--tokens", default="", help="tokens scored per sequence, e.g. 1,5,17")
    p.add_argument("--context", default="", help="cached tokens per sequence, e.g. 512,2048")
    p.add_argument("--against", metavar="PROFILE.json",
                   help="a `specsim profile` of the device: ratios per point and a summary")
    p.add_argument("--fit-on", metavar="PROFILE.json",
                   help="first fit the stack's host constants on this profile (of the same "
                        "device; its own model's shape): the fit-on-one, check-on-another test")
    p.add_argument("--anchor", action="store_true",
                   help="with --against: scale the host time to the profile's batch-1 1-token "
                        "pass (that one point used, the rest checked)")
    p.add_argument("--host-probe", action="store_true",
                   help="with --fit-on and --against: scale the fitted host time by the checked "
                        "profile's host probe over the fitted one's (both recorded by `specsim "
                        "profile`)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_costs)


def _counts(text: str, flag: str, low: int) -> list[int]:
    from live.cli import parse_counts  # light: no torch at import

    return parse_counts(text, flag, low)


def cmd_costs(args: argparse.Namespace) -> int:
    """Handler of ``specsim costs``."""
    from sim.models.catalog import get_device, same_device
    from sim.models.costfit import against, anchor, grid_points
    from sim.models.costmodel import normalize_dtype, table_shape
    from sim.models.deviceprofile import read_profile_file
    from sim.models.hardware import config_shape
    from sim.models.shapes import table_names

    device = get_device(args.hardware).on_stack(args.stack)
    device.check_tp(args.tp, "--tp")
    if args.target:
        shape = table_shape(args.target)
        if shape is None:
            raise SpecsimError(f'--target "{args.target}": not in the built-in table (known: '
                               f"{table_names()}); or give --target-config CONFIG.json")
    else:
        shape = config_shape(args.target_config, "--target-config")
    dtype = normalize_dtype(args.dtype) if args.dtype else device.default_dtype
    grid = {k: _counts(getattr(args, k), f"--{k}", 0 if k == "context" else 1)
            for k in ("batch", "tokens", "context") if getattr(args, k)}
    out: dict[str, Any] = {"device": device.key, "stack": device.framework.name,
                           "dtype": dtype, "tp": args.tp, "target": shape.to_dict(),
                           "basis": "catalog", "band": device.band}
    if args.anchor and not args.against:
        raise SpecsimError("--anchor: only with --against PROFILE.json")
    if args.host_probe and not (args.fit_on and args.against):
        raise SpecsimError("--host-probe: only with --fit-on PROFILE.json and --against "
                           "PROFILE.json (it scales one's fitted host time by the other's probe)")
    if args.host_probe and args.anchor:
        raise SpecsimError("--host-probe and --anchor: give one (each sets the host time)")
    fit_prof = None
    if args.fit_on:
        from sim.models.costfit import fit_host

        fit_prof = read_profile_file(args.fit_on)
        if not same_device(fit_prof.device, device.key):
            raise SpecsimError(f'--fit-on {args.fit_on}: measured "{fit_prof.device}", not '
                               f"{device.key}")
        device = fit_host(device, config_shape(args.fit_on, "--fit-on"),
                          normalize_dtype(fit_prof.dtype), fit_prof)
        out["basis"] = f"catalog, host fitted on {args.fit_on}"
    if args.against:
        prof = read_profile_file(args.against)
        if not same_device(prof.device, device.key):
            raise SpecsimError(f'--against {args.against}: measured "{prof.device}", not '
                               f"{device.key}")
        if not args.dtype:
            dtype = normalize_dtype(prof.dtype)
            out["dtype"] = dtype
        if fit_prof is not None:
            from sim.models.costfit import host_probes, probe_scale

            if args.host_probe:
                device, probes = probe_scale(device, fit_prof, prof)
                out.update(basis=f"{out['basis']}, host scaled x{probes['host_scale']:.3f} by "
                                 "the host probes", host_probe={**probes, "applied": True})
            elif (unapplied := host_probes(fit_prof, prof)) is not None:
                # both recorded one: say how far apart the two hosts ran
                out["host_probe"] = {**unapplied, "applied": False}
        if args.anchor:
            device, point = anchor(device, shape, dtype, prof, args.tp)
            out.update(basis=f"{out['basis']}, anchored on 1 profile point", anchor=point)
        points, _ = against(device, shape, dtype, prof, args.tp)
        points = [p for p in points if all(p[k] in v for k, v in grid.items())]
        if not points:
            raise SpecsimError(f"--against {args.against}: no profiled point in the grid given")
        from sim.models.costfit import summary

        out.update(against=args.against, points=points,
                   summary=summary([p["ratio"] for p in points]))
    else:
        missing = [f"--{k}" for k in ("batch", "tokens", "context") if k not in grid]
        if missing:
            raise SpecsimError(f"costs: {', '.join(missing)} needed (or --against PROFILE.json)")
        out["points"] = grid_points(device, shape, dtype, grid["batch"], grid["tokens"],
                                    grid["context"], args.tp)
    if args.tp > 1:  # what a 1-token pass spends in its all-reduces, and over what link
        from sim.models.costmodel import allreduce_s

        out["allreduce"] = {"one_token_s": allreduce_s(device, shape, dtype, 1, args.tp),
                            "link": device.link, "link_gbps": device.link_gbps,
                            "latency_s": device.link_latency_s, "per_pass": 2 * shape.layers}
    out["host"] = {"per_pass_s": device.framework.per_pass_s,
                   "per_layer_s": device.framework.per_layer_s,
                   "multi_token": device.framework.multi_token,
                   "source": device.framework.source}
    if args.json:
        from tracing.cli import print_json

        print_json(out)
        return 0
    _print(out)
    return 0


def _print(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = out["target"]
    console = Console() if sys.stdout.isatty() else Console(width=160)
    title = (f"costs: {t['name']} ({t['n_params'] / 1e9:.2f} B, {t['layers']} x {t['hidden']}) "
             f"on {out['tp']} x {out['device']}, {out['dtype']}, {out['stack']} stack")
    table = Table(title=title)
    cols = ["batch", "tokens", "context", "model ms"]
    measured = "summary" in out
    if measured:
        cols += ["measured ms", "ratio"]
    for c in cols:
        table.add_column(c, justify="right")
    for p in out["points"]:
        row = [str(p["batch"]), str(p["tokens"]), str(p["context"]), f"{p['seconds'] * 1e3:.2f}"]
        if measured:
            row += [f"{p['measured_s'] * 1e3:.2f}", f"{p['ratio']:.2f}"]
        table.add_row(*row)
    console.print(table)
    console.print(f"basis {out['basis']}, band x{out['band']:g}", markup=False)
    if "host_probe" in out:
        h = out["host_probe"]
        console.print(f"host probes: {h['fit_on_us']:.2f} us per op where fitted, "
                      f"{h['against_us']:.2f} where checked (x{h['host_scale']:.3f}); "
                      + ("applied" if h["applied"] else "--host-probe applies it"), markup=False)
    if "allreduce" in out:
        a = out["allreduce"]
        console.print(f"all-reduces: {a['per_pass']} a pass over {a['link']} "
                      f"({a['link_gbps']:g} GB/s one way, {a['latency_s'] * 1e6:g} us each, "
                      f"assumed); a 1-token pass spends {a['one_token_s'] * 1e3:.2f} ms in them",
                      markup=False)
    if measured:
        s = out["summary"]
        console.print(f"against {out['against']}: median ratio {s['median_ratio']:.3f}, "
                      f"{s['within_1_5x']}/{s['points']} points within 1.5x, worst "
                      f"{s['worst_ratio']:.2f} (goal: all within 1.5x, median within 1.15x: "
                      f"{'met' if s['goal_met'] else 'NOT met'})", markup=False)
