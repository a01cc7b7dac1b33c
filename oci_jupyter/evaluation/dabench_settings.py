"""The settings of ``oci-eval dabench``: the product's defaults (what a sidebar request gets when
the user changed no setting), the run's protocol, and what the harness needs of the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from ..engine import GenerationParams, Message
from ..loop import Budgets
from .dabench_report import PROTOCOL_TEXT
from .models import Reply, generation_params

DABenchProtocol = Literal["format-asked", "rewrite"]
PROTOCOLS: tuple[DABenchProtocol, ...] = get_args(DABenchProtocol)
DEFAULT_PROTOCOL: DABenchProtocol = "format-asked"


@dataclass(frozen=True)
class ProductDefaults:
    """What a request from the sidebar gets when the user changed no setting."""

    budgets: Budgets
    read_results: bool
    reply_tokens: int
    time_limit: float


def product_defaults() -> ProductDefaults:
    """The server's defaults (``c.OCI.*``) and the chat ``ask``'s, read from the product."""
    from ..chat.protocol import Ask, LoopDefaults
    from ..config import OCI

    oci = OCI()
    defaults = LoopDefaults(**oci.loop_defaults())
    ask = Ask(type="ask", id="dabench", prompt="?")
    return ProductDefaults(
        budgets=ask.budgets(defaults),
        read_results=defaults.read_results,
        reply_tokens=int(oci.default_max_tokens),
        time_limit=float(ask.time_limit),
    )


@dataclass(frozen=True)
class DABenchSettings:
    protocol: DABenchProtocol = DEFAULT_PROTOCOL
    temperature: float = 0.0
    """Greedy, as the other ``oci-eval`` benchmarks (the sidebar samples at 0.2)."""
    max_tokens: int = 1024
    """Per reply, at most half the model's window (the chat's rule)."""
    time_limit: float = 60.0
    """Seconds for each run of the model's code."""
    budgets: Budgets = field(default_factory=Budgets)
    read_results: bool = True
    workers: int = 1
    seed: int = 0

    @classmethod
    def product(cls, **overrides: Any) -> DABenchSettings:
        """The product's defaults (:func:`product_defaults`), with ``overrides``."""
        defaults = product_defaults()
        base: dict[str, Any] = {
            "budgets": defaults.budgets,
            "read_results": defaults.read_results,
            "max_tokens": defaults.reply_tokens,
            "time_limit": defaults.time_limit,
        }
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    def params(self, reply_tokens: int) -> GenerationParams:
        return generation_params(reply_tokens, self.temperature, self.seed)

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records (and ``--resume`` keeps)."""
        return {
            "protocol": self.protocol,
            "protocol_text": PROTOCOL_TEXT[self.protocol],
            "mode": "chat",
            "budgets": {
                "attempts": self.budgets.attempts,
                "steps": self.budgets.steps,
                "replies": self.budgets.replies,
            },
            "read_results": self.read_results,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "time_limit": self.time_limit,
            "seed": self.seed,
            "workers": self.workers,
        }


class ChatModel(Protocol):
    """What the harness needs of the model: the chat's way of reading replies (``cut``), and
    its window and tokenizer for the prompt budget (:class:`~.models.EngineModel`,
    :class:`~.models.EndpointModel`)."""

    name: str
    context_length: int

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    async def reply(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        request_id: str,
        *,
        cut: bool = False,
    ) -> Reply: ...


__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "ChatModel",
    "DABenchProtocol",
    "DABenchSettings",
    "ProductDefaults",
    "product_defaults",
]
