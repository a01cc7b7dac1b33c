"""``--first-turn-from RUN_DIR``: turn 1 replayed from an earlier run, so protocols are paired.

Under greedy decoding the first turn of a problem is the same conversation whatever the
feedback protocol: the same messages to the same model give the same reply. Generating it again
for every protocol costs most of each run on a CPU, and re-generating it can only add noise
(llama.cpp's numerics vary a little with threads and builds). A paired run takes the source
run's turn-1 replies and generates only the feedback turns, so that two runs differ in their
feedback alone.

A reply is replayed only when it is the reply this run would have asked for:

- the source's run.json agrees on what makes a reply the same (:data:`SAME_REPLY`): the model,
  its file's name, ``max_tokens``, the prompt and the context length; and both runs are greedy
  (temperature 0: a sampled reply is one draw, and replaying it is another experiment);
- the messages are word for word the source's first turn: each source reply is keyed by its
  problem's first turn under the *source's* benchmark and prompt (canonical JSON), and this
  run's requests look it up under its own. ``mbpp`` and ``mbppplus`` give the same first turn,
  so one can replay the other; a problem whose first turn differs is generated.

Everything else goes to the model: later turns, and first turns the source does not have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..engine import GenerationParams, Message
from .benchmarks import get_benchmark
from .problems import Problem
from .report import by_problem
from .run_folder import RUN, RecordStore, load_run
from .runner import RECORDED_BEFORE, EvalSettings, Reply, ReplyModel

SAME_REPLY = ("model", "model_file", "temperature", "max_tokens", "prompt", "context_length")
"""What the source's config and this run's must agree on for a reply to be the same one."""
BEFORE_THE_MODEL = ("temperature", "max_tokens", "prompt")
"""Of those, what is known before the model is loaded (checked first: a load takes minutes)."""
REPLAYED = "replayed"
GENERATED = "generated"
"""The values of a run's ``first_turn`` (a protocol key: ``--resume`` does not mix them)."""


class ReplayRefused(ValueError):
    """The source run cannot give this run's first turns (missing, or another protocol)."""


def message_key(messages: Sequence[Message]) -> str:
    """A conversation as canonical JSON: equal keys, word-for-word equal messages."""
    return json.dumps(
        [dict(m) for m in messages], ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )


@dataclass(frozen=True)
class SourceRun:
    """The turn-1 replies of an earlier run, by task id, and its recorded config."""

    folder: Path
    config: dict[str, Any]
    first_replies: dict[str, Reply]

    def replies_for(self, problems: Iterable[Problem], settings: EvalSettings) -> dict[str, Reply]:
        """The replayable replies, keyed by the first turn they answered.

        The key is the problem's first turn as the *source* asked it (its benchmark, the shared
        prompt), so a lookup with this run's first turn matches only where the two are word
        for word the same."""
        source = replace(
            settings,
            benchmark=str(self.config.get("benchmark") or RECORDED_BEFORE["benchmark"]),
            prompt=self.config.get("prompt") or RECORDED_BEFORE["prompt"],
        )
        try:
            benchmark = get_benchmark(source.benchmark)
        except ValueError as exc:
            raise ReplayRefused(f"--first-turn-from {self.folder}: {exc}") from None
        return {
            message_key(source.first_turn(benchmark, problem)): self.first_replies[problem.task_id]
            for problem in problems
            if problem.task_id in self.first_replies
        }


def load_source(folder: Path) -> SourceRun:
    """The run in ``folder``: its config and the reply of every finished problem's turn 1."""
    if not folder.is_dir():
        raise ReplayRefused(f"--first-turn-from {folder}: no such run folder")
    run = load_run(folder)
    if not run:
        raise ReplayRefused(f"--first-turn-from {folder}: no {RUN} there (not an oci-eval run)")
    replies: dict[str, Reply] = {}
    for task_id, turns in by_problem(RecordStore(folder).load()).items():
        first = turns[0]
        # A turn whose model failed has no reply to give; a reply without code is one.
        if (
            int(first["turn"]) != 1
            or first.get("model_error")
            or not isinstance(first.get("reply"), str)
        ):
            continue
        tokens = first.get("tokens") or {}
        replies[task_id] = Reply(
            first["reply"],
            tokens.get("prompt"),
            tokens.get("completion"),
            str(first.get("finish_reason") or "stop"),
            replayed=True,
        )
    if not replies:
        raise ReplayRefused(f"--first-turn-from {folder}: no finished first turn to replay")
    return SourceRun(folder, dict(run.get("config") or {}), replies)


def check_same_replies(
    source: Mapping[str, Any],
    config: Mapping[str, Any],
    keys: Sequence[str] = SAME_REPLY,
    *,
    folder: Path | str = "the source",
) -> None:
    """Refuse a source whose replies this run would not have got (``keys`` of the two runs'
    configs). A config without ``prompt`` is a run from before there was a choice."""
    if "temperature" in keys:
        runs = {"this run": config.get("temperature"), str(folder): source.get("temperature")}
        for whose, temperature in runs.items():
            if temperature != 0:
                raise ReplayRefused(
                    f"--first-turn-from replays greedy replies: {whose} has temperature "
                    f"{temperature} (must be 0 in both runs; replaying sampled replies would "
                    "be another experiment)"
                )
    before = {**RECORDED_BEFORE, **source}
    changed = [
        f"{key} {_same_reply_value(key, before)!r} there, {_same_reply_value(key, config)!r} here"
        for key in keys
        if key != "temperature" and _same_reply_value(key, before) != _same_reply_value(key, config)
    ]
    if changed:
        raise ReplayRefused(
            f"--first-turn-from {folder} was run with other settings, so its first replies are "
            f"not this run's: {'; '.join(changed)}. Use its settings, or leave out "
            "--first-turn-from."
        )


def _same_reply_value(key: str, config: Mapping[str, Any]) -> Any:
    value = config.get(key)
    if key == "model_file" and value is not None:
        return Path(str(value)).name  # the file, not where a machine keeps it
    return value


class ReplayModel:
    """A :class:`~.runner.ReplyModel` that gives recorded replies for the conversations it
    holds (a greedy request only) and asks ``inner`` for everything else."""

    def __init__(self, inner: ReplyModel, replies: Mapping[str, Reply]) -> None:
        self.inner = inner
        self.name = inner.name
        self.replies = dict(replies)
        self.replayed = 0
        self.generated = 0

    def replays(self, messages: Sequence[Message]) -> bool:
        return message_key(messages) in self.replies

    async def reply(
        self, messages: Sequence[Message], params: GenerationParams, request_id: str
    ) -> Reply:
        # A request sampled hotter (after a repeat) is not the greedy one that was recorded.
        recorded = self.replies.get(message_key(messages)) if params.temperature == 0 else None
        if recorded is not None:
            self.replayed += 1
            return recorded
        self.generated += 1
        return await self.inner.reply(messages, params, request_id)


__all__ = [
    "BEFORE_THE_MODEL",
    "GENERATED",
    "REPLAYED",
    "SAME_REPLY",
    "ReplayModel",
    "ReplayRefused",
    "SourceRun",
    "check_same_replies",
    "load_source",
    "message_key",
]
