"""Scenarios: the TOML file the simulator runs, as small dataclasses validated on construction.

Every bad key is a :class:`SpecsimError` that names it, e.g.
``scenario.toml: [acceptance] alpha = 1.3: must be in [0, 1]``. The sections' dataclasses are in
:mod:`sim.scenario_sections`, the checks of one table in :mod:`sim.scenario_checks`. Every section
and key, with its meaning, is in docs/scenario.md, generated from those dataclasses by
:mod:`sim.scenario_doc` (a key added there needs its line in it; a test checks).
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sim.policies.library import build_policy
from sim.scenario_checks import (
    _build_policy,
    _build_section,
    _coerce,
    _solve_acceptance,
    acceptance_note,
    expected_accepted,
    solve_alpha,
)
from sim.scenario_sections import (
    DIST_KEYS,
    SECTIONS,
    AcceptanceConfig,
    BudgetConfig,
    DraftConfig,
    LatencyConfig,
    PolicyConfig,
    ServerConfig,
    SimConfig,
    TargetConfig,
    TokenSpec,
    WorkloadConfig,
    policy_keys,
)
from tracing.errors import SpecsimError

# The sections and their checks live in sim.scenario_sections and sim.scenario_checks; their
# public names stay importable from here.
__all__ = [
    "DIST_KEYS",
    "SECTIONS",
    "AcceptanceConfig",
    "BudgetConfig",
    "DraftConfig",
    "LatencyConfig",
    "PolicyConfig",
    "Scenario",
    "ServerConfig",
    "SimConfig",
    "TargetConfig",
    "TokenSpec",
    "WorkloadConfig",
    "acceptance_note",
    "expected_accepted",
    "policy_keys",
    "solve_alpha",
]


@dataclass(frozen=True)
class Scenario:
    """A whole simulation scenario; build with :meth:`from_toml` / :meth:`from_dict`."""

    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    acceptance: AcceptanceConfig = field(default_factory=AcceptanceConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    draft: DraftConfig = field(default_factory=DraftConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    where: str = field(default="<dict>", compare=False)

    @classmethod
    def from_toml(cls, path: str | Path) -> Scenario:
        """Read and validate a scenario file."""
        where = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise SpecsimError(f"{where}: scenario file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise SpecsimError(f"{where}: not valid TOML: {exc}") from None
        return cls.from_dict(data, where=where)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<dict>") -> Scenario:
        """Validate a TOML-shaped dict; every problem names the section and key."""
        if not isinstance(d, dict):
            raise SpecsimError(f"{where}: a scenario is a table of sections")
        parts: dict[str, Any] = {}
        for section, table in d.items():
            if section not in SECTIONS:
                raise SpecsimError(
                    f"{where}: unknown section [{section}] (known: {', '.join(SECTIONS)})"
                )
            if not isinstance(table, dict):
                raise SpecsimError(f"{where}: [{section}] must be a table")
            if section == "policy":
                parts[section] = _build_policy(table, where)
            elif section == "workload" and table.get("arrival") == "file":
                # lengths come from the arrivals file unless given
                # lengths and the count come from the arrivals file unless given
                table = {"prompt_tokens": "file", "output_tokens": "file", "requests": 0, **table}
                parts[section] = _build_section(SECTIONS[section], section, table, where)
            else:
                parts[section] = _build_section(SECTIONS[section], section, table, where)
        if "acceptance" in parts:
            parts["acceptance"] = _solve_acceptance(parts["acceptance"], where)
        scenario = cls(**parts, where=where)
        scenario._check_cross(where)
        return scenario

    def to_dict(self) -> dict[str, Any]:
        """TOML-shaped dict (unset optional keys left out); ``from_dict`` reads it back."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            value = getattr(self, section)
            if section == "policy":
                out[section] = {"name": value.name, **copy.deepcopy(value.params)}
                continue
            table = {}
            for f in fields(value):
                v = getattr(value, f.name)
                if v is not None:
                    table[f.name] = copy.deepcopy(v)
            out[section] = table
        return out

    def to_toml(self) -> str:
        """The scenario as a TOML file (``from_toml`` reads it back); written beside outputs."""
        lines: list[str] = []
        for section, table in self.to_dict().items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
            lines.append("")
        return "\n".join(lines)

    def with_overrides(self, overrides: dict[str, Any], where: str | None = None) -> Scenario:
        """A validated copy with ``{"section.key": value}`` replaced (``whatif --vary``).

        String values are converted to the key's type (``"8"`` -> 8 for an int key), so values
        straight from a command line work. Setting ``workload.rate_per_s`` > 0 without
        ``workload.arrival`` switches arrivals to ``"poisson"``, setting ``workload.concurrency``
        (and no rate) switches them to ``"closed"``; setting ``acceptance.alpha`` of a
        ``"trace"`` acceptance model without ``acceptance.model`` switches it to ``"iid"``.
        """
        d = self.to_dict()
        for key, value in overrides.items():
            section, dot, name = key.partition(".")
            if not dot or section not in SECTIONS or not name:
                raise SpecsimError(
                    f"{where or self.where}: override '{key}': expected SECTION.KEY with a "
                    f"section among {', '.join(SECTIONS)}"
                )
            d[section][name] = _coerce(SECTIONS[section], name, value)
        # Varying alpha of a fitted ("trace") acceptance means an i.i.d. (or positional) model.
        acc = d["acceptance"]
        solved_from = ("mean_accepted_length", "accepted_per_draft", "tau")
        if "acceptance.alpha" in overrides and not any(  # a given alpha replaces them
                f"acceptance.{k}" in overrides for k in solved_from):
            for key in solved_from:
                acc.pop(key, None)
        alpha_only = "acceptance.alpha" in overrides and "acceptance.model" not in overrides
        if alpha_only and acc.get("model") == "trace":
            acc["model"] = "positional" if isinstance(acc["alpha"], list) else "iid"
            acc["per_request"] = acc["replay"] = False
        # Varying the rate of a closed or replayed workload means Poisson arrivals at that rate;
        # varying the concurrency of an open or replayed one means closed-loop users.
        rate = d["workload"].get("rate_per_s", 0.0)
        users_only = "workload.concurrency" in overrides and "workload.rate_per_s" not in overrides
        if "workload.arrival" in overrides:
            pass
        elif users_only:
            d["workload"]["arrival"] = "closed"
            d["workload"]["rate_per_s"] = 0.0
        elif isinstance(rate, int | float) and rate > 0:
            d["workload"]["arrival"] = "poisson"
        return Scenario.from_dict(d, where=where or self.where)

    def make_policy(self) -> Any:
        """A fresh policy object for this scenario, with the [budget] applied."""
        return build_policy(
            self.policy.name,
            self.policy.accepted_params(),
            max_verify=self.budget.max_verify_per_request,
            mean_verify=self.budget.mean_verify_per_request,
        )

    @property
    def needs_trace(self) -> bool:
        """True when some key reads from a trace ("trace" lengths, arrivals, acceptance, latency)."""
        w = self.workload
        return (
            "trace" in (w.prompt_tokens, w.output_tokens, w.arrival)
            or self.acceptance.model == "trace"
            or self.latency.model == "trace"
        )

    def _check_cross(self, where: str) -> None:
        w, a = self.workload, self.acceptance
        if w.arrival == "poisson" and w.rate_per_s <= 0:
            raise SpecsimError(f'{where}: [workload] arrival = "poisson" needs rate_per_s > 0')
        if w.arrival != "poisson" and w.rate_per_s > 0:
            raise SpecsimError(
                f'{where}: [workload] rate_per_s = {w.rate_per_s}: only with arrival = "poisson"'
            )
        self._check_file(where)
        if a.model == "iid" and isinstance(a.alpha, list):
            raise SpecsimError(
                f'{where}: [acceptance] alpha = {a.alpha}: model "iid" takes one number'
            )
        if a.model == "positional" and not isinstance(a.alpha, list):
            raise SpecsimError(
                f'{where}: [acceptance] alpha = {a.alpha}: model "positional" takes a list'
            )
        if isinstance(a.alpha, list) and not a.alpha:
            raise SpecsimError(f"{where}: [acceptance] alpha = []: the list is empty")
        if a.per_request and (a.model != "trace" or w.output_tokens != "trace"):
            raise SpecsimError(
                f'{where}: [acceptance] per_request = true: needs model = "trace" and '
                '[workload] output_tokens = "trace"'
            )
        buckets = a.context_buckets
        if any(b2 <= b1 for b1, b2 in itertools.pairwise(buckets)):
            raise SpecsimError(
                f"{where}: [acceptance] context_buckets = {buckets}: must be increasing"
            )
        from sim.models.catalog import UnknownDevice, get_device, known  # local: no import circle
        from sim.models.costmodel import normalize_dtype

        for key in ("hardware", "source_hardware"):
            name = getattr(self.latency, key)
            if name:
                try:
                    get_device(name)
                except UnknownDevice:
                    raise SpecsimError(f'{where}: [latency] {key} = "{name}": unknown device '
                                       f"(known: {known()})") from None
        self._check_target(where)
        if self.latency.dtype:
            try:
                normalize_dtype(self.latency.dtype)
            except SpecsimError as exc:
                raise SpecsimError(f"{where}: [latency] {exc}") from None


    def _check_target(self, where: str) -> None:
        from sim.models.shapes import lookup, table_names  # local: the table

        t, d = self.target, self.draft
        named = [k for k, v in (("model", t.model), ("config", t.config),
                                ("layers/hidden/...", t.geometry)) if v]
        if len(named) > 1:
            raise SpecsimError(f"{where}: [target] gives {' and '.join(named)}: name the "
                               "target one way")
        if t.model:
            lookup(t.model, f"{where}: [target]")
        if d.model:
            lookup(d.model, f"{where}: [draft]")
            if d.layers or d.hidden or d.params:
                raise SpecsimError(f"{where}: [draft] model = \"{d.model}\" and layers/hidden/"
                                   "params: name the draft one way")
        if t.geometry:
            missing = [k for k in ("layers", "hidden", "heads", "vocab")
                       if getattr(t, k) is None]
            if missing:
                raise SpecsimError(f"{where}: [target] geometry needs {', '.join(missing)} too")
            if t.params is None and t.intermediate is None:
                raise SpecsimError(f"{where}: [target] geometry needs params or intermediate "
                                   "(to count the parameters)")
        if t.shape == "assumed" and (t.model or t.config or t.geometry):
            raise SpecsimError(f'{where}: [target] shape = "assumed": only with a parameter '
                               "count alone (the shape is given)")
        params_only = (t.params and not (t.model or t.config or t.geometry))
        if params_only and t.shape != "assumed":
            raise SpecsimError(f"{where}: [target] params = {t.params:g} alone does not say "
                               "the shape (layers x width decide a pass's cost): give model = "
                               f'NAME (known: {table_names()}), config = "config.json" or '
                               'layers/hidden/heads/kv_heads/head_dim/vocab; or shape = '
                               '"assumed" to guess it from SmolLM2\'s proportions')

    def _check_file(self, where: str) -> None:
        w = self.workload
        if w.arrival == "file" and not w.arrivals_file:
            raise SpecsimError(f'{where}: [workload] arrival = "file" needs arrivals_file = "PATH" '
                               "(an Azure LLM trace CSV, a Mooncake JSONL or a specsim trace)")
        if w.arrival != "file":
            if w.requests < 1:
                raise SpecsimError(f"{where}: [workload] requests = {w.requests}: must be >= 1 "
                                   '(0, "every request of the file", only with arrival = "file")')
            if w.arrivals_file:
                raise SpecsimError(f'{where}: [workload] arrivals_file = "{w.arrivals_file}": '
                                   'only with arrival = "file"')
            for key in ("prompt_tokens", "output_tokens"):
                if getattr(w, key) == "file":
                    raise SpecsimError(f'{where}: [workload] {key} = "file": only with '
                                       'arrival = "file"')
        if w.rate_scale <= 0:
            raise SpecsimError(f"{where}: [workload] rate_scale = {w.rate_scale:g}: must be > 0")


def _toml_value(value: Any) -> str:
    """One TOML value: strings, booleans, numbers, lists and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")
