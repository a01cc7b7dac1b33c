"""The first-turn prompts of ``oci-eval --prompt``.

- ``product`` (the default): the product's own system prompt and our task request (what a
  notebook user's model gets, plus a request for the complete function).
- ``paper``: the OpenCodeInterpreter paper harness's first turn, word for word: no system
  message, one user turn holding its instruction with the problem (the wording is in
  :data:`.humaneval.PAPER_REQUEST` and :data:`.mbpp.PAPER_REQUEST`, each citing its source).
  With no system message the model's own chat template decides what stands in for one, as
  ``tokenizer.apply_chat_template`` did in the paper's harness.

Either way the problem's hidden tests are never in a prompt. Only the first turn changes: the
turns after it are those of ``--feedback`` (and of the product's loop).
"""

from __future__ import annotations

from typing import Literal, get_args

from ..engine import Message

PromptChoice = Literal["product", "paper"]
PROMPTS: tuple[PromptChoice, ...] = get_args(PromptChoice)
DEFAULT_PROMPT: PromptChoice = "product"
"""The default, and the prompt of runs recorded before there was a choice."""

PROMPT_TEXT: dict[str, str] = {
    "product": "the product's system prompt (oci_jupyter.prompts.SYSTEM_PROMPT) and our task "
    "request (the complete function in one python block; a few self-tests allowed)",
    "paper": "the OpenCodeInterpreter paper harness's first turn, word for word: no system "
    "message, one user turn with its instruction and the problem (evaluation/evaluate/ of "
    "its repository)",
}
SYSTEM_PROMPT_TEXT: dict[str, str] = {
    "product": "oci_jupyter.prompts.SYSTEM_PROMPT (the product's own)",
    "paper": "none (as the paper's harness; the model's chat template may add its default)",
}
"""What ``run.json`` says of the system prompt under each choice."""


def check_prompt(prompt: str) -> PromptChoice:
    """``prompt`` if it is a known choice (a typo must not silently run another protocol)."""
    for choice in PROMPTS:
        if prompt == choice:
            return choice
    raise ValueError(f"unknown prompt {prompt!r}: one of {', '.join(PROMPTS)}")


def product_messages(system: str, request: str) -> list[Message]:
    """``--prompt product``'s first turn: the product's system prompt (with the kernel's
    language, as the chat gives it), then ``request``."""
    return [
        {"role": "system", "content": f"{system}\nThe kernel's language: python."},
        {"role": "user", "content": request},
    ]


__all__ = [
    "DEFAULT_PROMPT",
    "PROMPTS",
    "PROMPT_TEXT",
    "SYSTEM_PROMPT_TEXT",
    "PromptChoice",
    "check_prompt",
    "product_messages",
]


# The paper harness's first turn opens and closes the same way for every benchmark
# (``build_humaneval_instruction`` / ``build_mbpp_instruction``): each benchmark's
# PAPER_REQUEST puts its own instruction between these two.
PAPER_OPENING = (
    "You are an exceptionally intelligent coding assistant that consistently delivers "
    "accurate and reliable responses to user instructions.\n"
    "\n"
    "@@ Instruction\n"
)
PAPER_CLOSING = (
    "Please return all completed codes in one code block. \n"
    "This code block should be in the following format:\n"
    "```python\n"
    "# Your codes here\n"
    "```\n"
    "\n"
    "@@ Response"
)
