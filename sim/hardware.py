"""Hardware catalog and roofline rescaling of measured step costs to another device.

A forward pass of a dense model with ``N`` parameters scoring ``T`` tokens takes at least
``max(N * bytes_per_param / mem_bw, 2 * N * T / flops)``: it reads the weights once and does two
flops per parameter per token. Decode steps sit on the memory side, long prefills and large
verify batches on the compute side; the crossover is the *ridge*, ``flops * bytes / (2 * mem_bw)``
tokens per pass -- a property of the device, the same for the draft and the target model.
Figures are datasheet numbers (dense bf16, no sparsity); real kernels reach a fraction of them,
which rescaling a measured trace keeps (only ratios of devices are applied).
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_PARAM = 2.0  # bf16 weights


@dataclass(frozen=True)
class HardwareSpec:
    """One device from its datasheet."""

    name: str
    mem_bw_gbps: float  # HBM / DRAM bandwidth, GB/s
    bf16_tflops: float  # dense bf16 tensor throughput, TFLOPS
    memory_gb: float

    @property
    def ridge_tokens(self) -> float:
        """Tokens per pass where flops time equals weight-read time (bf16 weights)."""
        return self.bf16_tflops * 1e12 * BYTES_PER_PARAM / (2.0 * self.mem_bw_gbps * 1e9)

    def step_s(self, n_params: float, tokens: float = 1.0) -> float:
        """Roofline seconds of one forward pass of an ``n_params`` model scoring ``tokens``."""
        weights_s = n_params * BYTES_PER_PARAM / (self.mem_bw_gbps * 1e9)
        flops_s = 2.0 * n_params * tokens / (self.bf16_tflops * 1e12)
        return max(weights_s, flops_s)


CATALOG: dict[str, HardwareSpec] = {
    spec.name: spec
    for spec in (
        HardwareSpec("A100", mem_bw_gbps=2039.0, bf16_tflops=312.0, memory_gb=80.0),
        HardwareSpec("H100", mem_bw_gbps=3350.0, bf16_tflops=989.0, memory_gb=80.0),
        HardwareSpec("H200", mem_bw_gbps=4800.0, bf16_tflops=989.0, memory_gb=141.0),
        HardwareSpec("L4", mem_bw_gbps=300.0, bf16_tflops=121.0, memory_gb=24.0),
        # A two-socket server CPU with AMX-class bf16 units; nominal, order-of-magnitude.
        HardwareSpec("CPU", mem_bw_gbps=100.0, bf16_tflops=2.0, memory_gb=512.0),
    )
}


def get_hardware(name: str) -> HardwareSpec:
    """Catalog lookup, case-insensitive (the scenario validated the name)."""
    return CATALOG[name.upper()]


def hardware_of_device(device: str) -> HardwareSpec | None:
    """The catalog entry a trace's ``device`` string names (``"cuda:0 NVIDIA H100 80GB"``,
    ``"cpu"``), or None when it names none."""
    text = device.upper()
    # Longest names first so that "H100" is not mistaken for something shorter it contains.
    for name in sorted(CATALOG, key=len, reverse=True):
        if name in text:
            return CATALOG[name]
    return None


@dataclass(frozen=True)
class Rescale:
    """Multipliers taking costs measured on ``source`` to ``target``."""

    source: HardwareSpec
    target: HardwareSpec

    @property
    def memory(self) -> float:
        """For memory-bound costs: decode steps, draft steps, KV reads."""
        return self.source.mem_bw_gbps / self.target.mem_bw_gbps

    @property
    def compute(self) -> float:
        """For compute-bound costs: prefill per token, extra tokens scored in a verify pass."""
        return self.source.bf16_tflops / self.target.bf16_tflops
