"""live.models: loading local, cached and missing models; tokenizer checks; CLI exit codes.

``save_tiny_model`` (also used by test_capture.py) builds a random 2-layer Llama with a small
byte-level BPE tokenizer trained here, so no test needs a download or the bundled model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from live.models import LoadedModel, check_tokenizers, default_device_dtype, load_model
from tracing.errors import SpecsimError

ROOT = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "fix the spelling in the following text and return the corrected text",
    "what are three good habits for staying healthy while working from home",
    "photosynthesis turns water and carbon dioxide into glucose and oxygen",
]


def save_tiny_model(path: Path, *, vocab: int = 300, layers: int = 2, seed: int = 0,
                    extra_tokens: tuple[str, ...] = ()) -> Path:
    """Save a random tiny Llama + its BPE tokenizer (with a chat template) under ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *extra_tokens]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                  bos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=1024, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_tiny_model_loads_from_a_local_path(tiny_dir: Path) -> None:
    m = load_model(str(tiny_dir), device="cpu")
    assert isinstance(m, LoadedModel)
    assert m.name == str(tiny_dir)
    assert (m.device, m.dtype, m.device_name) == ("cpu", "float32", "cpu")
    assert m.n_params == sum(p.numel() for p in m.model.parameters()) > 0
    assert not m.model.training
    assert m.model.config.num_hidden_layers == 2


def test_dtype_override(tiny_dir: Path) -> None:
    import torch

    m = load_model(str(tiny_dir), device="cpu", dtype="bfloat16")
    assert m.dtype == "bfloat16"
    assert next(m.model.parameters()).dtype == torch.bfloat16


def test_default_device_and_bad_dtype() -> None:
    import torch

    device, dtype = default_device_dtype(None, None)
    assert (device, dtype) == (("cuda", "bfloat16") if torch.cuda.is_available()
                               else ("cpu", "float32"))
    with pytest.raises(SpecsimError, match="dtype 'floaty'"):
        default_device_dtype("cpu", "floaty")


def test_missing_model_is_a_specsim_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(SpecsimError, match=r"model 'no-org/no-such-model' not found: not a local "
                                           r"path and not in the local cache"):
        load_model("no-org/no-such-model", device="cpu")


def test_broken_local_dir_is_a_specsim_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SpecsimError, match="could not be loaded"):
        load_model(str(tmp_path), device="cpu")


def test_same_tokenizer_passes(tiny_dir: Path, tmp_path: Path) -> None:
    other = save_tiny_model(tmp_path / "other", layers=1, seed=1)
    check_tokenizers(load_model(str(tiny_dir), device="cpu"), load_model(str(other), device="cpu"))


def test_different_vocab_size_refused(tiny_dir: Path, tmp_path: Path) -> None:
    other = save_tiny_model(tmp_path / "other", vocab=280)
    a, b = load_model(str(tiny_dir), device="cpu"), load_model(str(other), device="cpu")
    with pytest.raises(SpecsimError, match=r"draft '.*other' has a different tokenizer from "
                                           r"target '.*tiny.*' \(vocab size 280 vs 300\)"):
        check_tokenizers(a, b)


def test_same_size_different_ids_refused(tiny_dir: Path, tmp_path: Path) -> None:
    # One more special token at the front shifts every id while keeping the size.
    other = save_tiny_model(tmp_path / "other", extra_tokens=("<|x|>",))
    a, b = load_model(str(tiny_dir), device="cpu"), load_model(str(other), device="cpu")
    assert len(a.tokenizer) == len(b.tokenizer)
    with pytest.raises(SpecsimError, match=r"different tokenizer.*is id"):
        check_tokenizers(a, b)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cli_missing_model_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = _cli("capture", "--target", str(tmp_path / "nowhere"), "--draft", "none",
                "--out", str(tmp_path / "t.jsonl"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "not found: not a local path and not in the local cache" in lines[0]
    assert not (tmp_path / "t.jsonl").exists()


def test_cli_mismatched_draft_exits_2(tiny_dir: Path, tmp_path: Path) -> None:
    other = save_tiny_model(tmp_path / "other", vocab=280)
    proc = _cli("capture", "--target", str(tiny_dir), "--draft", str(other), "--limit", "1",
                "--max-new-tokens", "4", "--out", str(tmp_path / "t.jsonl"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "different tokenizer" in lines[0]


def test_importing_live_does_not_import_torch() -> None:
    code = "import sys, live, live.cli; assert 'torch' not in sys.modules; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr
