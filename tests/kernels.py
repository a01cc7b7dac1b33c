"""A real ipykernel driven through jupyter_client, and the text of what cells show."""

from __future__ import annotations

import ast
import json
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel


@dataclass
class CellRun:
    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    @property
    def text(self) -> str:
        """Everything the cell showed, as text (streams, markdown/plain displays, errors)."""
        parts: list[str] = []
        for message in self.messages:
            kind, content = message["header"]["msg_type"], message["content"]
            if kind == "stream":
                parts.append(content["text"])
            elif kind in ("display_data", "update_display_data", "execute_result"):
                data = content["data"]
                parts.append(data.get("text/markdown") or data.get("text/plain", ""))
            elif kind == "error":
                parts.append("\n".join(content["traceback"]))
        return "\n".join(parts)

    @property
    def final_markdown(self) -> list[str]:
        """Displays as finally shown (updates replace what they update)."""
        shown: dict[str, str] = {}
        order: list[str] = []
        for index, message in enumerate(self.messages):
            kind, content = message["header"]["msg_type"], message["content"]
            if kind not in ("display_data", "update_display_data"):
                continue
            key = content.get("transient", {}).get("display_id") or f"#{index}"
            if key not in shown:
                order.append(key)
            shown[key] = content["data"].get("text/markdown", content["data"].get("text/plain"))
        return [shown[k] for k in order]


class Kernel:
    def __init__(self, manager: KernelManager, client: BlockingKernelClient) -> None:
        self.manager = manager
        self.client = client

    def run(self, code: str, timeout: float = 300) -> CellRun:
        messages: list[dict[str, Any]] = []
        reply = self.client.execute_interactive(
            code, timeout=timeout, output_hook=messages.append, allow_stdin=False
        )
        return CellRun(reply, messages)

    def value(self, expression: str) -> str:
        reply = self.client.execute_interactive(
            "", user_expressions={"v": expression}, timeout=60, output_hook=lambda m: None
        )
        result = reply["content"]["user_expressions"]["v"]
        assert result["status"] == "ok", result
        return str(result["data"]["text/plain"])

    def start(self, code: str) -> str:
        """Send code without waiting; returns the request's msg_id."""
        return str(self.client.execute(code, allow_stdin=False))

    def iopub_until(self, predicate: Any, timeout: float = 60) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=timeout)
            except queue.Empty as exc:
                raise TimeoutError(f"no matching message; saw {seen[-5:]}") from exc
            seen.append(message)
            if predicate(message):
                return seen

    def reply(self, msg_id: str, timeout: float = 60) -> dict[str, Any]:
        while True:
            message = self.client.get_shell_msg(timeout=timeout)
            if message["parent_header"].get("msg_id") == msg_id:
                return message


@contextmanager
def ipykernel(env: dict[str, str]) -> Iterator[Kernel]:
    manager, client = start_new_kernel(kernel_name="python3", env=env, startup_timeout=120)
    try:
        yield Kernel(manager, client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def outcome_of(kernel: Kernel, execute: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Run a chat ``execute`` message's code in the kernel and give the ``outcome`` message
    the notebook would send back."""
    run = kernel.run(execute["code"], timeout)
    outcome: dict[str, Any] = {
        "type": "outcome",
        "id": execute["id"],
        "turn": execute["turn"],
        "status": "ok" if run.status == "ok" else "error",
        "output": run.text,
    }
    if run.status == "ok" and not run.text.strip() and execute.get("inspect"):
        # As the browser does after a silent run: the assigned names' short reprs, looked
        # up with a silent user expression, by the same rules (prompts/values.py).
        names = json.dumps(execute["inspect"])
        found = kernel.value(
            "__import__('json').dumps(__import__('oci_jupyter.prompts.values', "
            f"fromlist=['x']).lookup_values(globals(), {names}))"
        )
        outcome["values"] = dict(json.loads(ast.literal_eval(found)))
    if run.status != "ok":
        content = run.reply["content"]
        outcome["error"] = {
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": content.get("traceback", []),
        }
    return outcome
