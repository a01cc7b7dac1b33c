"""``%%oci``'s options: parsing them, and the budgets and sampling they choose.

A budget left out is the server's (``/oci/status`` reports ``c.OCI.*`` as ``loop``), applied
by :mod:`oci_jupyter.request` as for every surface; ``--turns`` is the older name of
``--attempts``.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from .loop import Budgets
from .request import Choices, LoopDefaults, Request

USAGE = """\
%%oci [options]
<what you want, in plain language; {name} inserts a variable's value>

%oci <request on one line>        the same for one line
%oci fix [options]                fix the last cell that failed in this kernel
%oci edit [N] <instruction> [options]
                                  change In [N] (without N: the last cell run) as asked:
                                  show the diff, run the changed code (not with --no-exec),
                                  refine it if it fails, say in a sentence what changed, and
                                  offer the code as the next cell (a kernel cannot rewrite
                                  a cell). The model sees the cell's source, Out[N] if it
                                  has one, and its error if it is the last cell that failed
                                  since %load_ext; what the cell printed is not kept by
                                  IPython, so the model does not see it
%oci reset                        forget the conversation (it carries across %%oci cells)
%oci status                       the server's model and its state
"""


class UsageError(ValueError):
    """Bad options or an empty request: shown as a message, never as a traceback."""


def parser() -> argparse.ArgumentParser:
    # argparse %-formats its texts: "%%%%" shows as "%%".
    parser = argparse.ArgumentParser(prog="%%%%oci", add_help=False, exit_on_error=False)
    parser.add_argument(
        "--attempts", type=int, help="tries of code per cell: the first and its fixes (server's, 3)"
    )
    parser.add_argument("--turns", type=int, help=argparse.SUPPRESS)  # the older --attempts
    parser.add_argument("--steps", type=int, help="most cells of code per request (server's, 4)")
    parser.add_argument("--replies", type=int, help="most model replies (server's, 8)")
    parser.add_argument(
        "--no-read", action="store_true", help="stop at the first run without errors"
    )
    parser.add_argument("--no-exec", action="store_true", help="only write the code")
    parser.add_argument("--insert", action="store_true", help="put the steps' code in a cell below")
    parser.add_argument("--quiet", action="store_true", help="show outputs and the summary only")
    parser.add_argument("--temperature", type=float, default=0.2, help="sampling (default 0.2)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="longest reply (1024)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run of code")
    parser.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    return parser


def parse_options(line: str) -> argparse.Namespace:
    try:
        options, unknown = parser().parse_known_args(shlex.split(line))
    except (argparse.ArgumentError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    flags = [u for u in unknown if u.startswith("-")]
    if flags:
        raise UsageError(f"unknown option {flags[0]} (see %%oci?)")
    options.words += unknown
    for name in ("attempts", "turns", "steps", "replies", "max_tokens"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= options.temperature <= 2:
        raise UsageError("--temperature must be between 0 and 2")
    return options


def choices(options: argparse.Namespace) -> Choices:
    """What the options choose; what they leave out is the server's."""
    return Choices(
        attempts=options.attempts or options.turns,  # --attempts wins over the older --turns
        steps=options.steps,
        replies=options.replies,
        read_results=False if options.no_read else None,
    )


def budgets_for(options: argparse.Namespace, defaults: Any) -> Budgets:
    """The options' budgets, else the server's (``/oci/status`` "loop"), else the product's."""
    return Request(
        "", choices=choices(options), defaults=LoopDefaults.from_json(defaults)
    ).budgets()
