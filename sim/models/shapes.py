"""Built-in table of common open decoder architectures, with their exact configs.

A scenario names its target (or draft) by one of these (``[target] model = "llama-3.1-8b"``) so
that the cost model prices the real geometry, never one guessed from a parameter count: the same
8 B parameters cost very differently as 32 layers x 4096 (Llama 3.1 8B) or as 114 layers x 2450
(SmolLM2's proportions scaled up). Each entry is the model's ``config.json`` (Hugging Face hub)
reduced to what a pass's cost depends on; the parameter count is computed from it and checked in
the tests against the published totals (Llama 3.1 8B: 8,030,261,248).

``DRAFTS`` lists the drafts usually paired with each family's targets (the family's smallest
member, sharing the tokenizer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracing.errors import SpecsimError


@dataclass(frozen=True)
class Arch:
    """One architecture's config fields (transformers names in comments)."""

    layers: int  # num_hidden_layers
    hidden: int  # hidden_size
    intermediate: int  # intermediate_size (gated MLP: 3 matrices)
    heads: int  # num_attention_heads
    kv_heads: int  # num_key_value_heads
    head_dim: int  # head_dim
    vocab: int  # vocab_size
    tied: bool  # tie_word_embeddings
    qkv_bias: bool = False  # Qwen2 / Qwen2.5
    qk_norm: bool = False  # Qwen3, Gemma 3
    norms_per_layer: int = 2  # Gemma 2/3: 4
    family: str = ""

    @property
    def n_params(self) -> int:
        """Parameters, counted as transformers does (embedding once when tied)."""
        return arch_params(self.layers, self.hidden, self.intermediate, self.heads,
                           self.kv_heads, self.head_dim, self.vocab, self.tied,
                           qkv_bias=self.qkv_bias, qk_norm=self.qk_norm,
                           norms_per_layer=self.norms_per_layer)

    def config(self) -> dict[str, Any]:
        """As a transformers config's fields."""
        return {"num_hidden_layers": self.layers, "hidden_size": self.hidden,
                "intermediate_size": self.intermediate, "num_attention_heads": self.heads,
                "num_key_value_heads": self.kv_heads, "head_dim": self.head_dim,
                "vocab_size": self.vocab, "tie_word_embeddings": self.tied}


def arch_params(layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int,
                head_dim: int, vocab: int, tied: bool, *, qkv_bias: bool = False,
                qk_norm: bool = False, norms_per_layer: int = 2) -> int:
    """Parameters of a Llama-style decoder (gated MLP, GQA attention, RMS norms)."""
    q, kv = heads * head_dim, kv_heads * head_dim
    attn = hidden * q + 2 * hidden * kv + q * hidden
    if qkv_bias:
        attn += q + 2 * kv
    if qk_norm:
        attn += 2 * head_dim
    layer = attn + 3 * hidden * intermediate + norms_per_layer * hidden
    embed = vocab * hidden
    return layers * layer + embed * (1 if tied else 2) + hidden


def _llama(layers: int, hidden: int, inter: int, heads: int, kv: int, hd: int, vocab: int,
           tied: bool) -> Arch:
    return Arch(layers, hidden, inter, heads, kv, hd, vocab, tied, family="llama")


def _qwen2(layers: int, hidden: int, inter: int, heads: int, kv: int, vocab: int,
           tied: bool) -> Arch:
    return Arch(layers, hidden, inter, heads, kv, hidden // heads, vocab, tied, qkv_bias=True,
                family="qwen2")


def _qwen3(layers: int, hidden: int, inter: int, heads: int, vocab: int, tied: bool) -> Arch:
    return Arch(layers, hidden, inter, heads, 8, 128, vocab, tied, qk_norm=True, family="qwen3")


def _gemma(layers: int, hidden: int, inter: int, heads: int, kv: int, hd: int, vocab: int,
           gen: int) -> Arch:
    return Arch(layers, hidden, inter, heads, kv, hd, vocab, True, qk_norm=gen == 3,
                norms_per_layer=4, family=f"gemma{gen}")


ARCHITECTURES: dict[str, Arch] = {
    # meta-llama/Llama-3.2-1B, -3B (tied), Llama-3.1-8B, -70B (Llama 3.3 70B: same shape)
    "llama-3.2-1b": _llama(16, 2048, 8192, 32, 8, 64, 128256, True),
    "llama-3.2-3b": _llama(28, 3072, 8192, 24, 8, 128, 128256, True),
    "llama-3.1-8b": _llama(32, 4096, 14336, 32, 8, 128, 128256, False),
    "llama-3.1-70b": _llama(80, 8192, 28672, 64, 8, 128, 128256, False),
    "llama-3.3-70b": _llama(80, 8192, 28672, 64, 8, 128, 128256, False),
    # Qwen/Qwen2.5-*
    "qwen2.5-0.5b": _qwen2(24, 896, 4864, 14, 2, 151936, True),
    "qwen2.5-1.5b": _qwen2(28, 1536, 8960, 12, 2, 151936, True),
    "qwen2.5-3b": _qwen2(36, 2048, 11008, 16, 2, 151936, True),
    "qwen2.5-7b": _qwen2(28, 3584, 18944, 28, 4, 152064, False),
    "qwen2.5-14b": _qwen2(48, 5120, 13824, 40, 8, 152064, False),
    "qwen2.5-32b": _qwen2(64, 5120, 27648, 40, 8, 152064, False),
    "qwen2.5-72b": _qwen2(80, 8192, 29568, 64, 8, 152064, False),
    # Qwen/Qwen3-* (dense; 8 KV heads of 128)
    "qwen3-0.6b": _qwen3(28, 1024, 3072, 16, 151936, True),
    "qwen3-1.7b": _qwen3(28, 2048, 6144, 16, 151936, True),
    "qwen3-4b": _qwen3(36, 2560, 9728, 32, 151936, True),
    "qwen3-8b": _qwen3(36, 4096, 12288, 32, 151936, False),
    "qwen3-14b": _qwen3(40, 5120, 17408, 40, 151936, False),
    "qwen3-32b": _qwen3(64, 5120, 25600, 64, 151936, False),
    # mistralai/Mistral-7B-v0.3
    "mistral-7b": _llama(32, 4096, 14336, 32, 8, 128, 32768, False),
    # google/gemma-2-*, gemma-3-* (text decoder; tied)
    "gemma-2-2b": _gemma(26, 2304, 9216, 8, 4, 256, 256000, 2),
    "gemma-2-9b": _gemma(42, 3584, 14336, 16, 8, 256, 256000, 2),
    "gemma-2-27b": _gemma(46, 4608, 36864, 32, 16, 128, 256000, 2),
    "gemma-3-1b": _gemma(26, 1152, 6912, 4, 1, 256, 262144, 3),
    "gemma-3-4b": _gemma(34, 2560, 10240, 8, 4, 256, 262208, 3),
    "gemma-3-12b": _gemma(48, 3840, 15360, 16, 8, 256, 262208, 3),
    "gemma-3-27b": _gemma(62, 5376, 21504, 32, 16, 128, 262208, 3),
    # microsoft/Phi-3-mini-4k-instruct, Phi-3-medium-4k-instruct
    "phi-3-mini": _llama(32, 3072, 8192, 32, 32, 96, 32064, False),
    "phi-3-medium": _llama(40, 5120, 17920, 40, 10, 128, 32064, False),
    # HuggingFaceTB/SmolLM2-* (the bundled target is the 135M)
    "smollm2-135m": _llama(30, 576, 1536, 9, 3, 64, 49152, True),
    "smollm2-360m": _llama(32, 960, 2560, 15, 5, 64, 49152, True),
    "smollm2-1.7b": _llama(24, 2048, 8192, 32, 32, 64, 49152, True),
}
ALIASES = {"smollm2": "smollm2-135m", "SmolLM2-135M-Instruct": "smollm2-135m",
           "llama-3-8b": "llama-3.1-8b", "llama-3-70b": "llama-3.1-70b",
           "mistral-7b-v0.3": "mistral-7b"}

# The drafts usually run with each target (same tokenizer, the family's small members).
DRAFTS: dict[str, tuple[str, ...]] = {
    "llama-3.1-8b": ("llama-3.2-1b",),
    "llama-3.1-70b": ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"),
    "llama-3.3-70b": ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"),
    "llama-3.2-3b": ("llama-3.2-1b",),
    **{f"qwen2.5-{s}": ("qwen2.5-0.5b", "qwen2.5-1.5b") for s in ("7b", "14b", "32b", "72b")},
    "qwen2.5-3b": ("qwen2.5-0.5b",),
    "qwen2.5-1.5b": ("qwen2.5-0.5b",),
    **{f"qwen3-{s}": ("qwen3-0.6b", "qwen3-1.7b") for s in ("4b", "8b", "14b", "32b")},
    "gemma-2-9b": ("gemma-2-2b",),
    "gemma-2-27b": ("gemma-2-2b",),
    **{f"gemma-3-{s}": ("gemma-3-1b",) for s in ("4b", "12b", "27b")},
    "phi-3-medium": ("phi-3-mini",),
    "smollm2-1.7b": ("smollm2-135m", "smollm2-360m"),
}


def canonical(name: str) -> str | None:
    """The table's key for ``name`` (case-insensitive, aliases), or None."""
    text = name.strip()
    text = ALIASES.get(text, text).lower()
    text = ALIASES.get(text, text)
    return text if text in ARCHITECTURES else None


def table_names() -> str:
    """The table's names, comma-separated (for messages)."""
    return ", ".join(ARCHITECTURES)


def lookup(name: str, where: str) -> Arch:
    """The architecture ``name`` names, or a SpecsimError listing the table."""
    key = canonical(name)
    if key is None:
        raise SpecsimError(f'{where}: model = "{name}": not in the built-in table '
                           f"(known: {table_names()}); give config = \"config.json\" or "
                           "layers/hidden/heads/kv_heads/head_dim/vocab instead")
    return ARCHITECTURES[key]
