"""What the chat keeps per notebook: the history the panel shows and the conversation the model
remembers, as JSON files under Jupyter's data folder (they survive reloads and restarts)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..loop import SKIP_TEXTS, Finished, Turn

log = logging.getLogger(__name__)


@dataclass
class TurnRecord:
    turn: int
    reply: str = ""
    code: str | None = None
    outcome: dict[str, Any] | None = None
    feedback: str | None = None
    skipped: str | None = None
    """Why the code was not run, as the chat says it ("not run: same as before")."""
    step: int = 0
    attempt: int = 0
    skipped_code: str = ""
    """``skipped`` as a sentence of :mod:`oci_jupyter.texts` (the panel translates it)."""
    skipped_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, turn: Turn) -> TurnRecord:
        outcome = turn.outcome
        why = SKIP_TEXTS[turn.skipped] if turn.skipped else None
        return cls(
            turn.number,
            turn.reply,
            turn.code,
            {
                "status": outcome.status,
                "output": outcome.output[-2000:],
                "ename": outcome.ename,
                "evalue": outcome.evalue,
                "seconds": outcome.seconds,
            }
            if outcome is not None
            else None,
            turn.feedback,
            str(why) if why else None,
            turn.step,
            turn.attempt,
            why.code if why else "",
            why.json_params() if why else {},
        )


@dataclass
class RequestRecord:
    id: str
    mode: str
    prompt: str
    started: float = field(default_factory=time.time)
    turns: list[TurnRecord] = field(default_factory=list)
    status: str = "running"
    message: str = ""
    answer: str = ""
    steps: int = 0
    budget: str | None = None
    code: str = ""
    """``message`` as a sentence of :mod:`oci_jupyter.texts` (the panel translates it)."""
    params: dict[str, Any] = field(default_factory=dict)

    def finish(self, result: Finished) -> None:
        self.turns = [TurnRecord.of(t) for t in result.turns]
        self.status, self.message = result.status, result.message
        self.code, self.params = result.code, result.params
        self.answer, self.steps, self.budget = result.answer, result.steps, result.budget


def _is_message(entry: Any) -> bool:
    """Whether a remembered entry is a chat message the prompts can use."""
    return (
        isinstance(entry, dict)
        and entry.get("role") in ("user", "assistant", "system")
        and isinstance(entry.get("content"), str)
    )


class ChatStore:
    """Per-notebook chat files. Writes are serialized (they run in worker threads)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _path(self, notebook: str) -> Path:
        digest = hashlib.sha256(notebook.strip("/").encode()).hexdigest()[:32]
        return self.root / f"{digest}.json"

    def load(self, notebook: str) -> dict[str, Any]:
        path = self._path(notebook)
        try:
            data: Any = json.loads(path.read_text())
        except FileNotFoundError:
            data = {}
        except PermissionError:
            raise  # not corrupted, only out of reach: the file stays where it is
        except (OSError, ValueError) as exc:
            data = self._set_aside(path, f"unreadable ({exc})")
        if not isinstance(data, dict) or not isinstance(data.get("requests", []), list):
            data = self._set_aside(path, "not a chat record")
        data.setdefault("notebook", notebook)
        # An entry edited by hand or written by another version: dropped, the rest is kept.
        data["requests"] = [r for r in data.get("requests", []) if isinstance(r, dict)]
        conversation = data.get("conversation")
        data["conversation"] = (
            [m for m in conversation if _is_message(m)] if isinstance(conversation, list) else []
        )
        return data

    def _set_aside(self, path: Path, why: str) -> dict[str, Any]:
        """A corrupted chat file is renamed, never deleted, and the chat starts afresh."""
        aside = path.with_suffix(f".corrupt-{int(time.time())}.json.bak")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
            log.warning("oci: chat file %s is %s; set aside as %s", path, why, aside.name)
        return {}

    def save_request(
        self, notebook: str, record: RequestRecord, conversation: list[dict[str, str]]
    ) -> None:
        with self._lock:
            data = self.load(notebook)
            requests = [r for r in data["requests"] if r.get("id") != record.id]
            requests.append(asdict(record))
            data["requests"] = requests[-200:]
            data["conversation"] = conversation[-200:]
            self._write(notebook, data)

    def move(self, old: str, new: str) -> int:
        """Re-key after a rename: the notebook's chat, or those of every notebook under a
        renamed folder. A chat already at the new path (of a notebook deleted earlier) is
        replaced. Returns how many chats moved."""
        with self._lock:
            return self._move(old.strip("/"), new.strip("/"))

    def _move(self, old: str, new: str) -> int:
        own = self._path(old)
        # A notebook's own chat is found by its key; a folder's need a look at each chat.
        files = [own] if own.exists() else sorted(self.root.glob("*.json"))
        moved = 0
        for file in files:
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict):
                continue
            notebook = str(data.get("notebook", ""))
            if notebook == old:
                target = new
            elif notebook.startswith(old + "/"):
                target = new + notebook[len(old) :]
            else:
                continue
            data["notebook"] = target
            self._write(target, data)
            file.unlink(missing_ok=True)
            moved += 1
        return moved

    def clear(self, notebook: str) -> None:
        with self._lock, contextlib.suppress(FileNotFoundError):
            self._path(notebook).unlink()

    def _write(self, notebook: str, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(notebook)
        temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, path)
