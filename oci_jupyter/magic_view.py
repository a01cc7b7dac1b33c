"""What ``%%oci`` shows in its cell: each model reply streamed into a display, the heading
that says which step and attempt a reply's code is for, and the summary line at the end."""

from __future__ import annotations

import time

from IPython.display import Markdown, display

from .loop import Finished, LoopMode
from .safe_markdown import safe_markdown

UPDATES_PER_SECOND = 10
BUDGET_NAMES = {"attempts": "attempt", "steps": "step", "replies": "reply"}


def heading(step: int, attempt: int) -> str:
    """The heading of a reply whose code is for this step and attempt: "oci · step 2",
    "oci · attempt 2", "oci · step 2 · attempt 3"; none for the first try of the first step."""
    parts = ([f"step {step}"] if step > 1 else []) + ([f"attempt {attempt}"] if attempt > 1 else [])
    return "oci · " + " · ".join(parts) if parts else ""


def summary_line(result: Finished, mode: LoopMode, no_exec: bool = False) -> str:
    """The line above the answer, e.g. "✅ **oci: answered after 2 steps, 3 replies.**", with
    why the loop stopped when it did not end as it should (a budget that ran out, an error)."""
    if no_exec and result.status == "cancelled" and result.final_code is not None:
        written = "change" if mode == "edit" else "code"
        return f"📝 **oci: {written} written, not run (--no-exec).**"
    icon = {"success": "✅", "no_code": "💬", "cancelled": "⏹"}.get(result.status, "❌")
    text = result.summary()
    if mode in ("fix", "edit") and result.status == "success":
        done = "fixed" if mode == "fix" else "changed"
        text = done + text[text.index(" after ") :]
    line = f"{icon} **oci: {text}.**"
    if result.message and (result.budget or result.status not in ("success", "no_code")):
        line += f" {result.message}"
    if result.budget:
        budget = f"{BUDGET_NAMES[result.budget]} budget"
        if budget not in result.message:
            line += f" (the {budget} ran out)"
    return line


STEPS_MIME = "application/vnd.oci.steps+json"
"""An output naming each step's code apart, for the front end to insert one cell per step."""


def inserted_cell(codes: list[str]) -> str:
    """The code to put in a new cell: one step's as it is; several steps' one after the other,
    each under a comment (the frontend inserts one cell per execute reply, see --insert)."""
    if len(codes) == 1:
        return codes[0]
    return "\n".join(f"# oci · step {n}\n{code.rstrip()}\n" for n, code in enumerate(codes, 1))


class ReplyView:
    """One model reply, streamed into a display of the cell's output."""

    def __init__(self, quiet: bool) -> None:
        self.heading = ""
        self.text = ""
        self._handle = None if quiet else display(Markdown("…"), display_id=True)
        self._shown = 0.0

    def stream(self, text: str, guess: str) -> None:
        self.text = text
        # A heading says which cell the code is for: guessed while the code block opens.
        if "```" in text:
            self.heading = guess
        now = time.monotonic()
        if self._handle is not None and now - self._shown > 1 / UPDATES_PER_SECOND:
            self._handle.update(Markdown(self._markdown(safe_markdown(self.text) + " ▌")))
            self._shown = now

    def waiting(self, ahead: int) -> None:
        """The request waits for the model (other requests go first)."""
        if self._handle is not None and not self.text:
            plural = "request" if ahead == 1 else "requests"
            self._handle.update(
                Markdown(f"*waiting for the model: {ahead} {plural} ahead…*" if ahead else "…")
            )

    def show(self, new_heading: str | None = None) -> None:
        if new_heading is not None:
            self.heading = new_heading
        if self._handle is not None:
            shown = safe_markdown(self.text) or "*(empty reply)*"
            self._handle.update(Markdown(self._markdown(shown)))

    def replace(self, markdown: str) -> bool:
        """Show something else in this reply's place (the summary above the answer)."""
        if self._handle is None:
            return False
        self._handle.update(Markdown(markdown))
        return True

    def _markdown(self, text: str) -> str:
        return f"**{self.heading}**\n\n{text}" if self.heading else text
