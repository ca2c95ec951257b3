"""Checking one scenario table: every value against its key's type and range, token-count
specs, the [policy] table against the policy's constructor, command-line strings coerced to a
key's type, and an acceptance given as a server's figure solved to an i.i.d. alpha.

Every problem is a :class:`SpecsimError` naming the file, section and key.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import fields
from typing import Any

from sim.policies.library import POLICIES, build_policy
from sim.scenario_sections import (
    DIST_KEYS,
    AcceptanceConfig,
    PolicyConfig,
    TokenSpec,
    policy_keys,
)
from tracing.errors import SpecsimError


def expected_accepted(alpha: float, tau: int) -> float:
    """Accepted tokens per draft of ``tau`` tokens at i.i.d. acceptance ``alpha``:
    ``alpha + alpha^2 + ... + alpha^tau``."""
    return float(sum(alpha**k for k in range(1, tau + 1)))


def solve_alpha(accepted_per_draft: float, tau: int) -> float:
    """The i.i.d. alpha whose draft of ``tau`` tokens accepts ``accepted_per_draft`` on
    average (the inverse of :func:`expected_accepted`, increasing in alpha; 0..tau)."""
    from scipy.optimize import brentq

    if accepted_per_draft <= 0:
        return 0.0
    if accepted_per_draft >= tau:
        return 1.0
    return float(brentq(lambda a: expected_accepted(a, tau) - accepted_per_draft, 0.0, 1.0,
                        xtol=1e-12))


def _solve_acceptance(a: AcceptanceConfig, where: str) -> AcceptanceConfig:
    """``alpha`` from ``mean_accepted_length`` / ``accepted_per_draft`` at ``tau`` (model iid);
    ``by_context`` checked (and its first alpha the model's ``alpha``)."""
    w = f"{where}: [acceptance]"
    if a.by_context:
        rows = a.by_context
        if not all(len(r) == 2 for r in rows):
            raise SpecsimError(f"{w} by_context = {rows}: each entry is [from_tokens, alpha]")
        starts = [r[0] for r in rows]
        if starts[0] != 0:
            raise SpecsimError(f"{w} by_context = {rows}: the first entry starts at 0 tokens")
        if any(b <= x for x, b in itertools.pairwise(starts)):
            raise SpecsimError(f"{w} by_context = {rows}: from_tokens must be increasing")
        if any(not 0.0 <= r[1] <= 1.0 for r in rows):
            raise SpecsimError(f"{w} by_context = {rows}: each alpha must be in [0, 1]")
        if a.model == "trace":
            raise SpecsimError(f'{w} by_context: not with model = "trace" (it fits its own '
                               "context_buckets)")
    given = [k for k in ("mean_accepted_length", "accepted_per_draft")
             if getattr(a, k) is not None]
    if not given:
        if a.tau is not None:
            raise SpecsimError(f"{w} tau = {a.tau}: only with mean_accepted_length or "
                               "accepted_per_draft (the draft length they were measured at)")
        return a
    if len(given) > 1:
        raise SpecsimError(f"{w} mean_accepted_length and accepted_per_draft: give one")
    if a.tau is None:
        raise SpecsimError(f"{w} {given[0]}: needs tau = N, the draft length it was measured at "
                           "(vLLM's num_speculative_tokens)")
    if a.model == "trace" or a.by_context:
        raise SpecsimError(f"{w} {given[0]}: an i.i.d. acceptance; not with "
                           + ('model = "trace"' if a.model == "trace" else "by_context"))
    per_draft = (a.mean_accepted_length - 1.0 if a.mean_accepted_length is not None
                 else float(a.accepted_per_draft or 0.0))
    value = getattr(a, given[0])
    if per_draft > a.tau:
        top = a.tau + 1 if given[0] == "mean_accepted_length" else a.tau
        raise SpecsimError(f"{w} {given[0]} = {value:g}: at most {top} with tau = {a.tau}")
    return dataclasses.replace(a, model="iid", alpha=round(solve_alpha(per_draft, a.tau), 6))


def acceptance_note(a: AcceptanceConfig) -> str:
    """What an acceptance given as a server's figure was solved to ("" when given as alpha)."""
    if a.mean_accepted_length is not None:
        return (f"[acceptance] mean_accepted_length {a.mean_accepted_length:g} at tau {a.tau} "
                f"-> i.i.d. alpha {a.alpha:.4f}")
    if a.accepted_per_draft is not None:
        return (f"[acceptance] accepted_per_draft {a.accepted_per_draft:g} at tau {a.tau} "
                f"-> i.i.d. alpha {a.alpha:.4f}")
    return ""


def _build_policy(table: dict[str, Any], where: str) -> PolicyConfig:
    params = dict(table)
    name = params.pop("name", "fixed")
    if isinstance(name, str) and name not in POLICIES:
        from sim.policies.user import is_user_policy, load_user_policy

        if is_user_policy(name):
            try:
                load_user_policy(name, POLICIES)
            except SpecsimError as exc:
                raise SpecsimError(f"{where}: [policy] name: {exc}") from None
    if not isinstance(name, str) or name not in POLICIES:
        raise SpecsimError(
            f"{where}: [policy] name = {name!r}: unknown (known: {', '.join(sorted(POLICIES))})"
        )
    all_keys = set().union(*(policy_keys(n) for n in POLICIES if n == name
                             or ".py:" not in n))
    for key in params:
        if key not in all_keys:
            raise SpecsimError(
                f"{where}: [policy] {key}: unknown key (known: {', '.join(sorted(all_keys))})"
            )
    config = PolicyConfig(name=name, params=params)
    try:
        build_policy(name, config.accepted_params())
    except SpecsimError as exc:
        raise SpecsimError(f"{where}: [policy] {exc}") from None
    return config


def _build_section(cls: type, section: str, table: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        f = known.get(key)
        if f is None:
            raise SpecsimError(
                f"{where}: [{section}] {key}: unknown key (known: {', '.join(known)})"
            )
        kwargs[key] = _check_value(f, value, f"{where}: [{section}] {key} = {_show(value)}")
    return cls(**kwargs)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _check_value(f: dataclasses.Field, value: Any, what: str) -> Any:
    meta = f.metadata
    kind = str(f.type)
    if meta.get("tokens"):
        return _check_tokens(value, what)
    if kind in ("bool", "bool | None"):
        if not isinstance(value, bool):
            raise SpecsimError(f"{what}: must be true or false")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise SpecsimError(f"{what}: must be a string")
        if "choices" in meta and value not in meta["choices"]:
            raise SpecsimError(f"{what}: must be one of {', '.join(meta['choices'])}")
        return value
    if kind == "list[list[float]]":
        if not isinstance(value, list) or not all(isinstance(r, list) and r for r in value):
            raise SpecsimError(f"{what}: must be a list of non-empty lists of numbers")
        if len({len(r) for r in value}) > 1:
            raise SpecsimError(f"{what}: every row must have the same length")
        for row in value:
            _check_numbers(row, meta, False, what)
        return [[float(x) for x in row] for row in value]
    items = value if isinstance(value, list) and "list" in kind else [value]
    if isinstance(value, list) and "list" not in kind:
        raise SpecsimError(f"{what}: must be a number, not a list")
    if not isinstance(value, list) and kind.startswith("list"):
        raise SpecsimError(f"{what}: must be a list")
    want_int = kind in ("int", "list[int]", "int | None")
    _check_numbers(items, meta, want_int, what)
    if isinstance(value, list):
        return list(value)
    return value if want_int else float(value)


def _check_numbers(items: list[Any], meta: Any, want_int: bool, what: str) -> None:
    """Every item a finite number (an integer with ``want_int``) within the field's range."""
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise SpecsimError(f"{what}: must be {'an integer' if want_int else 'a number'}")
        if want_int and not isinstance(item, int):
            raise SpecsimError(f"{what}: must be an integer")
        if not math.isfinite(item):
            raise SpecsimError(f"{what}: must be finite")
        lo, hi = meta.get("range", (None, None))
        if (lo is not None and item < lo) or (hi is not None and item > hi):
            bound = f"in [{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
            raise SpecsimError(f"{what}: must be {bound}")


def _check_tokens(value: Any, what: str) -> TokenSpec:
    if isinstance(value, bool):
        raise SpecsimError(f'{what}: must be a token count, "trace" or a distribution')
    if isinstance(value, int):
        if value < 1:
            raise SpecsimError(f"{what}: must be >= 1")
        return value
    if isinstance(value, str):
        if value not in ("trace", "file"):
            raise SpecsimError(f'{what}: the only strings allowed are "trace" and "file"')
        return value
    if not isinstance(value, dict):
        raise SpecsimError(f'{what}: must be a token count, "trace" or a distribution')
    dist = value.get("dist")
    if dist not in DIST_KEYS:
        raise SpecsimError(f"{what}: dist must be one of {', '.join(DIST_KEYS)}")
    extra = set(value) - DIST_KEYS[dist] - {"dist"}
    if extra:
        raise SpecsimError(f'{what}: unknown key {sorted(extra)[0]} for dist "{dist}"')
    need = {"lognormal": ("mean", "sigma"), "uniform": ("low", "high"), "choice": ("values",)}
    for key in need[dist]:
        if key not in value:
            raise SpecsimError(f'{what}: dist "{dist}" needs {key}')
    nums = [v for k, v in value.items() if k != "dist" for v in (v if isinstance(v, list) else [v])]
    if any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in nums):
        raise SpecsimError(f"{what}: distribution parameters must be non-negative numbers")
    if dist == "lognormal" and value["mean"] < 1:
        raise SpecsimError(f"{what}: mean must be >= 1")
    if dist == "uniform" and not 1 <= value["low"] <= value["high"]:
        raise SpecsimError(f"{what}: needs 1 <= low <= high")
    if dist == "choice":
        values = value["values"]
        if not isinstance(values, list) or not values or min(values) < 1:
            raise SpecsimError(f"{what}: values must be a non-empty list of counts >= 1")
        weights = value.get("weights")
        if weights is not None and (
            not isinstance(weights, list) or len(weights) != len(values) or sum(weights) <= 0
        ):
            raise SpecsimError(f"{what}: weights must match values and sum to > 0")
    return dict(value)


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Convert a command-line string to the type of ``cls.name`` (unknown keys pass through)."""
    if not isinstance(value, str):
        return value
    f = {f.name: f for f in fields(cls)}.get(name)
    kind = str(f.type) if f is not None else "policy"
    if kind == "str" or value in ("trace", "file"):
        return value
    if value.lower() in ("true", "false") and kind in ("bool", "policy"):
        return value.lower() == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
