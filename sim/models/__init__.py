"""The models a simulation charges and draws from: how deep into a draft the target accepts
(acceptance, by output position), and what each forward pass costs -- the latency model the
servers charge, the per-pass cost model of a decoder on a device, the device catalog, measured
device profiles, the costs a scenario's device resolves to (trace, profile or catalog, with a
band) and batched step costs. Calibration (sim.calibrate) fits them from a trace; the engine
only reads them.

Public names load their module on first use (no import at package import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracing.lazy import lazy_getattr

if TYPE_CHECKING:
    from sim.models.acceptance import (
        BLOCK,
        MAX_POSITIONS,
        MIN_REACHED,
        AcceptanceModel,
        Depths,
        HazardFit,
    )
    from sim.models.batching import Table, pass_s
    from sim.models.catalog import (
        CATALOG,
        Device,
        UnknownDevice,
        device_of,
        get_device,
        known,
        same_device,
    )
    from sim.models.costfit import against, anchor, fit_host, grid_points, summary
    from sim.models.costmodel import ModelShape, normalize_dtype, shape_of, table_shape
    from sim.models.deviceprofile import (
        PROFILE_FORMAT,
        DeviceProfile,
        from_dict,
        from_target_only,
        from_verify_profile,
        read_profile_file,
    )
    from sim.models.hardware import DeviceSetup, config_shape, draft_kind_of
    from sim.models.latency import (
        CostModel,
        draw_empirical,
        draw_speeds,
        hardware_note,
        resolve_costs,
    )
    from sim.models.memory import check
    from sim.models.positions import UNKNOWN, PositionRecord, fill_positions
    from sim.models.shapes import lookup, table_names

_EXPORTS = {
    "AcceptanceModel": "sim.models.acceptance",
    "BLOCK": "sim.models.acceptance",
    "CATALOG": "sim.models.catalog",
    "CostModel": "sim.models.latency",
    "Depths": "sim.models.acceptance",
    "Device": "sim.models.catalog",
    "DeviceProfile": "sim.models.deviceprofile",
    "DeviceSetup": "sim.models.hardware",
    "HazardFit": "sim.models.acceptance",
    "MAX_POSITIONS": "sim.models.acceptance",
    "MIN_REACHED": "sim.models.acceptance",
    "ModelShape": "sim.models.costmodel",
    "PROFILE_FORMAT": "sim.models.deviceprofile",
    "PositionRecord": "sim.models.positions",
    "Table": "sim.models.batching",
    "UNKNOWN": "sim.models.positions",
    "UnknownDevice": "sim.models.catalog",
    "against": "sim.models.costfit",
    "anchor": "sim.models.costfit",
    "check": "sim.models.memory",
    "config_shape": "sim.models.hardware",
    "device_of": "sim.models.catalog",
    "draft_kind_of": "sim.models.hardware",
    "draw_empirical": "sim.models.latency",
    "draw_speeds": "sim.models.latency",
    "fill_positions": "sim.models.positions",
    "fit_host": "sim.models.costfit",
    "from_dict": "sim.models.deviceprofile",
    "from_target_only": "sim.models.deviceprofile",
    "from_verify_profile": "sim.models.deviceprofile",
    "get_device": "sim.models.catalog",
    "grid_points": "sim.models.costfit",
    "hardware_note": "sim.models.latency",
    "known": "sim.models.catalog",
    "lookup": "sim.models.shapes",
    "normalize_dtype": "sim.models.costmodel",
    "pass_s": "sim.models.batching",
    "read_profile_file": "sim.models.deviceprofile",
    "resolve_costs": "sim.models.latency",
    "same_device": "sim.models.catalog",
    "shape_of": "sim.models.costmodel",
    "summary": "sim.models.costfit",
    "table_names": "sim.models.shapes",
    "table_shape": "sim.models.costmodel",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


__all__ = [
    "BLOCK",
    "CATALOG",
    "MAX_POSITIONS",
    "MIN_REACHED",
    "PROFILE_FORMAT",
    "UNKNOWN",
    "AcceptanceModel",
    "CostModel",
    "Depths",
    "Device",
    "DeviceProfile",
    "DeviceSetup",
    "HazardFit",
    "ModelShape",
    "PositionRecord",
    "Table",
    "UnknownDevice",
    "against",
    "anchor",
    "check",
    "config_shape",
    "device_of",
    "draft_kind_of",
    "draw_empirical",
    "draw_speeds",
    "fill_positions",
    "fit_host",
    "from_dict",
    "from_target_only",
    "from_verify_profile",
    "get_device",
    "grid_points",
    "hardware_note",
    "known",
    "lookup",
    "normalize_dtype",
    "pass_s",
    "read_profile_file",
    "resolve_costs",
    "same_device",
    "shape_of",
    "summary",
    "table_names",
    "table_shape",
]
