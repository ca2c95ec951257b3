"""Costs on the device a scenario names: the trace's own, a measured profile's, or the catalog's.

Every resolved cost model says how it was made (``basis``):

* ``"trace"``: the run's own device -- the costs a trace measured (fitted by calibration);
* ``"profile"``: a measured profile of the named device (``[latency] profile``: a ``specsim
  profile`` file, a capture that carries a verify profile, or a target-only trace of the
  device); what it did not measure -- multi-token passes, a draft model's steps -- comes from the
  cost model (:mod:`sim.models.costmodel`) scaled so that its 1-token pass is the profile's;
* ``"catalog"``: datasheet + cost model only, with ``band``: the factor the figure can be off by
  (the device's ``band``: :data:`sim.models.catalog.CATALOG_BAND` from the cross-device validation, or
  narrower where a profile of the device checked the stack, as the H200's);
* ``"scenario"``: the scenario's own numbers, on no named device.

Host-side costs -- an n-gram draft's lookup, the per-cycle bookkeeping -- stay what was measured:
they run on the host, not on the accelerator, and no bandwidth ratio moves them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.models.catalog import Device, device_of, get_device, same_device
from sim.models.costmodel import (
    SMOLLM2_135M,
    ModelShape,
    PassModel,
    by_count,
    normalize_dtype,
    table_shape,
)
from sim.models.deviceprofile import DeviceProfile
from sim.models.shapes import table_names
from tracing.errors import SpecsimError

MAX_TABLE_TOKENS = 17  # single-stream verify table built for 1..17 scored tokens


@dataclass(frozen=True)
class DeviceSetup:
    """What calibration learned about the run's device and models (no trace inside).

    ``draft_kind``: ``"none"``, ``"host"`` (n-gram lookup: no device pass) or ``"model"`` (a
    layer-skip or separate draft model, of shape ``draft``)."""

    device: str = ""
    dtype: str = ""
    target: ModelShape | None = None
    draft_kind: str = "none"
    draft: ModelShape | None = None
    profile: DeviceProfile | None = None


@dataclass(frozen=True)
class DeviceCosts:
    """Costs moved to (or anchored on) a device, and how."""

    basis: str
    band: float | None
    target_step_s: float
    verify_table: tuple[float, ...]
    draft_step_s: float
    prefill_s_per_token: float
    target_prefill_s_per_token: float
    context_s_per_token: float
    pass_model: PassModel
    note: str = ""  # said wherever the figures are shown (an assumed shape)


def draft_kind_of(draft_model: str, draft_params: float) -> tuple[str, int | None]:
    """(kind, layer-skip depth) from a trace's draft name: ``ngram*`` -> host; ``none`` / "" with
    no draft parameters -> none; ``layerskip[:layers=L]`` -> model (L layers, default 8);
    anything else with parameters -> model."""
    name = (draft_model or "").strip()
    kind = name.partition(":")[0]
    if kind == "ngram":
        return "host", None
    if kind == "layerskip":
        layers = 8
        for item in name.partition(":")[2].split(","):
            key, _, value = item.partition("=")
            if key.strip() == "layers" and value.strip().isdigit():
                layers = int(value)
        return "model", layers
    if kind in ("", "none") and not draft_params:
        return "none", None
    return ("model", None) if draft_params else ("none", None)


def read_config(path: str, where: str) -> tuple[dict[str, Any], float]:
    """A transformers ``config.json`` (or a ``specsim profile`` file's ``target_config`` and
    ``target_params``) -> (config, parameter count or 0)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SpecsimError(f'{where}: config = "{path}": file not found') from None
    except (OSError, ValueError) as exc:
        raise SpecsimError(f'{where}: config = "{path}": not a readable JSON file: {exc}'
                           ) from None
    if not isinstance(data, dict):
        raise SpecsimError(f'{where}: config = "{path}": not a JSON object')
    if isinstance(data.get("target_config"), dict):  # a specsim profile
        return data["target_config"], float(data.get("target_params") or 0.0)
    return data, 0.0


def config_shape(path: str, where: str) -> ModelShape:
    """The shape a config file (see :func:`read_config`) describes."""
    config, params = read_config(path, where)
    name = str(config.get("_name_or_path") or Path(path).stem)
    try:
        return ModelShape.from_config(config, params, name, source="config")
    except SpecsimError as exc:
        raise SpecsimError(f'{where}: config = "{path}": {exc}') from None


def scenario_target(cfg: Any, where: str) -> ModelShape | None:
    """The shape a scenario's ``[target]`` names (None when it names none). A parameter count
    alone gives the assumed shape only with ``shape = "assumed"`` (the scenario checked that)."""
    if cfg is None or not cfg.given:
        return None
    if cfg.model:
        found = table_shape(cfg.model)
        if found is None:
            raise SpecsimError(f'{where}: [target] model = "{cfg.model}": not in the table '
                               f"(known: {table_names()})")
        return found
    if cfg.config:
        path = Path(cfg.config)  # relative: from the scenario file's folder, else from here
        if not path.is_absolute() and not where.startswith("<") and where:
            beside = Path(where).parent / path
            path = beside if beside.exists() else path
        return config_shape(str(path), f"{where}: [target]")
    if cfg.geometry:
        fields = {"num_hidden_layers": cfg.layers, "hidden_size": cfg.hidden,
                  "num_attention_heads": cfg.heads, "num_key_value_heads": cfg.kv_heads,
                  "head_dim": cfg.head_dim, "vocab_size": cfg.vocab,
                  "intermediate_size": cfg.intermediate, "tie_word_embeddings": cfg.tied}
        config = {k: v for k, v in fields.items() if v is not None}
        return ModelShape.from_config(config, cfg.params or 0.0, "target", source="explicit")
    return assumed_shape(float(cfg.params))


def assumed_shape(params: float) -> ModelShape:
    """SmolLM2's proportions scaled to ``params`` (a guess, marked ``assumed``)."""
    shape = SMOLLM2_135M.with_geometry(params=params)
    return ModelShape(shape.n_params, shape.layers, shape.hidden, shape.heads, shape.kv_heads,
                      shape.head_dim, shape.vocab, name=f"assumed {params:g}-parameter target",
                      source="assumed")


def target_shape(setup: DeviceSetup, target_params: float, where: str,
                 scenario_cfg: Any = None) -> tuple[ModelShape, str]:
    """The target's shape -- the scenario's ``[target]``, else the trace's -- and a note to show
    wherever its figures are when the shape was assumed from a parameter count. A parameter
    count alone (``[latency] target_params``) is refused unless ``[target] shape = "assumed"``."""
    named = scenario_target(scenario_cfg, where)
    if named is not None:
        return named, assumed_note(named)
    if setup.target is not None:
        return setup.target, ""
    if target_params > 0:
        exact = by_count(target_params)  # an exact count of a table model names it
        if exact is not None:
            return exact, ""
        if scenario_cfg is not None and getattr(scenario_cfg, "shape", "") == "assumed":
            shape = assumed_shape(target_params)
            return shape, assumed_note(shape)
        raise SpecsimError(f"{where}: the target's shape is unknown ([latency] target_params = "
                           f"{target_params:g} alone does not say layers x width, which decide "
                           "a pass's cost): give [target] model = NAME (known: "
                           f'{table_names()}), config = "config.json" or layers/hidden/heads/'
                           'kv_heads/head_dim/vocab; or [target] shape = "assumed" to guess '
                           "it from SmolLM2's proportions")
    raise SpecsimError(f"{where}: moving costs to another device needs the target's shape "
                       "([target] model / config / geometry, or a trace whose run metadata "
                       "records it)")


def assumed_note(shape: ModelShape) -> str:
    """The note an assumed shape carries ("" for a known one)."""
    if not shape.assumed:
        return ""
    return (f"ASSUMED target shape: {shape.layers} layers x {shape.hidden} wide for "
            f"{shape.n_params:g} parameters (SmolLM2's proportions; [target] shape = "
            '"assumed"): a real model of that size may cost a different amount')


def draft_shape(scenario_draft: object, setup: DeviceSetup, target: ModelShape,
                draft_params: float) -> ModelShape | None:
    """The draft model's shape: ``[draft] layers / hidden / params`` first (another draft by
    architecture), else the trace's draft (layer-skip depth or parameter count)."""
    layers = getattr(scenario_draft, "layers", None)
    hidden = getattr(scenario_draft, "hidden", None)
    params = getattr(scenario_draft, "params", None)
    model = getattr(scenario_draft, "model", "")
    if model:
        found = table_shape(model)
        if found is None:
            raise SpecsimError(f'[draft] model = "{model}": not in the table '
                               f"(known: {table_names()})")
        return found
    if layers or hidden:
        return target.with_geometry(layers=layers, hidden=hidden, params=params)
    if params:
        return target.with_geometry(params=params)
    if setup.draft_kind != "model":
        return None
    if setup.draft is not None:
        return setup.draft
    return target.with_geometry(params=draft_params) if draft_params else None


def dtype_on(device: Device, setup: DeviceSetup, requested: str) -> str:
    """The dtype a pass runs in on ``device``: ``[latency] dtype`` when given; the trace's own
    dtype on its own device; the device's default (bf16 on GPUs) elsewhere."""
    if requested:
        return normalize_dtype(requested)
    if setup.dtype and setup.device and device_of(setup.device) is device:
        return normalize_dtype(setup.dtype)
    return device.default_dtype


def profile_for(setup: DeviceSetup, device: Device | None) -> DeviceProfile | None:
    """The setup's profile when it measured ``device`` (any profile when ``device`` is None)."""
    prof = setup.profile
    if prof is None:
        return None
    if device is None or same_device(prof.device, device.key):
        return prof
    return None


def move(*, hardware: str, dtype: str, setup: DeviceSetup, target_params: float,
         scenario_draft: object, draft_params: float, host_draft_step_s: float,
         where: str, scenario_target: Any = None, stack: str = "") -> DeviceCosts:
    """Costs on ``hardware`` (a catalog name) from its profile when the setup has one, else from
    the catalog. ``host_draft_step_s``: the measured per-token cost of a host draft;
    ``scenario_target``: the scenario's ``[target]`` (shape and ``tp``); ``stack``: the software
    stack (``"eager"``, ``"cuda-graph"``; "" the device's own)."""
    device = get_device(hardware).on_stack(stack)
    target, note = target_shape(setup, target_params, where, scenario_target)
    tp = int(getattr(scenario_target, "tp", 1) or 1)
    device.check_tp(tp, "[target] tp =")
    draft = draft_shape(scenario_draft, setup, target, draft_params)
    separate = draft is not None and not (draft is setup.draft and "[:" in draft.name)
    prof = profile_for(setup, device)
    dt = normalize_dtype(prof.dtype) if prof is not None and not dtype else dtype_on(
        device, setup, dtype)
    model = PassModel(device, dt, target, draft, tp=tp, draft_separate=separate)
    basis: str = "catalog"
    band: float | None = device.band
    table = [model.verify_s(n) for n in range(1, MAX_TABLE_TOKENS + 1)]
    if prof is not None:
        basis, band = "profile", None
        measured = prof.one_token_s()
        if measured:
            context = min(p["context"] for p in prof.role_points("target")
                          if p["batch"] == 1 and p["tokens"] == 1)
            model = PassModel(device, dt, target, draft, tp=tp, draft_separate=separate,
                              scale=measured / model.verify_s(1, 1, context))
        table = [model.verify_s(n) for n in range(1, MAX_TABLE_TOKENS + 1)]
        at = min((p["context"] for p in prof.role_points("target") if p["batch"] == 1),
                 default=0)
        kv = model.kv_s_per_token() * at  # the table is charged at context 0, KV on top
        for i, s in enumerate(prof.batch1_table(MAX_TABLE_TOKENS)):
            if s > kv:
                table[i] = s - kv
    by_architecture = any(getattr(scenario_draft, k, None) for k in ("layers", "hidden", "model",
                                                                         "params"))
    draft_fit = prof.fit("draft") if prof is not None else None
    if setup.draft_kind == "host" and draft is None:
        draft_step = host_draft_step_s  # host code: what was measured, not scaled
    elif draft_fit is not None and draft is not None and not by_architecture:
        draft_step = draft_fit.seconds(1)  # the profile ran this draft
    else:
        draft_step = model.draft_step_s()
    target_prefill = model.prefill_s_per_token()
    prefill = target_prefill
    if draft is not None and setup.draft_kind == "model":  # the draft fills its cache too
        prefill += (model.scale * PassModel(device, dt, draft, tp=tp).prefill_s_per_token())
    return DeviceCosts(
        basis=basis, band=band, target_step_s=table[0], verify_table=tuple(table),
        draft_step_s=draft_step, prefill_s_per_token=prefill,
        target_prefill_s_per_token=target_prefill, context_s_per_token=model.kv_s_per_token(),
        pass_model=model, note=note)


def anchored_draft_step(*, setup: DeviceSetup, device_name: str, target_params: float,
                        scenario_draft: object, draft_params: float, target_step_s: float,
                        where: str, scenario_target: Any = None) -> float:
    """On the run's own device: the step cost of a ``[draft] layers / hidden / params`` draft,
    from the cost model scaled so that its target pass costs the measured ``target_step_s``."""
    device = device_of(device_name) if device_name else None
    if device is None:
        raise SpecsimError(f'{where}: a [draft] by architecture needs the device ("{device_name}"'
                           " is not in the catalog): set [latency] hardware")
    target, _ = target_shape(setup, target_params, where, scenario_target)
    draft = draft_shape(scenario_draft, setup, target, draft_params)
    if draft is None:
        return 0.0
    model = PassModel(device, dtype_on(device, setup, ""), target, draft)
    return model.draft_step_s() * target_step_s / model.verify_s(1)
