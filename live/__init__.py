"""The live decoder: real models, drafts, speculative decoding and trace capture.

Importing ``live`` never imports torch or transformers; the names below load their module on
first use (``from live import load_model``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LoadedModel": "live.models",
    "load_model": "live.models",
    "check_tokenizers": "live.models",
    "Prompt": "live.prompts",
    "load_prompts": "live.prompts",
    "encode_prompt": "live.prompts",
    "CaptureConfig": "live.capture",
    "capture": "live.capture",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'live' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
