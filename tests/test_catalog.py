"""Device catalog: exact identity, never a substring guess."""

from __future__ import annotations

import pytest

from sim.models.catalog import (
    CATALOG,
    DEVICES,
    UnknownDevice,
    device_of,
    get_device,
    require_device_of,
    same_device,
)
from tracing.errors import SpecsimError


@pytest.mark.parametrize(("name", "key"), [
    ("NVIDIA H100 80GB HBM3", "H100-SXM-80GB"),
    ("NVIDIA H100 PCIe", "H100-PCIE-80GB"),
    ("NVIDIA H100 NVL", "H100-NVL-94GB"),
    ("NVIDIA H200", "H200-SXM-141GB"),
    ("NVIDIA B200", "B200-180GB"),
    ("NVIDIA L4", "L4-24GB"),
    ("NVIDIA L40", "L40-48GB"),
    ("NVIDIA L40S", "L40S-48GB"),
    ("NVIDIA A10G", "A10G-24GB"),
    ("NVIDIA A100-SXM4-40GB", "A100-SXM-40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100-SXM-80GB"),
    ("NVIDIA A100-PCIE-40GB", "A100-PCIE-40GB"),
    ("NVIDIA A100 80GB PCIe", "A100-PCIE-80GB"),
    ("AMD Instinct MI300X", "MI300X-192GB"),
    ("cpu", "CPU-2CORE-VM"),
    ("cuda:0 NVIDIA L40S", "L40S-48GB"),
    ("  nvidia l40s ", "L40S-48GB"),
])
def test_device_strings_match_exactly_one_entry(name: str, key: str) -> None:
    found = device_of(name)
    assert found is not None and found.key == key


def test_look_alike_names_are_different_devices() -> None:
    l4, l40, l40s = (device_of(n) for n in ("NVIDIA L4", "NVIDIA L40", "NVIDIA L40S"))
    assert len({id(l4), id(l40), id(l40s)}) == 3
    assert l4 is not None and l40 is not None and l40s is not None
    assert l4.mem_bw_gbps < l40.mem_bw_gbps == l40s.mem_bw_gbps
    assert l40s.tflops["bf16"] > l40.tflops["bf16"]  # L40S doubles L40's tensor rate
    sxm, pcie = device_of("NVIDIA H100 80GB HBM3"), device_of("NVIDIA H100 PCIe")
    assert sxm is not None and pcie is not None and sxm.mem_bw_gbps > pcie.mem_bw_gbps
    a40, a80 = device_of("NVIDIA A100-SXM4-40GB"), device_of("NVIDIA A100-SXM4-80GB")
    assert a40 is not None and a80 is not None
    assert (a40.memory_gb, a80.memory_gb) == (40, 80) and a40.mem_bw_gbps < a80.mem_bw_gbps


@pytest.mark.parametrize("name", ["NVIDIA L40S-X", "NVIDIA H100", "H100 80GB", "NVIDIA L",
                                  "NVIDIA GeForce RTX 4090", "mps", "", "A100-SXM4"])
def test_unknown_or_partial_names_are_not_guessed(name: str) -> None:
    assert device_of(name) is None
    with pytest.raises(UnknownDevice, match="not in the catalog") as err:
        require_device_of(name, "trace.jsonl")
    assert "trace.jsonl" in str(err.value) and "H100-SXM-80GB" in str(err.value)


def test_scenario_names_take_keys_aliases_and_device_strings() -> None:
    assert get_device("h100") is CATALOG["H100-SXM-80GB"]
    assert get_device("H100-PCIE-80GB").names == ("NVIDIA H100 PCIe",)
    assert get_device("NVIDIA L40S") is CATALOG["L40S-48GB"]
    with pytest.raises(SpecsimError, match='unknown device "H100X"'):
        get_device("H100X")


def test_every_identity_is_unique() -> None:
    names = [n.upper() for d in DEVICES for n in d.names]
    keys = [n.upper() for d in DEVICES for n in (d.key, *d.aliases)]
    assert len(names) == len(set(names)) and len(keys) == len(set(keys))
    for d in DEVICES:
        assert d.mem_bw_gbps > 0 and d.tflops["bf16"] > 0 and 0 < d.bw_eff <= 1


def test_same_device() -> None:
    assert same_device("H100", "NVIDIA H100 80GB HBM3")
    assert not same_device("H100", "NVIDIA H100 PCIe")
    assert same_device("cpu", "CPU")
    assert same_device("mystery", "MYSTERY") and not same_device("mystery", "other")


def test_int4_falls_back_to_the_nearest_wider_rate() -> None:
    h100 = CATALOG["H100-SXM-80GB"]  # no int4 tensor cores listed
    assert h100.eff_flops("int4") == h100.eff_flops("int8")
    assert CATALOG["L4-24GB"].eff_flops("int4") > CATALOG["L4-24GB"].eff_flops("int8")
