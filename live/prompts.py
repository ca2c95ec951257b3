"""Prompts for capture: a JSONL file or a built-in set (``builtin:edit``, ``builtin:chat``).

A JSONL file holds one object per line with either a ``prompt`` string or a chat ``messages``
list (``[{"role": "user", "content": "..."}]``); blank lines are skipped, anything else is a
SpecsimError naming the file and line. Prompts are encoded through the tokenizer's chat template
with the generation prompt added.

The built-in sets are written for this project. ``edit`` is copy-heavy (rewrite, proofread or
summarise a given passage, so the answer repeats spans of the prompt: n-gram drafting shines);
``chat`` is open-ended (questions whose answers share little text with the prompt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError
from tracing.jsonl import json_lines

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class Prompt:
    """One chat prompt: its messages, and a short label for the trace."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs

    @classmethod
    def user(cls, text: str) -> Prompt:
        """A single user turn."""
        return cls((("user", text),))

    @property
    def text(self) -> str:
        """The prompt as plain text (the last user turn), for the trace's ``prompt_text``."""
        users = [content for role, content in self.messages if role == "user"]
        return users[-1] if users else self.messages[-1][1]

    def as_chat(self) -> list[dict[str, str]]:
        """The messages in the form ``apply_chat_template`` takes."""
        return [{"role": role, "content": content} for role, content in self.messages]


_PASSAGES = [
    "The old lighthouse stood at the edge of the cliff for more than a century. Every night the "
    "keeper climbed the narrow stairs, trimmed the wick and wound the clockwork that turned the "
    "lens. Ships passing through the strait relied on its beam to avoid the rocks below. When "
    "the light was finally automated, the keeper's cottage was turned into a small museum.",
    "Photosynthesis is the process by which green plants use sunlight to turn water and carbon "
    "dioxide into glucose and oxygen. It takes place mainly in the leaves, inside organelles "
    "called chloroplasts. The glucose feeds the plant and is stored as starch, while the oxygen "
    "is released into the air through small pores called stomata.",
    "Our team meeting is moved from Tuesday to Thursday at 10 am. Please bring your weekly "
    "status report and a list of any blockers. The meeting will be held in room 4B instead of "
    "the main conference room, which is being repainted. Lunch will be provided after the "
    "meeting for everyone who attends.",
    "To make a simple tomato sauce, heat two tablespoons of olive oil in a pan. Add one chopped "
    "onion and cook it until soft. Stir in two cloves of garlic, then add a can of crushed "
    "tomatoes, a pinch of salt and a few basil leaves. Let the sauce simmer for twenty minutes, "
    "stirring from time to time.",
    "The library will be closed on Monday for the public holiday. Books that are due on that "
    "day can be returned on Tuesday without a late fee. The reading room will reopen with "
    "longer hours, from 8 am to 9 pm, and the children's corner will host a story hour every "
    "Saturday morning.",
    "Water boils at 100 degrees Celsius at sea level, but at lower temperatures at high "
    "altitude, because the air pressure is lower. This is why cooking pasta in the mountains "
    "takes longer. Pressure cookers work the other way round: they raise the pressure so that "
    "water boils at a higher temperature and food cooks faster.",
    "The city council approved a plan to add new bicycle lanes on the main avenue. The lanes "
    "will be separated from car traffic by a low curb. Work will start in the spring and is "
    "expected to last four months. During construction, buses will follow a temporary route "
    "through the side streets.",
    "Honey bees live in colonies of tens of thousands of workers, a few hundred drones and a "
    "single queen. The workers collect nectar and pollen, build the wax comb and care for the "
    "young. The queen lays up to two thousand eggs a day. In winter the bees cluster together "
    "and shiver their wing muscles to keep the hive warm.",
]

_EDIT_TASKS = [
    "Fix any spelling and grammar mistakes in the following text and return the full corrected "
    "text:\n\n{p}",
    "Rewrite the following text in a more formal tone, keeping all the facts:\n\n{p}",
    "Repeat the following text exactly, then add one sentence at the end that summarises it:"
    "\n\n{p}",
    "Rewrite the following text so that every sentence starts on a new line:\n\n{p}",
]

_CHAT = [
    "What are three good habits for staying healthy while working from home?",
    "Explain why the sky is blue to a ten-year-old.",
    "Write a short poem about autumn leaves.",
    "What is the difference between a virus and a bacterium?",
    "Give me some ideas for a birthday party for a seven-year-old.",
    "How does a refrigerator keep food cold?",
    "What should I pack for a weekend hiking trip?",
    "Tell me a short story about a robot who learns to paint.",
    "Why do we have seasons on Earth?",
    "What are some tips for learning a new language as an adult?",
    "Describe how a bill becomes a law in a democracy, in simple terms.",
    "What are the pros and cons of electric cars?",
]


def _builtin_edit() -> list[Prompt]:
    prompts = []
    for i, passage in enumerate(_PASSAGES):
        for j in (0, 1):  # two tasks per passage, rotating through the four
            task = _EDIT_TASKS[(2 * i + j) % len(_EDIT_TASKS)]
            prompts.append(Prompt.user(task.format(p=passage)))
    return prompts


BUILTIN_SETS = {
    "edit": _builtin_edit,
    "chat": lambda: [Prompt.user(q) for q in _CHAT],
}


def _parse_line(obj: Any, where: str) -> Prompt:
    if not isinstance(obj, dict):
        raise SpecsimError(f"{where}: expected a JSON object with 'prompt' or 'messages'")
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"]:
            raise SpecsimError(f"{where}: 'prompt' must be a non-empty string")
        return Prompt.user(obj["prompt"])
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise SpecsimError(f"{where}: 'messages' must be a non-empty list")
        pairs = []
        for k, m in enumerate(msgs):
            ok = isinstance(m, dict) and isinstance(m.get("role"), str)
            if not ok or not isinstance(m.get("content"), str):
                raise SpecsimError(
                    f"{where}: messages[{k}] must be an object with string 'role' and 'content'"
                )
            pairs.append((m["role"], m["content"]))
        return Prompt(tuple(pairs))
    raise SpecsimError(f"{where}: expected a 'prompt' string or a 'messages' list")


def read_prompt_file(path: str | Path) -> list[Prompt]:
    """Prompts from a JSONL file; a bad line is a SpecsimError naming ``file:line``."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecsimError(f"cannot read prompts file {p}: {exc}") from exc
    prompts = [_parse_line(obj, f"{p}:{n}") for n, obj in json_lines(lines, str(p))]
    if not prompts:
        raise SpecsimError(f"{p}: no prompts in file")
    return prompts


def load_prompts(source: str, limit: int | None = None) -> list[Prompt]:
    """Prompts from ``builtin:NAME`` or a JSONL file, the first ``limit`` of them if given."""
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_SETS:
            known = ", ".join(BUILTIN_PREFIX + k for k in sorted(BUILTIN_SETS))
            raise SpecsimError(f"unknown prompt set '{source}' (known: {known})")
        prompts = BUILTIN_SETS[name]()
    else:
        prompts = read_prompt_file(source)
    if limit is not None:
        if limit < 1:
            raise SpecsimError(f"--limit must be >= 1, got {limit}")
        prompts = prompts[:limit]
    return prompts


def workload_name(source: str) -> str:
    """The workload label recorded in the trace: ``edit`` for ``builtin:edit``, else the file stem."""
    if source.startswith(BUILTIN_PREFIX):
        return source[len(BUILTIN_PREFIX):]
    return Path(source).stem


def encode_prompt(tokenizer: Any, prompt: Prompt) -> Any:
    """Token ids (a (1, n) long tensor) of ``prompt`` through the chat template.

    A tokenizer without a chat template gets the turns joined by newlines instead.
    """
    if getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template(
            prompt.as_chat(), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return enc["input_ids"]
    text = "\n".join(content for _, content in prompt.messages) + "\n"
    return tokenizer(text, return_tensors="pt")["input_ids"]
