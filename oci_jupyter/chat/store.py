"""What the chat keeps per notebook: the history the panel shows and the conversation the model
remembers, as JSON files under Jupyter's data folder (they survive reloads and restarts).

A chat belongs to one notebook and goes with it (docs/design.md, issue 25 §4): it follows
renames, is deleted with the notebook, and is never handed to another file that comes to the
same path. The files are private (a 0700 folder, 0600 files) and bounded in size."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..loop import SKIP_TEXTS, Finished, Turn, bounded
from .notebooks import notebook_key

log = logging.getLogger(__name__)

MAX_REQUESTS = 200
"""Records the panel keeps per notebook (the oldest go first)."""
REQUESTS_CHARS = 1_000_000
"""The records' JSON, all together (the oldest go first; the newest always stays)."""
RECORD_CHARS = 100_000
"""One record's JSON: its texts are cut shorter until it fits."""
FIELD_CHARS = 20_000
"""One text of a record (a prompt, a reply, an answer): longer ones keep their head and tail
around a marker that says how much was left out."""
MAX_MESSAGES = 200
CONVERSATION_CHARS = 400_000
"""The remembered conversation (newest first): more than a 128k-token window can hold."""
MAX_CELL_IDS = 2_000

_CELL_ID = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_-]{1,64})"')
"""A cell's id as nbformat (4.5+) writes it. Read from the file's bytes without parsing it: a
stray match in an output can only make two notebooks look alike (the chat is then kept)."""
_HEAD = '{"notebook": '


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


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters: the head and the tail around a marker (a text cut once
    is not cut again)."""
    if len(text) <= limit:
        return text
    keep = max(limit - 80, 0) // 2  # room for the marker
    marker = f"... [{len(text) - 2 * keep:,} characters not kept in the chat history] ..."
    return f"{text[:keep]}\n{marker}\n{text[len(text) - keep :]}"


def _cut_all(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return _cut(value, limit)
    if isinstance(value, dict):
        return {key: _cut_all(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut_all(item, limit) for item in value]
    return value


def _fitted(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every text at most :data:`FIELD_CHARS`, cut shorter still until the
    record's JSON fits :data:`RECORD_CHARS` (a request of many long turns)."""
    limit = FIELD_CHARS
    kept = _cut_all(record, limit)
    while len(json.dumps(kept)) > RECORD_CHARS and limit > 400:
        limit //= 4
        kept = _cut_all(record, limit)
    return kept


def _newest(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest records within :data:`MAX_REQUESTS` and :data:`REQUESTS_CHARS`."""
    kept: list[dict[str, Any]] = []
    total = 0
    for request in reversed(requests[-MAX_REQUESTS:]):
        record = _fitted(request)  # files of older versions may hold longer ones
        total += len(json.dumps(record))
        if kept and total > REQUESTS_CHARS:
            break
        kept.append(record)
    return kept[::-1]


@dataclass(frozen=True)
class _Seen:
    """A notebook file as the store last read its cell ids."""

    stamp: tuple[int, int, int]
    """(inode, mtime_ns, size): unchanged, the ids need no second read."""
    ids: list[str]


def _stamp(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_mtime_ns, info.st_size)


Locate = Callable[[str], "str | os.PathLike[str] | None"]
"""A notebook's path in Jupyter -> the file on disk (None: not a local file)."""


class ChatStore:
    """Per-notebook chat files. Writes are serialized (they run in worker threads).

    With ``locate`` (the contents manager's path -> file), a chat remembers the ids of its
    notebook's cells, and a chat whose notebook file now holds none of them is set aside
    rather than handed to that file (a notebook deleted outside Jupyter, another one created
    at its path)."""

    def __init__(self, root: Path, locate: Locate | None = None) -> None:
        self.root = root
        self._locate = locate
        self._lock = threading.RLock()
        self._private = False
        self._seen: dict[str, _Seen] = {}
        # Paths deleted (None) or renamed (to the new path) while the server runs, and when:
        # a request that ends afterwards must not write its chat back at the old path.
        self._departed: dict[str, tuple[float, str | None]] = {}
        if root.is_dir():  # an existing folder is tightened now, a new one at the first write
            with contextlib.suppress(OSError):
                self._make_private()

    def _path(self, notebook: str) -> Path:
        digest = hashlib.sha256(notebook_key(notebook).encode()).hexdigest()[:32]
        return self.root / f"{digest}.json"

    # ---- reading -----------------------------------------------------------------------------
    def load(self, notebook: str) -> dict[str, Any]:
        with self._lock:
            return self._load(notebook_key(notebook))

    def _load(self, notebook: str) -> dict[str, Any]:
        path = self._path(notebook)
        data = self._read(path)
        if data and not self._belongs(notebook, data):
            data = self._set_aside(path, "orphaned", f"the chat of another file at {notebook}")
        data["notebook"] = notebook
        # An entry edited by hand or written by another version: dropped, the rest is kept.
        data["requests"] = [r for r in data.get("requests", []) if isinstance(r, dict)]
        conversation = data.get("conversation")
        data["conversation"] = (
            [m for m in conversation if _is_message(m)] if isinstance(conversation, list) else []
        )
        return data

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data: Any = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except PermissionError:
            raise  # not corrupted, only out of reach: the file stays where it is
        except (OSError, ValueError) as exc:
            return self._set_aside(path, "corrupt", f"unreadable ({exc})")
        if not isinstance(data, dict) or not isinstance(data.get("requests", []), list):
            return self._set_aside(path, "corrupt", "not a chat record")
        return data

    def _set_aside(self, path: Path, kind: str, why: str) -> dict[str, Any]:
        """A chat file that cannot be used is renamed, never deleted, and the chat starts
        afresh: a corrupted one, or one whose notebook is gone (``orphaned``)."""
        aside = path.with_suffix(f".{kind}-{time.time_ns()}.json.bak")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
            log.warning("oci: chat file %s is %s; set aside as %s", path, why, aside.name)
        return {}

    # ---- whose chat it is --------------------------------------------------------------------
    def _cell_ids(self, notebook: str) -> _Seen | None:
        """The notebook file's cell ids, None when there is no file to look at."""
        located = self._locate(notebook) if self._locate else None
        if located is None:
            return None
        try:
            with open(located, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    return None
                stamp = _stamp(info)
                seen = self._seen.get(notebook)
                if seen is not None and seen.stamp == stamp:
                    return seen
                content = handle.read()
        except OSError:
            return None
        ids = list(dict.fromkeys(m.decode() for m in _CELL_ID.findall(content)))[:MAX_CELL_IDS]
        if len(self._seen) > 512:
            self._seen.clear()
        self._seen[notebook] = seen = _Seen(stamp, ids)
        return seen

    def _belongs(self, notebook: str, data: dict[str, Any]) -> bool:
        """Whether the file at the notebook's path is still the chat's notebook: False only
        when both remember cell ids and share none. Every editor keeps a cell's id across
        saves; a notebook created anew has new ones."""
        remembered = data.get("cells")
        if not isinstance(remembered, list) or not remembered:
            return True
        seen = self._cell_ids(notebook)
        return seen is None or not seen.ids or not set(seen.ids).isdisjoint(map(str, remembered))

    def _unchanged(self, notebook: str) -> bool:
        """Whether the notebook file is as the store last read it (a stat, no read)."""
        seen = self._seen.get(notebook)
        located = self._locate(notebook) if self._locate else None
        if seen is None or located is None:
            return False
        try:
            info = os.stat(located)
        except OSError:
            return False
        return seen.stamp == _stamp(info)

    def _note_cells(self, notebook: str, data: dict[str, Any]) -> bool:
        """Remember the notebook's cell ids as they are now; whether they changed."""
        seen = self._cell_ids(notebook)
        if seen is None or not seen.ids or seen.ids == data.get("cells"):
            return False
        data["cells"] = seen.ids
        return True

    # ---- writing -----------------------------------------------------------------------------
    def save_request(
        self, notebook: str, record: RequestRecord, conversation: list[dict[str, str]]
    ) -> None:
        with self._lock:
            current = self._where_now(notebook_key(notebook), record.started)
            if current is None:
                log.info("oci: %s was deleted while request %s ran", notebook, record.id)
                return
            notebook = current
            data = self._load(notebook)
            requests = [r for r in data["requests"] if r.get("id") != record.id]
            requests.append(asdict(record))
            data["requests"] = _newest(requests)
            data["conversation"] = bounded(conversation[-MAX_MESSAGES:], CONVERSATION_CHARS)
            self._note_cells(notebook, data)
            self._write(notebook, data)

    def _where_now(self, notebook: str, since: float) -> str | None:
        """Where a notebook is now, after the renames (and deletes: None) of it or of a
        folder above it since ``since``."""
        for _ in range(100):  # a chain of renames; a cycle ends somewhere
            for key, (when, new) in self._departed.items():
                if when > since and (notebook == key or notebook.startswith(key + "/")):
                    if new is None:
                        return None
                    notebook = new + notebook[len(key) :]
                    since = when
                    break
            else:
                return notebook
        return notebook

    def _departs(self, key: str, new: str | None) -> None:
        now = time.time()
        self._departed = {
            k: v for k, v in self._departed.items() if now - v[0] < 86_400 and k != key
        }
        self._departed[key] = (now, new)

    def saved(self, notebook: str) -> None:
        """Jupyter saved the notebook: its chat remembers the cells it has now, whatever they
        are (a notebook emptied and filled anew in JupyterLab is still the same notebook)."""
        with self._lock:
            notebook = notebook_key(notebook)
            path = self._path(notebook)
            if not path.exists():
                return
            data = self._read(path)
            if data and self._note_cells(notebook, data):
                self._write(notebook, data)

    def before_save(self, path: str, *, exists: bool, folder: bool = False) -> int:
        """Jupyter is about to save ``path``. Nothing there yet: the file is new, and a chat
        kept for that path (or, for a new folder, under it) is of a file gone since: it is
        set aside. A file there: its chat is checked as a read checks it (the file may have
        been replaced outside Jupyter). Returns how many chats were set aside."""
        with self._lock:
            key = notebook_key(path)
            own = self._path(key)
            if exists:
                if own.exists() and not self._unchanged(key):
                    self._load(key)
                    return int(not own.exists())
                return 0
            files = self._chats_of(key) if folder else [own] if own.exists() else []
            for file in files:
                self._set_aside(file, "orphaned", f"of a file no longer at {key}")
            return len(files)

    def move(self, old: str, new: str) -> int:
        """Re-key after a rename: the notebook's chat, or those of every notebook under a
        renamed folder. Nothing was at the new path before (Jupyter does not rename onto a
        file), so a chat kept there is of a file gone since: it is set aside first.
        Returns how many chats moved."""
        with self._lock:
            old, new = notebook_key(old), notebook_key(new)
            if old == new:
                return 0
            self._departs(old, new)
            for file in self._chats_of(new):
                self._set_aside(file, "orphaned", f"of a file no longer at {new}")
            moved = 0
            for file in self._chats_of(old):
                data = self._read(file)
                notebook = notebook_key(str(data.get("notebook", old)))
                target = new + notebook[len(old) :]
                data["notebook"] = target
                self._write(target, data)
                file.unlink(missing_ok=True)
                moved += 1
            return moved

    def remove(self, path: str) -> int:
        """Jupyter deleted ``path``: the chat of that notebook, or of every notebook under
        that folder, goes with it (as Jupyter's checkpoints do), and so do the copies set
        aside under the notebook's name. Returns how many chats were deleted."""
        with self._lock:
            key = notebook_key(path)
            self._departs(key, None)
            files = self._chats_of(key)
            own = self._path(key).stem
            aside = [
                file
                for file in sorted(self.root.glob("*.json.bak"))
                if file.name.startswith(own + ".")
                or (self._owner(file) or "").startswith(key + "/")
            ]
            for file in files + aside:
                file.unlink(missing_ok=True)
            if files:
                log.info("oci: deleted the chats of %s (%d)", key, len(files))
            return len(files)

    def clear(self, notebook: str) -> None:
        with self._lock, contextlib.suppress(FileNotFoundError):
            self._path(notebook).unlink()

    def _chats_of(self, key: str) -> list[Path]:
        """The chat of the notebook at ``key``, else those of every notebook under the folder
        ``key``: a folder's need a look at each chat (at its head only)."""
        own = self._path(key)
        if own.exists():
            return [own]
        prefix = key + "/"
        return [
            file
            for file in sorted(self.root.glob("*.json"))
            if (self._owner(file) or "").startswith(prefix)
        ]

    @staticmethod
    def _owner(file: Path) -> str | None:
        """The notebook a chat file belongs to, read from the head of the file (the store
        writes ``notebook`` first), else from the whole file."""
        try:
            with file.open(encoding="utf-8") as handle:
                head = handle.read(16_384)
                if head.startswith(_HEAD):
                    with contextlib.suppress(ValueError):
                        owner, _ = json.JSONDecoder().raw_decode(head, len(_HEAD))
                        return owner if isinstance(owner, str) else None
                data = json.loads(head + handle.read())
        except (OSError, ValueError):
            return None
        owner = data.get("notebook") if isinstance(data, dict) else None
        return owner if isinstance(owner, str) else None

    def _make_private(self) -> None:
        """The folder is 0700 and every chat file 0600, also when an older version (or the
        user's umask) made them readable by others."""
        if self._private:
            return
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._private = True
        try:
            if stat.S_IMODE(self.root.stat().st_mode) != 0o700:
                os.chmod(self.root, 0o700)
            for file in self.root.iterdir():
                if file.is_file() and stat.S_IMODE(file.stat().st_mode) & 0o077:
                    os.chmod(file, 0o600)
        except OSError as exc:  # e.g. a folder of another user's: the files stay 0600
            log.warning("oci: could not make the chat folder %s private: %s", self.root, exc)

    def _write(self, notebook: str, data: dict[str, Any]) -> None:
        self._make_private()
        path = self._path(notebook)
        temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        record = {"notebook": notebook, **{k: v for k, v in data.items() if k != "notebook"}}
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a temporary file left behind by a crash may be older
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(record))
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        os.replace(temporary, path)
