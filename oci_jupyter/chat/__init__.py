"""The sidebar chat's server side: the wire protocol (:mod:`.protocol`), the per-notebook
store (:mod:`.store`), one :class:`ChatSession` per browser connection (:mod:`.session`),
which drives the interpreter loop while the browser runs the code in the notebook's kernel,
and the server-wide :class:`NotebookRequests` (:mod:`.notebooks`): one request per notebook."""

from ..request import LoopDefaults
from .notebooks import NotebookRequests
from .session import ChatSession
from .store import ChatStore, RequestRecord, TurnRecord

__all__ = [
    "ChatSession",
    "ChatStore",
    "LoopDefaults",
    "NotebookRequests",
    "RequestRecord",
    "TurnRecord",
]
