"""Data that belongs to a notebook goes with it (issue 25 §4): a chat is deleted with its
notebook and never handed to another file at the same path, also when the old one went outside
Jupyter; chat files are private and bounded. (The model cache's stamp is in test_bundled.py,
``%%oci``'s server address in test_magic.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from oci_jupyter.chat import ChatStore, RequestRecord
from oci_jupyter.chat.store import (
    CONVERSATION_CHARS,
    FIELD_CHARS,
    RECORD_CHARS,
    REQUESTS_CHARS,
)

from .helpers import oci_app

SECRET = "password = 'hunter2'"


def notebook(*sources: str) -> dict[str, Any]:
    """A notebook whose cells get fresh random ids, as JupyterLab gives them."""
    made = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    return dict(made)


def ids_of(content: dict[str, Any]) -> list[str]:
    return [cell["id"] for cell in content["cells"]]


def write_notebook(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nbformat.from_dict(content)))


def ask(request_id: str, prompt: str = SECRET) -> RequestRecord:
    return RequestRecord(id=request_id, mode="chat", prompt=prompt)


def chat_about(store: ChatStore, path: str, request_id: str = "r1") -> None:
    store.save_request(path, ask(request_id), [{"role": "user", "content": SECRET}])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- through the server --------------------------------------------------------------------
@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "ContentsManager": {"delete_to_trash": False, "always_delete_dir": True},
        "OCI": {
            "engine_class": "tests.doubles.ScriptedTestEngine",
            "engine_kwargs": {"replies": []},
            "chat_dir": str(tmp_path / "chats"),
        },
    }


@pytest.fixture
def chats(tmp_path: Path) -> Path:
    return tmp_path / "chats"


async def put(jp_fetch: Any, path: str, content: dict[str, Any]) -> None:
    """Save a notebook through Jupyter's contents API, as JupyterLab does."""
    body = {"type": "notebook", "format": "json", "content": content}
    await jp_fetch("api", "contents", *path.split("/"), method="PUT", body=json.dumps(body))


async def history(jp_fetch: Any, path: str) -> list[str]:
    reply = await jp_fetch("oci", "chat", "history", params={"notebook": path})
    return [r["id"] for r in json.loads(reply.body)["requests"]]


async def until(condition: Callable[[], bool]) -> None:
    """The contents listener runs as a task after Jupyter's own reply."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.02)


def set_aside(chats: Path) -> list[Path]:
    return sorted(chats.glob("*.json.bak"))


def kept(chats: Path) -> str:
    """Everything the chat folder holds, set-aside copies included."""
    return "".join(p.read_text() for p in sorted(chats.iterdir()) if p.is_file())


async def test_deleting_a_notebook_deletes_its_chat_and_a_new_one_starts_empty(
    jp_fetch: Any, jp_serverapp: Any, chats: Path
) -> None:
    await put(jp_fetch, "work.ipynb", notebook(SECRET, "print(1)"))
    chat_about(oci_app(jp_serverapp).chat_store, "work.ipynb")
    assert await history(jp_fetch, "work.ipynb") == ["r1"]

    await jp_fetch("api", "contents", "work.ipynb", method="DELETE")
    await until(lambda: "hunter2" not in kept(chats))

    assert await history(jp_fetch, "work.ipynb") == []
    await put(jp_fetch, "work.ipynb", notebook("x = 1"))
    assert await history(jp_fetch, "work.ipynb") == []
    assert "hunter2" not in kept(chats)


async def test_deleting_a_folder_deletes_the_chats_of_its_notebooks(
    jp_fetch: Any, jp_serverapp: Any, chats: Path
) -> None:
    store = oci_app(jp_serverapp).chat_store
    for path in ["proj/a.ipynb", "proj/deep/b.ipynb", "project/c.ipynb"]:
        await jp_fetch(
            "api",
            "contents",
            *path.rsplit("/", 1)[0].split("/"),
            method="PUT",
            body=json.dumps({"type": "directory"}),
        )
        await put(jp_fetch, path, notebook(f"print({path!r})"))
        chat_about(store, path, request_id=path)

    await jp_fetch("api", "contents", "proj", method="DELETE")
    await until(lambda: len(list(chats.glob("*.json"))) == 1)

    assert await history(jp_fetch, "proj/a.ipynb") == []
    assert await history(jp_fetch, "proj/deep/b.ipynb") == []
    # A sibling whose name shares the prefix keeps its chat.
    assert await history(jp_fetch, "project/c.ipynb") == ["project/c.ipynb"]


async def test_a_notebook_removed_outside_jupyter_does_not_hand_its_chat_to_the_next(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, chats: Path
) -> None:
    await put(jp_fetch, "work.ipynb", notebook(SECRET))
    chat_about(oci_app(jp_serverapp).chat_store, "work.ipynb")
    # `rm` and a new notebook at the same path, in a terminal or while the server was down.
    (jp_root_dir / "work.ipynb").unlink()
    write_notebook(jp_root_dir / "work.ipynb", notebook("x = 1"))

    assert await history(jp_fetch, "work.ipynb") == []
    (aside,) = set_aside(chats)  # not deleted: whose file it is was judged, not known
    assert ".orphaned-" in aside.name
    assert mode(aside) == 0o600


@pytest.mark.parametrize("how", ["new", "renamed-onto"])
async def test_a_file_created_through_jupyter_does_not_inherit_a_stale_chat(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, how: str
) -> None:
    await put(jp_fetch, "work.ipynb", notebook(SECRET))
    chat_about(oci_app(jp_serverapp).chat_store, "work.ipynb")
    (jp_root_dir / "work.ipynb").unlink()  # outside Jupyter: no event

    if how == "new":  # "New Notebook", "Save As", an upload: a save of a path with no file
        await put(jp_fetch, "work.ipynb", notebook())
    else:
        await put(jp_fetch, "Untitled.ipynb", notebook())
        await jp_fetch(
            "api",
            "contents",
            "Untitled.ipynb",
            method="PATCH",
            body=json.dumps({"path": "work.ipynb"}),
        )
        await asyncio.sleep(0.2)  # the rename's listener

    assert await history(jp_fetch, "work.ipynb") == []


async def test_a_chat_stays_with_its_notebook_through_saves_renames_and_restarts(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, chats: Path
) -> None:
    store = oci_app(jp_serverapp).chat_store
    content = notebook("import pandas as pd", "df = pd.read_csv('data.csv')")
    await put(jp_fetch, "work.ipynb", content)
    chat_about(store, "work.ipynb")

    # Cells edited, added and removed; then every cell replaced (the notebook emptied and
    # written anew in JupyterLab): each save goes through Jupyter, so the chat follows.
    content["cells"] = [*content["cells"][1:], nbformat.v4.new_code_cell("df.head()")]
    await put(jp_fetch, "work.ipynb", content)
    await put(jp_fetch, "work.ipynb", notebook("start = 'over'"))
    await put(jp_fetch, "work.ipynb", notebook("again = True"))
    await asyncio.sleep(0.2)  # the save events' listener
    assert await history(jp_fetch, "work.ipynb") == ["r1"]

    # An editor outside Jupyter that replaces the file (a new inode) but keeps the cells.
    path = jp_root_dir / "work.ipynb"
    edited = json.loads(path.read_text())
    edited["cells"].append(dict(nbformat.v4.new_markdown_cell("notes")))
    path.with_suffix(".tmp").write_text(json.dumps(edited))
    os.replace(path.with_suffix(".tmp"), path)
    assert await history(jp_fetch, "work.ipynb") == ["r1"]

    await jp_fetch(
        "api", "contents", "work.ipynb", method="PATCH", body=json.dumps({"path": "w2.ipynb"})
    )
    await until(lambda: bool(store.load("w2.ipynb")["requests"]))
    assert await history(jp_fetch, "w2.ipynb") == ["r1"]

    restarted = ChatStore(chats, locate=lambda p: jp_root_dir / p)
    assert [r["id"] for r in restarted.load("w2.ipynb")["requests"]] == ["r1"]
    assert set_aside(chats) == []


# ---- the store's rules ---------------------------------------------------------------------
@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "notebooks"


@pytest.fixture
def store(tmp_path: Path, root: Path) -> ChatStore:
    return ChatStore(tmp_path / "chats", locate=lambda p: root / p)


def test_notebooks_without_cell_ids_are_never_judged(store: ChatStore, root: Path) -> None:
    old = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")])
    old.nbformat_minor = 4
    del old.cells[0]["id"]  # nbformat 4.4 and older: no ids, nothing to compare
    write_notebook(root / "n.ipynb", old)
    chat_about(store, "n.ipynb")
    write_notebook(root / "n.ipynb", notebook("b = 2"))

    assert [r["id"] for r in store.load("n.ipynb")["requests"]] == ["r1"]


def test_a_missing_notebook_keeps_its_chat_until_a_file_comes(store: ChatStore, root: Path) -> None:
    write_notebook(root / "n.ipynb", notebook("a = 1"))
    chat_about(store, "n.ipynb")
    (root / "n.ipynb").unlink()  # perhaps moved away for a moment: nothing to compare yet

    assert [r["id"] for r in store.load("n.ipynb")["requests"]] == ["r1"]


def test_a_request_that_ends_after_its_notebook_went_does_not_write_it_back(
    store: ChatStore, root: Path
) -> None:
    write_notebook(root / "n.ipynb", notebook("a = 1"))
    write_notebook(root / "m.ipynb", notebook("a = 1"))
    deleted, renamed = ask("r1"), ask("r2")  # both running...
    store.remove("n.ipynb")  # ...when Jupyter deletes one notebook
    store.move("m.ipynb", "moved.ipynb")  # and renames the other
    later = ask("r3")  # a request on a new notebook at the deleted path is its own
    store.before_save("n.ipynb", exists=False)
    store.save_request("n.ipynb", later, [])
    store.save_request("n.ipynb", deleted, [])
    store.save_request("m.ipynb", renamed, [])

    assert [r["id"] for r in store.load("n.ipynb")["requests"]] == ["r3"]
    assert store.load("m.ipynb")["requests"] == []
    assert [r["id"] for r in store.load("moved.ipynb")["requests"]] == ["r2"]


def test_deleting_removes_the_copies_set_aside_too(store: ChatStore, root: Path) -> None:
    write_notebook(root / "n.ipynb", notebook("a = 1"))
    chat_about(store, "n.ipynb", "old")
    write_notebook(root / "n.ipynb", notebook("b = 2"))  # replaced outside Jupyter
    assert store.load("n.ipynb")["requests"] == []  # the old chat is set aside
    chat_about(store, "n.ipynb", "new")

    assert store.remove("n.ipynb") == 1
    assert list(store.root.iterdir()) == []


# ---- private files -------------------------------------------------------------------------
def test_chat_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = ChatStore(tmp_path / "data" / "chats")
        chat_about(store, "n.ipynb")
    finally:
        os.umask(old)

    assert mode(store.root) == 0o700
    (file,) = store.root.iterdir()
    assert mode(file) == 0o600


def test_a_lax_existing_chat_folder_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / "chats"
    root.mkdir()
    os.chmod(root, 0o755)  # as an older version left it
    for name in ["0123.json", "4567.corrupt-1.json.bak"]:
        (root / name).write_text("{}")
        os.chmod(root / name, 0o644)

    store = ChatStore(root)
    chat_about(store, "n.ipynb")

    assert mode(root) == 0o700
    assert {p.name: mode(p) for p in root.iterdir()} == {
        name: 0o600
        for name in ["0123.json", "4567.corrupt-1.json.bak", store._path("n.ipynb").name]
    }


# ---- bounded records -----------------------------------------------------------------------
def prompt(n: int) -> str:
    return f"ask {n}: " + "x" * 199_000 + f" end {n}"


def test_many_huge_asks_keep_the_chat_file_bounded(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats")
    for n in range(40):  # refused asks of 199,000 characters each
        record = ask(f"r{n}", prompt(n))
        record.status, record.message = "error", "The request is too long for the model."
        store.save_request("n.ipynb", record, [])
    store.save_request("n.ipynb", ask("small", "what is df?"), [])

    (file,) = store.root.glob("*.json")
    assert file.stat().st_size < REQUESTS_CHARS + RECORD_CHARS
    requests = store.load("n.ipynb")["requests"]
    assert requests[-1]["prompt"] == "what is df?"  # short texts are kept as they are
    newest = requests[-2]
    assert newest["id"] == "r39"
    assert len(newest["prompt"]) <= FIELD_CHARS
    head, count, tail = re.split(
        r"\n\.\.\. \[([\d,]+) characters not kept in the chat history\] \.\.\.\n",
        newest["prompt"],
    )
    assert prompt(39) == head + "x" * int(count.replace(",", "")) + tail
    assert head.startswith("ask 39: xxx")
    assert tail.endswith("xxx end 39")


def test_a_record_of_many_long_turns_is_cut_to_fit(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats")
    record = ask("r1", "long")
    record.turns = [
        {"turn": n, "reply": "y" * 50_000, "code": "z" * 50_000, "feedback": "f" * 50_000}
        for n in range(1, 41)
    ]
    store.save_request("n.ipynb", record, [])

    (saved,) = store.load("n.ipynb")["requests"]
    assert len(json.dumps(saved)) <= RECORD_CHARS
    assert len(saved["turns"]) == 40
    assert all("characters not kept" in t["reply"] for t in saved["turns"])


def test_the_remembered_conversation_is_bounded(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats")
    conversation = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"{n} " + "c" * 9_000}
        for n in range(200)
    ]
    store.save_request("n.ipynb", ask("r1"), conversation)

    remembered = store.load("n.ipynb")["conversation"]
    assert sum(len(m["content"]) for m in remembered) <= CONVERSATION_CHARS
    assert remembered[-1] == conversation[-1]  # the newest are kept
    assert remembered[0]["role"] == "user"
