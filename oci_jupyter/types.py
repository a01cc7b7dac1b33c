"""The types every part of oci_jupyter shares: a leaf module that imports nothing of the
project, so that the loop, the prompts, the engines and the drivers can all use it without
importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Message = dict[str, str]
"""One chat message, already normalised to ``{"role": ..., "content": <text>}``."""


Priority = Literal["interactive", "background"]

PRIORITY_HEADER = "X-OCI-Priority"
"""``interactive``: a person waits for this request (``%%oci`` sends it); anything else, or
none, is a program (an OpenAI client, oci-eval), served after the people. The ``openai``
engine sends each request's priority on, so a shared oci_jupyter model server ranks a hub
user's chat before a program too."""


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 1024
    temperature: float = 0.2
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None
    priority: Priority = "interactive"
    """Who waits for the reply: a person in the chat, a fix or ``%%oci`` (``interactive``), or
    a program through the OpenAI endpoint or ``oci-eval`` (``background``). An engine that
    queues requests serves interactive ones first."""


OutcomeStatus = Literal["ok", "error", "timeout", "cancelled"]


@dataclass(frozen=True)
class ExecutionOutcome:
    """What happened when code ran. ``cancelled`` means the run was interrupted."""

    status: OutcomeStatus
    output: str = ""
    ename: str = ""
    evalue: str = ""
    traceback: str = ""
    seconds: float = 0.0
    time_limit: float | None = None
    source: str | None = None
    """The code that actually ran, when the surface knows it (the chat's browser reports it:
    the user may edit the cell before running it); None: the code that was asked for."""
    values: tuple[tuple[str, str], ...] = ()
    """After a run that succeeded and printed nothing: ``(name, short repr)`` of the names the
    code assigned, looked up in the kernel (see :mod:`oci_jupyter.prompts.values`)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> str:
        if self.status == "ok":
            return "ok"
        if self.status == "error":
            return f"{self.ename}: {self.evalue}" if self.evalue else self.ename
        return self.status
