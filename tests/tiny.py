"""Tiny random Llama models for the live decoder's tests (torch is imported on call)."""

from __future__ import annotations

from typing import Any


def tiny_llama(seed: int | None = 0, vocab: int = 64, layers: int = 3, hidden: int = 32,
               heads: int = 4, kv_heads: int = 2, max_positions: int = 512) -> Any:
    """A seeded random Llama small enough to run thousands of times in a test (``seed=None``:
    whatever torch's generator holds)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, max_position_embeddings=max_positions,
                      tie_word_embeddings=False)
    return LlamaForCausalLM(cfg).eval()


def tiny_mistral(seed: int | None = 0, vocab: int = 64, layers: int = 2, hidden: int = 32,
                 window: int = 6) -> Any:
    """A seeded random Mistral whose every layer attends over a ``window``-token sliding window
    (small, so a test crosses it within a few cycles)."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    cfg = MistralConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                        sliding_window=window, max_position_embeddings=512,
                        tie_word_embeddings=False)
    return MistralForCausalLM(cfg).eval()
