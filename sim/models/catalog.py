"""Device catalog: datasheet figures of each accelerator, keyed by its exact identity.

A device is named three ways, and each is matched *exactly* (case and surrounding spaces aside),
never by substring -- "NVIDIA L40S" is not an L40, an L4 is neither, "NVIDIA H100 PCIe" is not
the SXM part and an A100 40GB is not the 80GB one:

* ``key``: the catalog's own name, e.g. ``"H100-SXM-80GB"`` (what ``[latency] hardware`` takes,
  as do the short ``aliases`` such as ``"H100"`` for the common SXM part);
* ``names``: the strings ``torch.cuda.get_device_name()`` returns for it (what a live capture
  writes into a trace's ``device``), e.g. ``"NVIDIA H100 80GB HBM3"``;
* a trace's ``device`` may carry a ``"cuda:0 "`` prefix; it is dropped before matching.

An unknown name is a :class:`UnknownDevice` error that lists what is known: a what-if on a guessed
device would print figures for hardware nobody asked about.

Figures are dense (no sparsity) datasheet peaks; ``bw_eff`` and ``flops_eff`` derate them to what
inference kernels reach (STREAM-like copies reach ~80-90% of HBM bandwidth, small-batch GEMMs
well under the tensor peak). The fixed per-pass cost of the software stack (kernel launches,
framework and Python time) is no datasheet figure: see :data:`CUDA_EAGER` and the measured CPU
entry below, and :mod:`sim.models.costmodel` for how the three parts add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tracing.errors import SpecsimError

# How far a catalog-only prediction (datasheet + cost model, no measurement of the device) can
# be off, as a factor: the worst ratio of predicted to measured median ms/token over the
# "other hardware" validation pairs (docs/validation.md, "Validation across devices": CPU edit/n-gram ->
# the H100 capture's same 8 prompts, 10.5 ms predicted against 28.0 measured), rounded up.
CATALOG_BAND = 2.7


class UnknownDevice(SpecsimError):
    """A device name the catalog does not know (the message lists the known ones)."""


@dataclass(frozen=True)
class FrameworkCost:
    """A software stack: the fixed host cost of one forward pass, and how its attention moves
    the KV cache through device memory.

    Host (launches, framework and Python): ``per_pass_s + per_layer_s * layers``, times
    ``1 + multi_token`` when a sequence scores more than one token in the pass (attention masks
    built, more logits kept and compared).

    Device memory traffic of attention, in multiples of the KV cache's bytes:

    * ``kv_reads_1``: on a pass scoring one token per sequence. transformers eager (its
      ``DynamicCache`` appends by ``torch.cat``: the cache is read and written again every
      layer, then read by SDPA, which takes grouped K/V as they are when no mask is given): 3.
      A paged engine reads the cache once: 1.
    * ``kv_reads_multi`` + ``kv_reads_per_group`` x (heads / kv_heads): on a multi-token pass.
      transformers eager builds a causal mask, and with a mask SDPA gets K/V repeated to every
      query head (``repeat_kv``: read once, written ``g`` times) and runs its math kernel, which
      upcasts them to fp32 (read ``g``, written and read again at twice the width: ``4g``):
      ``3 + 6g``. A paged engine: 1, 0.
    * ``score_bytes``: bytes moved per (head, scored token, attended token) of a multi-token
      pass: eager materialises the fp32 scores (written by the matmul, read and written by the
      softmax, read by the second matmul: 16). Fused kernels: 0.

    ``overlap``: how host time and device time add up, as a power mean
    ``(host^p + device^p)^(1/p)``: 1 where the host runs the kernels itself (CPU: they add),
    2 for an asynchronous GPU stream (the host queues the next launches while the device works,
    so the longer of the two dominates; p = 2 is what the H200 profiles support, p >= 3 fits
    them no better)."""

    per_pass_s: float
    per_layer_s: float
    multi_token: float = 0.0
    source: str = ""
    name: str = "eager"
    kv_reads_1: float = 3.0
    kv_reads_multi: float = 3.0
    kv_reads_per_group: float = 6.0
    score_bytes: float = 16.0
    overlap: float = 2.0

    def seconds(self, layers: int, multi_token: bool) -> float:
        """Fixed seconds of one pass of a ``layers``-deep model."""
        base = self.per_pass_s + self.per_layer_s * layers
        return base * (1.0 + self.multi_token) if multi_token else base

    def kv_reads(self, multi_token: bool, groups: float) -> float:
        """Multiples of the KV cache's bytes one pass moves (``groups``: heads / kv_heads)."""
        if not multi_token:
            return self.kv_reads_1
        return self.kv_reads_multi + self.kv_reads_per_group * groups

    def combine(self, host_s: float, device_s: float) -> float:
        """Pass seconds from host and device seconds (see ``overlap``)."""
        p = self.overlap
        if p == 1.0:
            return host_s + device_s
        return float((host_s ** p + device_s ** p) ** (1.0 / p))


# transformers eager on a CUDA device: one launch (and Python's dispatch) per op, ~40 ops per
# Llama layer, so a 135M model is launch-bound on any datacenter GPU. The *shape* (a pass costs
# 2.3 layers' worth beside the layers; a multi-token pass 23% more) is measured on a model with
# negligible compute (tests/bench/framework_shape.py, a 30-layer width-16 Llama on this project's
# CPU host); the *level* is fitted on ONE capture: the H100 chat target-only run
# (traces/live_gpu_chat_none.jsonl, median 1-token pass 20.7 ms). The edit captures and the chat
# layer-skip capture are not used to set it -- they validate it.
CUDA_EAGER = FrameworkCost(per_pass_s=1.47e-3, per_layer_s=0.638e-3, multi_token=0.23,
                           source="shape: tests/bench/framework_shape.py; level: "
                                  "traces/live_gpu_chat_none.jsonl (H100, chat)")
# The same stack on the H200 host, fitted (tests/bench/fit_eager.py) on ONE profile: the
# random-weight Llama-shaped 1.2B (traces/h200/profile_h200_random-llama-1b.json, all 112
# points); the bundled model's profile is kept aside to check it (README, "Real-size models on
# the H200"). Attention traffic as for every eager stack (above). One model depth cannot split
# the per-pass from the per-layer part: the fit puts it all per layer.
H200_EAGER = FrameworkCost(per_pass_s=0.0, per_layer_s=0.737e-3, multi_token=0.133,
                           source="tests/bench/fit_eager.py on "
                                  "profile_h200_random-llama-1b.json (H200)")
# A CUDA-graph engine (vLLM, SGLang, TensorRT-LLM): the decode step is one graph launch, the
# scheduler and sampler run in Python once per step, attention reads a paged cache once in
# fused kernels. NOT measured by this project (no engine run on a GPU here): the per-step host
# time is an assumption of the order engines report for small models, so predictions on this
# stack keep the wide CATALOG_BAND.
CUDA_GRAPH = FrameworkCost(per_pass_s=2.0e-3, per_layer_s=0.01e-3, multi_token=0.0,
                           source="assumed (not measured)", name="cuda-graph", kv_reads_1=1.0,
                           kv_reads_multi=1.0, kv_reads_per_group=0.0, score_bytes=0.0,
                           overlap=2.0)
# The same stack on the project's 2-core capture VM (CPU tensors, no launches): measured by
# tests/bench/framework_shape.py on this host, apart from the traces. The host runs the kernels
# itself (overlap 1: host and device time add) and torch's CPU attention fuses the expansion.
CPU_EAGER = FrameworkCost(per_pass_s=0.49e-3, per_layer_s=0.209e-3, multi_token=0.23,
                          source="tests/bench/framework_shape.py on the capture VM",
                          kv_reads_1=1.0, kv_reads_multi=1.0, kv_reads_per_group=0.0,
                          score_bytes=0.0, overlap=1.0)
STACKS = ("eager", "cuda-graph")
# The H200's band: the worst point, catalog-only, of the profile NOT fitted on (the bundled
# model's: 0.67x, i.e. a factor 1.49; fitted the other way round, the 1.2B's worst is 0.70x),
# rounded up (README, "Real-size models on the H200"). Its median (0.82x) is the two profiles'
# sessions running at different host speeds, which no catalog figure can know.
H200_BAND = 1.5


@dataclass(frozen=True)
class Device:
    """One device: identity, datasheet peaks, derating, the fixed cost of its usual stack."""

    key: str
    names: tuple[str, ...]  # exact torch.cuda.get_device_name() strings
    kind: str  # "cuda" | "rocm" | "cpu"
    mem_bw_gbps: float  # peak memory bandwidth, GB/s
    tflops: dict[str, float]  # dense peak by dtype (fp32, bf16, fp16, int8, int4), T(FL)OPS
    memory_gb: float
    aliases: tuple[str, ...] = ()
    bw_eff: float = 0.80  # reachable share of mem_bw_gbps
    flops_eff: float = 0.60  # reachable share of tflops in the GEMMs of a forward pass
    default_dtype: str = "bf16"
    framework: FrameworkCost = field(default=CUDA_EAGER)
    datasheet: str = ""
    band: float = CATALOG_BAND  # how far a catalog-only figure can be off (a factor)
    # The GPU-to-GPU interconnect tensor parallelism's all-reduces run over: its name, its
    # bandwidth per GPU in one direction (GB/s, datasheet) and the fixed latency of one small
    # all-reduce (a catalog assumption: see _NVLINK_LAT_S). 0 GB/s: none (a CPU): tp = 1 only.
    link: str = ""
    link_gbps: float = 0.0
    link_latency_s: float = 0.0

    def on_stack(self, stack: str) -> Device:
        """This device running ``stack`` ("eager": its own measured eager stack; "cuda-graph":
        :data:`CUDA_GRAPH`, with the wide band -- it is not measured here)."""
        if stack in ("", "eager"):
            return self
        if stack == "cuda-graph" and self.kind != "cpu":
            return replace(self, framework=CUDA_GRAPH, band=CATALOG_BAND)
        raise SpecsimError(f'stack "{stack}": unknown for {self.key} (known: '
                           + ", ".join(STACKS if self.kind != "cpu" else ("eager",)) + ")")

    def check_tp(self, tp: int, where: str) -> None:
        """Refuse ``tp`` GPUs of this device (``where``: the flag or key that asked)."""
        if tp < 1:
            raise SpecsimError(f"{where} {tp}: must be >= 1")
        if tp > 1 and self.link_gbps <= 0:
            raise SpecsimError(f"{where} {tp}: {self.key} is a {self.kind.upper()} device with "
                               "no GPU interconnect; tensor parallelism needs GPUs (use 1)")

    def allreduce_s(self, nbytes: float, tp: int) -> float:
        """Seconds of one ring all-reduce of ``nbytes`` over ``tp`` of these GPUs: the fixed
        latency plus ``2 (tp - 1) / tp`` of the bytes over one direction of the link (0 at
        tp = 1)."""
        if tp <= 1:
            return 0.0
        self.check_tp(tp, "tp")
        return self.link_latency_s + 2.0 * (tp - 1) / tp * nbytes / (self.link_gbps * 1e9)

    @property
    def eff_bw(self) -> float:
        """Effective bytes per second."""
        return self.mem_bw_gbps * 1e9 * self.bw_eff

    def eff_flops(self, dtype: str) -> float:
        """Effective operations per second in ``dtype`` (a dtype without its own peak -- int4 on
        a part without int4 tensor cores -- runs at the nearest wider one)."""
        for d in _WIDER.get(dtype, (dtype,)):
            if d in self.tflops:
                return self.tflops[d] * 1e12 * self.flops_eff
        raise UnknownDevice(f"{self.key}: no {dtype} throughput in the catalog")


_WIDER = {"int4": ("int4", "int8", "fp16", "bf16"), "int8": ("int8", "fp16", "bf16"),
          "fp16": ("fp16", "bf16"), "bf16": ("bf16", "fp16"), "fp32": ("fp32",)}


# Interconnects, per GPU, one direction (half the datasheets' bidirectional totals):
# NVLink 3 (A100 SXM: 600 GB/s total) 300 GB/s; NVLink 4 (H100 / H200 SXM: 900 GB/s) 450;
# NVLink 5 (B200: 1.8 TB/s) 900; PCIe Gen4 x16 (64 GB/s) 32 and Gen5 x16 (128 GB/s) 64 -- a card's
# NVLink bridge joins two cards only, so tp > 2 runs over PCIe and the catalog prices PCIe;
# AMD MI300X: 7 Infinity Fabric links of 128 GB/s (896 GB/s total) in an 8-GPU mesh, 448.
# Latency of one small all-reduce: NOT measured by this project; a catalog assumption of the
# order NCCL's own tuning model gives (src/graph/tuning.cc: ring low-latency protocol 6.6 us
# base + 0.6 us a hop on NVLink, 1.0 us on PCIe; discussed in NVIDIA/nccl#1334) and nccl-tests
# report (~6 us for 2 x H100 under CUDA graphs, NVIDIA/nccl#1259), rounded up for launches
# outside a graph. RCCL on Infinity Fabric: assumed between the two.
_NVLINK_LAT_S = 10e-6
_PCIE_LAT_S = 20e-6
_XGMI_LAT_S = 15e-6
NVLINK3 = ("NVLink 3", 300.0, _NVLINK_LAT_S)
NVLINK4 = ("NVLink 4", 450.0, _NVLINK_LAT_S)
NVLINK5 = ("NVLink 5", 900.0, _NVLINK_LAT_S)
PCIE4 = ("PCIe Gen4 x16", 32.0, _PCIE_LAT_S)
PCIE5 = ("PCIe Gen5 x16", 64.0, _PCIE_LAT_S)
XGMI_MI300X = ("Infinity Fabric (7 x 128 GB/s)", 448.0, _XGMI_LAT_S)


def _gpu(key: str, names: tuple[str, ...], bw: float, fp32: float, bf16: float, int8: float,
         memory: float, link: tuple[str, float, float], aliases: tuple[str, ...] = (),
         int4: float | None = None, kind: str = "cuda", sheet: str = "",
         framework: FrameworkCost = CUDA_EAGER, band: float = CATALOG_BAND) -> Device:
    tflops = {"fp32": fp32, "bf16": bf16, "fp16": bf16, "int8": int8}
    if int4:
        tflops["int4"] = int4
    name, gbps, latency = link
    return Device(key, names, kind, bw, tflops, memory, aliases, datasheet=sheet,
                  framework=framework, band=band, link=name, link_gbps=gbps,
                  link_latency_s=latency)


DEVICES: tuple[Device, ...] = (
    _gpu("A100-SXM-40GB", ("NVIDIA A100-SXM4-40GB",), 1555, 19.5, 312, 624, 40, NVLINK3,
         int4=1248, sheet="NVIDIA A100 datasheet (dense); NVLink 3 600 GB/s"),
    _gpu("A100-SXM-80GB", ("NVIDIA A100-SXM4-80GB",), 2039, 19.5, 312, 624, 80, NVLINK3,
         aliases=("A100",), int4=1248,
         sheet="NVIDIA A100 datasheet (dense); NVLink 3 600 GB/s"),
    _gpu("A100-PCIE-40GB", ("NVIDIA A100-PCIE-40GB",), 1555, 19.5, 312, 624, 40, PCIE4,
         int4=1248, sheet="NVIDIA A100 datasheet (dense); PCIe Gen4 64 GB/s"),
    _gpu("A100-PCIE-80GB", ("NVIDIA A100 80GB PCIe",), 1935, 19.5, 312, 624, 80, PCIE4,
         int4=1248, sheet="NVIDIA A100 datasheet (dense); PCIe Gen4 64 GB/s"),
    _gpu("H100-SXM-80GB", ("NVIDIA H100 80GB HBM3",), 3350, 67, 989, 1979, 80, NVLINK4,
         aliases=("H100",), sheet="NVIDIA H100 datasheet, SXM5 (dense); NVLink 900 GB/s"),
    _gpu("H100-PCIE-80GB", ("NVIDIA H100 PCIe",), 2000, 51, 756, 1513, 80, PCIE5,
         sheet="NVIDIA H100 datasheet, PCIe (dense); PCIe Gen5 128 GB/s"),
    _gpu("H100-NVL-94GB", ("NVIDIA H100 NVL",), 3900, 60, 835, 1670, 94, PCIE5,
         sheet="NVIDIA H100 datasheet, NVL (dense); PCIe Gen5 128 GB/s (its NVLink bridge "
               "joins two cards only)"),
    _gpu("H200-SXM-141GB", ("NVIDIA H200",), 4800, 67, 989, 1979, 141, NVLINK4,
         aliases=("H200",), sheet="NVIDIA H200 datasheet, SXM (dense); NVLink 900 GB/s",
         framework=H200_EAGER, band=H200_BAND),
    _gpu("B200-180GB", ("NVIDIA B200",), 8000, 80, 2250, 4500, 180, NVLINK5,
         aliases=("B200",),
         sheet="NVIDIA HGX B200 per-GPU figures (dense); NVLink 5 1.8 TB/s"),
    _gpu("L4-24GB", ("NVIDIA L4",), 300, 30.3, 121, 242.5, 24, PCIE4,
         aliases=("L4",), int4=485,
         sheet="NVIDIA L4 datasheet (dense); PCIe Gen4 x16 64 GB/s"),
    _gpu("L40-48GB", ("NVIDIA L40",), 864, 90.5, 181, 362, 48, PCIE4,
         aliases=("L40",), int4=724,
         sheet="NVIDIA L40 datasheet (dense); PCIe Gen4 x16 64 GB/s"),
    _gpu("L40S-48GB", ("NVIDIA L40S",), 864, 91.6, 362, 733, 48, PCIE4,
         aliases=("L40S",), int4=733,
         sheet="NVIDIA L40S datasheet (dense); PCIe Gen4 x16 64 GB/s"),
    _gpu("A10G-24GB", ("NVIDIA A10G",), 600, 31.2, 70, 140, 24, PCIE4,
         aliases=("A10G",), int4=280,
         sheet="AWS G5 (A10G) figures (dense); PCIe Gen4 x16 64 GB/s"),
    _gpu("MI300X-192GB", ("AMD Instinct MI300X", "AMD Instinct MI300X VF"), 5300, 163.4, 1307,
         2615, 192, XGMI_MI300X, aliases=("MI300X",), kind="rocm",
         sheet="AMD MI300X datasheet (dense); Infinity Fabric 896 GB/s"),
    # The project's capture machine: a 2-core VM, float32, measured (not a datasheet). The
    # framework shape is tests/bench/framework_shape.py's on it; bandwidth and flops are what
    # remains of a 1-token and a 17-token pass of SmolLM2-135M in the verify profile of a capture
    # apart from the demo traces (traces/validation/chat_none_target_only.jsonl: 56.9 ms and
    # 139 ms -> 10.7 GB/s, 35 GFLOPS). A CPU trace's device is just "cpu" (torch names no CPU
    # model), so this entry stands for that VM; another CPU is another entry, from its own
    # `specsim profile`. Its 1-token pass takes a matrix-vector path that 2..4-token passes do
    # not (they cost 1.5-2x more, which no roofline says): on its own device a CPU trace's
    # measured table is used, never this entry.
    Device("CPU-2CORE-VM", ("cpu",), "cpu", mem_bw_gbps=10.7,
           tflops={"fp32": 0.035, "bf16": 0.010}, memory_gb=8.0, aliases=("CPU",), bw_eff=1.0,
           flops_eff=1.0, default_dtype="fp32",
           framework=CPU_EAGER, datasheet="measured: tests/bench/framework_shape.py"),
)

CATALOG: dict[str, Device] = {d.key: d for d in DEVICES}
_BY_KEY: dict[str, Device] = {
    n.upper(): d for d in DEVICES for n in (d.key, *d.aliases)
}
_BY_NAME: dict[str, Device] = {n.upper(): d for d in DEVICES for n in d.names}


def known() -> str:
    """The catalog keys, comma-separated (for messages)."""
    return ", ".join(CATALOG)


def get_device(name: str) -> Device:
    """The device a scenario names (key, alias or exact device name), or :class:`UnknownDevice`."""
    text = name.strip().upper()
    found = _BY_KEY.get(text) or _BY_NAME.get(text)
    if found is None:
        raise UnknownDevice(f'unknown device "{name}" (known: {known()})')
    return found


def device_of(device: str) -> Device | None:
    """The entry a trace's ``device`` string names exactly (``"NVIDIA H100 80GB HBM3"``,
    ``"cuda:0 NVIDIA L40S"``, ``"cpu"``), or None -- never the nearest-sounding one."""
    text = device.strip()
    head, _, rest = text.partition(" ")
    if rest and (head.startswith("cuda") or head.startswith("rocm")):
        text = rest.strip()
    found = _BY_NAME.get(text.upper())
    if found is None:
        found = _BY_KEY.get(text.upper())
    return found


def require_device_of(device: str, where: str) -> Device:
    """:func:`device_of`, or an :class:`UnknownDevice` error naming ``where`` it came from."""
    found = device_of(device)
    if found is None:
        raise UnknownDevice(
            f'{where}: device "{device}" is not in the catalog (known: {known()}; '
            "add an entry with its exact torch.cuda.get_device_name() string, or give a "
            "[latency] profile of it)")
    return found


def same_device(a: str, b: str) -> bool:
    """True when two names (keys, aliases or device strings) are one catalog entry, or are the
    same text when the catalog knows neither."""
    da, db = device_of(a), device_of(b)
    if da is not None or db is not None:
        return da is db
    return a.strip().upper() == b.strip().upper()
