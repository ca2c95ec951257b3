"""live.prompts: JSONL parsing and its errors, the built-in sets, chat-template encoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from live.prompts import (
    BUILTIN_SETS,
    Prompt,
    encode_prompt,
    load_prompts,
    read_prompt_file,
    workload_name,
)
from tracing.errors import SpecsimError


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_file_with_prompts_and_messages(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.jsonl", [
        json.dumps({"prompt": "Say hi."}),
        "",
        json.dumps({"messages": [{"role": "system", "content": "Be terse."},
                                 {"role": "user", "content": "Why?"}]}),
    ])
    prompts = read_prompt_file(f)
    assert prompts == [
        Prompt((("user", "Say hi."),)),
        Prompt((("system", "Be terse."), ("user", "Why?"))),
    ]
    assert prompts[1].text == "Why?"
    assert prompts[1].as_chat()[0] == {"role": "system", "content": "Be terse."}


@pytest.mark.parametrize(("line", "message"), [
    ("{oops", r"p.jsonl:2: not valid JSON"),
    ("[1, 2]", r"p.jsonl:2: expected a JSON object"),
    ('{"text": "x"}', r"p.jsonl:2: expected a 'prompt' string or a 'messages' list"),
    ('{"prompt": 3}', r"p.jsonl:2: 'prompt' must be a non-empty string"),
    ('{"prompt": ""}', r"p.jsonl:2: 'prompt' must be a non-empty string"),
    ('{"messages": []}', r"p.jsonl:2: 'messages' must be a non-empty list"),
    ('{"messages": [{"role": "user"}]}', r"p.jsonl:2: messages\[0\] must be an object"),
])
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    f = _write(tmp_path / "p.jsonl", [json.dumps({"prompt": "ok"}), line])
    with pytest.raises(SpecsimError, match=message):
        read_prompt_file(f)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(SpecsimError, match="cannot read prompts file"):
        read_prompt_file(tmp_path / "absent.jsonl")
    with pytest.raises(SpecsimError, match="no prompts"):
        read_prompt_file(_write(tmp_path / "empty.jsonl", ["", "  "]))


def test_builtin_sets_sizes_and_limit() -> None:
    edit, chat = load_prompts("builtin:edit"), load_prompts("builtin:chat")
    assert 8 <= len(edit) <= 16 and 8 <= len(chat) <= 16
    assert len(set(edit)) == len(edit) and len(set(chat)) == len(chat)
    assert load_prompts("builtin:chat", limit=3) == chat[:3]
    assert set(BUILTIN_SETS) >= {"edit", "chat"}
    with pytest.raises(SpecsimError, match=r"unknown prompt set 'builtin:nope' \(known: "):
        load_prompts("builtin:nope")
    with pytest.raises(SpecsimError, match="--limit"):
        load_prompts("builtin:chat", limit=0)


def test_edit_set_is_copy_heavy_and_chat_is_not() -> None:
    # Every edit prompt carries a passage of several sentences to copy from; chat prompts are
    # short questions.
    assert all(p.text.count(". ") >= 2 and len(p.text) > 300 for p in load_prompts("builtin:edit"))
    assert all(len(p.text) < 120 for p in load_prompts("builtin:chat"))


def test_workload_name() -> None:
    assert workload_name("builtin:edit") == "edit"
    assert workload_name("/x/y/my_prompts.jsonl") == "my_prompts"


class _Tok:
    """A stand-in tokenizer recording what it was asked to encode."""

    def __init__(self, template: str | None) -> None:
        self.chat_template = template
        self.calls: list[tuple[object, dict[str, object]]] = []

    def apply_chat_template(self, messages: object, **kw: object) -> dict[str, object]:
        self.calls.append((messages, kw))
        return {"input_ids": "templated"}

    def __call__(self, text: str, **kw: object) -> dict[str, object]:
        self.calls.append((text, kw))
        return {"input_ids": "plain"}


def test_encode_applies_chat_template_with_generation_prompt() -> None:
    tok = _Tok("{{ messages }}")
    p = Prompt((("system", "S"), ("user", "U")))
    assert encode_prompt(tok, p) == "templated"
    messages, kw = tok.calls[0]
    assert messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert kw["add_generation_prompt"] is True and kw["return_tensors"] == "pt"


def test_encode_without_template_joins_turns() -> None:
    tok = _Tok(None)
    assert encode_prompt(tok, Prompt((("system", "S"), ("user", "U")))) == "plain"
    assert tok.calls[0][0] == "S\nU\n"


def test_encode_with_a_real_template(tmp_path: Path) -> None:
    from test_models import save_tiny_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(save_tiny_model(tmp_path / "m"))
    ids = encode_prompt(tok, Prompt.user("the quick brown fox"))
    assert ids.shape[0] == 1
    text = tok.decode(ids[0])
    assert text.startswith("<|im_start|>user\nthe quick brown fox<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")
