"""What the model reads, by what it does: the system prompt (:mod:`.system`), the reading of
its replies (:mod:`.replies`), the feedback after a run (:mod:`.feedback`), an edit's request
and feedback (:mod:`.edit`), the notebook's cells and variables ranked by relevance
(:mod:`.context`) and the fitting of all of it into the model's window (:mod:`.budget`).

Pure functions: token counts come from a ``count`` callback (the engine's tokenizer in the
server, the server's ``/oci/tokenize`` endpoint in a kernel), so this package runs anywhere.
"""

from .budget import (
    Counter,
    PromptLimits,
    PromptTooLong,
    build_messages,
    cell_text,
    estimate_counter,
)
from .context import (
    SEARCH_CELLS,
    CellContext,
    NotebookContext,
    VariableInfo,
    defined_names,
    failure_names,
    rank_cells,
    used_names,
)
from .edit import (
    EDIT_CELL_PLACEHOLDER,
    edit_names,
    edit_repeat_success_feedback,
    edit_request,
    edit_success_feedback,
    edit_unchanged_feedback,
)
from .feedback import (
    CLIP_KEEP,
    CLIP_OVER,
    READ_HINT,
    FeedbackMarker,
    clip,
    execution_feedback,
    fix_request,
    input_feedback,
    repeat_feedback,
    repeat_success_feedback,
    strip_ansi,
    unchecked_feedback,
    unread_feedback,
)
from .replies import (
    calls_input,
    code_block_end,
    extract_code,
    same_code,
    states_a_value,
    ungrounded_numbers,
)
from .system import REQUEST_HINT, SYSTEM_PROMPT

__all__ = [
    "CLIP_KEEP",
    "CLIP_OVER",
    "EDIT_CELL_PLACEHOLDER",
    "READ_HINT",
    "REQUEST_HINT",
    "SEARCH_CELLS",
    "SYSTEM_PROMPT",
    "CellContext",
    "Counter",
    "FeedbackMarker",
    "NotebookContext",
    "PromptLimits",
    "PromptTooLong",
    "VariableInfo",
    "build_messages",
    "calls_input",
    "cell_text",
    "clip",
    "code_block_end",
    "defined_names",
    "edit_names",
    "edit_repeat_success_feedback",
    "edit_request",
    "edit_success_feedback",
    "edit_unchanged_feedback",
    "estimate_counter",
    "execution_feedback",
    "extract_code",
    "failure_names",
    "fix_request",
    "input_feedback",
    "rank_cells",
    "repeat_feedback",
    "repeat_success_feedback",
    "same_code",
    "states_a_value",
    "strip_ansi",
    "unchecked_feedback",
    "ungrounded_numbers",
    "unread_feedback",
    "used_names",
]
