"""Costs on the device a scenario names: the trace's own, a measured profile's, or the catalog's.

Every resolved cost model says how it was made (``basis``):

* ``"trace"``: the run's own device -- the costs a trace measured (fitted by calibration);
* ``"profile"``: a measured profile of the named device (``[latency] profile``: a ``specsim
  profile`` file, a capture that carries a verify profile, or a target-only trace of the
  device); what it did not measure -- multi-token passes, a draft model's steps -- comes from the
  cost model (:mod:`sim.costmodel`) scaled so that its 1-token pass is the profile's;
* ``"catalog"``: datasheet + cost model only, with ``band``: the factor the figure can be off by
  (:data:`sim.catalog.CATALOG_BAND`, from the cross-device validation);
* ``"scenario"``: the scenario's own numbers, on no named device.

Host-side costs -- an n-gram draft's lookup, the per-cycle bookkeeping -- stay what was measured:
they run on the host, not on the accelerator, and no bandwidth ratio moves them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.catalog import CATALOG_BAND, Device, device_of, get_device, same_device
from sim.costmodel import SMOLLM2_135M, ModelShape, PassModel, normalize_dtype
from sim.deviceprofile import DeviceProfile
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
    note: str = ""


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


def target_shape(setup: DeviceSetup, target_params: float, where: str) -> tuple[ModelShape, str]:
    """The target's shape, and a note when it had to be assumed from the parameter count."""
    if setup.target is not None:
        return setup.target, ""
    if target_params > 0:
        shape = SMOLLM2_135M.with_geometry(params=target_params)
        return shape, (f"{where}: the target's layers and width are unknown; assumed "
                       f"{shape.layers} layers x {shape.hidden} wide for {target_params:g} "
                       "parameters (SmolLM2's proportions)")
    raise SpecsimError(f"{where}: moving costs to another device needs the target's size "
                       "([latency] target_params, or a trace whose run metadata records it)")


def draft_shape(scenario_draft: object, setup: DeviceSetup, target: ModelShape,
                draft_params: float) -> ModelShape | None:
    """The draft model's shape: ``[draft] layers / hidden / params`` first (another draft by
    architecture), else the trace's draft (layer-skip depth or parameter count)."""
    layers = getattr(scenario_draft, "layers", None)
    hidden = getattr(scenario_draft, "hidden", None)
    params = getattr(scenario_draft, "params", None)
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
         where: str) -> DeviceCosts:
    """Costs on ``hardware`` (a catalog name) from its profile when the setup has one, else from
    the catalog. ``host_draft_step_s``: the measured per-token cost of a host draft."""
    device = get_device(hardware)
    target, note = target_shape(setup, target_params, where)
    draft = draft_shape(scenario_draft, setup, target, draft_params)
    prof = profile_for(setup, device)
    dt = normalize_dtype(prof.dtype) if prof is not None and not dtype else dtype_on(
        device, setup, dtype)
    model = PassModel(device, dt, target, draft)
    basis: str = "catalog"
    band: float | None = CATALOG_BAND
    table = [model.verify_s(n) for n in range(1, MAX_TABLE_TOKENS + 1)]
    if prof is not None:
        basis, band = "profile", None
        measured = prof.one_token_s()
        if measured:
            context = min(p["context"] for p in prof.role_points("target")
                          if p["batch"] == 1 and p["tokens"] == 1)
            model = PassModel(device, dt, target, draft,
                              scale=measured / model.verify_s(1, 1, context))
        table = [model.verify_s(n) for n in range(1, MAX_TABLE_TOKENS + 1)]
        at = min((p["context"] for p in prof.role_points("target") if p["batch"] == 1),
                 default=0)
        kv = model.kv_s_per_token() * at  # the table is charged at context 0, KV on top
        for i, s in enumerate(prof.batch1_table(MAX_TABLE_TOKENS)):
            if s > kv:
                table[i] = s - kv
    by_architecture = any(getattr(scenario_draft, k, None) for k in ("layers", "hidden",
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
        prefill += (model.scale * PassModel(device, dt, draft).prefill_s_per_token())
    return DeviceCosts(
        basis=basis, band=band, target_step_s=table[0], verify_table=tuple(table),
        draft_step_s=draft_step, prefill_s_per_token=prefill,
        target_prefill_s_per_token=target_prefill, context_s_per_token=model.kv_s_per_token(),
        pass_model=model, note=note)


def anchored_draft_step(*, setup: DeviceSetup, device_name: str, target_params: float,
                        scenario_draft: object, draft_params: float, target_step_s: float,
                        where: str) -> float:
    """On the run's own device: the step cost of a ``[draft] layers / hidden / params`` draft,
    from the cost model scaled so that its target pass costs the measured ``target_step_s``."""
    device = device_of(device_name) if device_name else None
    if device is None:
        raise SpecsimError(f'{where}: a [draft] by architecture needs the device ("{device_name}"'
                           " is not in the catalog): set [latency] hardware")
    target, _ = target_shape(setup, target_params, where)
    draft = draft_shape(scenario_draft, setup, target, draft_params)
    if draft is None:
        return 0.0
    model = PassModel(device, dtype_on(device, setup, ""), target, draft)
    return model.draft_step_s() * target_step_s / model.verify_s(1)
