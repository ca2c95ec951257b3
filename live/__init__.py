"""The live decoder: real models, drafts, speculative decoding and trace capture.

Importing ``live`` never imports torch or transformers; the names below load their module on
first use (``from live import load_model``).
"""

from __future__ import annotations

from tracing.lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
