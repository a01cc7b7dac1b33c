"""The judging program: what runs in the separate process that decides pass or fail.

It runs as a script in its own short-lived Python process (``python -I judge_process.py
JOB.json``), never in oci-eval's process nor in the kernel the model used, and it imports
nothing of oci_jupyter: the file runs on its own, wherever the package is installed.

A job names the candidate code (the model's definitions), its entry point, and the parts to
judge; each part gets a verdict ``{status, detail, feedback}``:

- ``asserts``: test statements that call the entry point by name (MBPP's original
  ``assertion``), run against the candidate.
- ``check``: a ``check(candidate)`` function (HumanEval's ``test``), called with the candidate.
- ``inputs``: differential testing, as EvalPlus does for MBPP+: the canonical solution runs
  on every input first (its results are the expected outputs, its times set each input's
  time limit), then the candidate runs on the same inputs (a deep copy each time, with its
  output swallowed), its ``base_input`` part and its ``plus_input`` part judged apart.

``feedback`` is the text the OpenCodeInterpreter paper's harness gives the model for that
failure (``oci-eval --feedback tests``): a wrong result as "The results aren't as expected."
with the input and the expected and actual outputs; a time-out as "Execution timed out.";
an exception as its traceback from the candidate's first frame on; each cut to
:data:`FEEDBACK_LIMIT` characters.

The verdicts are written to ``job["verdict"]`` as JSON after every part, so that a process
killed at its time limit still leaves what it finished.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

FEEDBACK_LIMIT = 500
"""Characters of feedback per failure, as the paper's harness keeps (its shared buffer)."""
TIMED_OUT = "Execution timed out."
MIN_TIME_LIMIT = 1.0
"""Seconds per input at least, and a multiple of the canonical solution's time on it: the
settings of the paper's evaluation scripts (EvalPlus's ``--min-time-limit 1
--gt-time-limit-factor 4``)."""
TIME_LIMIT_FACTOR = 4.0
CANDIDATE_FILE = "<string>"
"""The file name the candidate's code is compiled under: a traceback is shown from its first
frame in that file on, as the paper's harness cuts it (its code is ``exec``'d as a string)."""
TEST_FILE = "<test>"
RTOL = 1e-07
"""numpy.testing.assert_allclose's default relative tolerance, which EvalPlus compares with."""

# EvalPlus's special oracles for MBPP+ (evalplus/eval/_special_oracle.py, late 2023, as the
# paper's harness applies them): tasks whose outputs cannot be compared as values.
OUTPUT_NOT_NONE_TASKS = frozenset({"check_str", "text_match_three", "text_starta_endb"})
ANY_OUTPUT_TASKS = frozenset({"are_equivalent"})
"""Mbpp/164: the canonical answer is disputed; every output is accepted."""
ZERO_ALSO_TASKS = frozenset({"sum_div"})
"""Mbpp/295: 0 is accepted beside the canonical output."""


def wrong_result(inputs: Any, expected: Any, actual: Any) -> str:
    """The paper's text for a wrong result (its f-string: str() of each value)."""
    return (
        f"The results aren't as expected.\nInput: {inputs}\n"
        f"Expected Output: {expected}\nActual Output: {actual}"
    )


def missing_function(entry_point: str) -> str:
    return (
        f"Please rename your function to {entry_point} as there is no function named {entry_point}."
    )


class TimedOut(BaseException):
    """The per-input (or per-part) time limit passed. A BaseException, so that candidate code
    catching Exception does not swallow it."""


class WrongResult(Exception):
    def __init__(self, inputs: Any, expected: Any, actual: Any) -> None:
        super().__init__(wrong_result(inputs, expected, actual))
        self.inputs = inputs


class MissingFunction(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise TimedOut()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def swallowed_io() -> Iterator[None]:
    """The candidate's prints go nowhere: a program that prints a lot must not slow the judge
    or fill a pipe."""
    sink = _Discard()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


# ---- verdicts --------------------------------------------------------------------------------
def passed() -> dict[str, str]:
    return {"status": "passed", "detail": "", "feedback": ""}


def failure(error: BaseException, limit: float | None = None) -> dict[str, str]:
    """The verdict for what ended a part: a wrong result, a time-out, or an exception."""
    if isinstance(error, TimedOut):
        detail = f"timed out (limit {limit:g} s)" if limit else "timed out"
        return {"status": "timeout", "detail": detail, "feedback": TIMED_OUT}
    if isinstance(error, WrongResult):
        text = str(error)
        return {"status": "failed", "detail": _one_line(text, 200), "feedback": _cut(text)}
    if isinstance(error, MissingFunction):
        return {"status": "failed", "detail": str(error), "feedback": str(error)}
    trace = candidate_traceback(error)
    last = next((line for line in reversed(trace.splitlines()) if line.strip()), "")
    return {"status": "failed", "detail": last.strip()[:300], "feedback": _cut(trace)}


def candidate_traceback(error: BaseException) -> str:
    """The traceback from the candidate's first frame on (the judge's own frames say nothing
    to the model); the whole of it if no frame is the candidate's."""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return candidate_traceback_text(trace)


def candidate_traceback_text(trace: str) -> str:
    """From the candidate's first frame; failing that (an assert of the tests that is not a
    comparison, e.g. HumanEval/32's ``assert math.fabs(poly(...)) < 1e-4``), from the tests'
    first frame: the judge's own frames (and this machine's paths) never reach the model."""
    for name in (CANDIDATE_FILE, TEST_FILE):
        start = trace.find(f'File "{name}"')
        if start >= 0:
            return trace[start:]
    return trace


def _cut(text: str) -> str:
    return text[:FEEDBACK_LIMIT]


def _one_line(text: str, limit: int) -> str:
    return " / ".join(line for line in text.splitlines() if line.strip())[:limit]


# ---- the candidate ---------------------------------------------------------------------------
def load_candidate(source: str, entry_point: str) -> tuple[dict[str, Any], Callable[..., Any]]:
    namespace: dict[str, Any] = {"__name__": "__candidate__"}
    with swallowed_io():
        exec(compile(source, CANDIDATE_FILE, "exec"), namespace)
    function = namespace.get(entry_point)
    if not callable(function):
        raise MissingFunction(missing_function(entry_point))
    return namespace, function


class Recorder:
    """Stands for the candidate in the tests and keeps the arguments of its last call (as
    they were before the call), for the "Input:" of a wrong result. The candidate's own
    recursive calls go to the function itself, not through here."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.last: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            snapshot: Any = copy.deepcopy(list(args))
        except Exception:
            snapshot = list(args)
        if kwargs:
            snapshot = [*snapshot, kwargs]
        self.last = snapshot
        with swallowed_io():
            return self.function(*args, **kwargs)


# ---- tests written as asserts (MBPP's assertion, HumanEval's check) --------------------------
_ACTUAL, _EXPECTED, _FAIL = "_oci_actual", "_oci_expected", "_oci_wrong_result"


class _ExplainAsserts(ast.NodeTransformer):
    """Rewrites ``assert <actual> == <expected>`` (and ``math.isclose(actual, expected, ...)``,
    ``f(x)``, ``not f(x)``) so that a failure says which values differed; the test itself is
    the same. Other asserts are left alone: their failure is a traceback."""

    def visit_Assert(self, node: ast.Assert) -> Any:
        split = _actual_and_expected(node.test)
        if split is None:
            return node
        actual, expected, condition = split
        statements = [
            ast.Assign([ast.Name(_ACTUAL, ast.Store())], actual),
            ast.Assign([ast.Name(_EXPECTED, ast.Store())], expected),
            ast.If(
                ast.UnaryOp(ast.Not(), condition),
                [
                    ast.Expr(
                        ast.Call(
                            ast.Name(_FAIL, ast.Load()),
                            [ast.Name(_ACTUAL, ast.Load()), ast.Name(_EXPECTED, ast.Load())],
                            [],
                        )
                    )
                ],
                [],
            ),
        ]
        for statement in statements:
            ast.copy_location(statement, node)
            ast.fix_missing_locations(statement)
        return statements


def _actual_and_expected(test: ast.expr) -> tuple[ast.expr, ast.expr, ast.expr] | None:
    actual = ast.Name(_ACTUAL, ast.Load())
    expected = ast.Name(_EXPECTED, ast.Load())
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        condition = ast.Compare(actual, [ast.Eq()], [expected])
        return test.left, test.comparators[0], condition
    if (
        isinstance(test, ast.Call)
        and _name_of(test.func) == "isclose"
        and len(test.args) == 2
        and not any(isinstance(a, ast.Starred) for a in test.args)
    ):
        condition = ast.Call(test.func, [actual, expected], test.keywords)
        return test.args[0], test.args[1], condition
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return test.operand, ast.Constant(False), ast.UnaryOp(ast.Not(), actual)
    if isinstance(test, ast.Call):
        return test, ast.Constant(True), actual
    return None


def _name_of(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def judge_asserts(
    part: dict[str, Any], namespace: dict[str, Any], function: Callable[..., Any]
) -> dict[str, str]:
    recorder = Recorder(function)
    entry_point = part["entry_point"]
    canonical = _canonical(part, entry_point) if part.get("also_canonical") else None

    def wrong(actual: Any, expected: Any) -> None:
        if canonical is not None and recorder.last is not None:
            # A disputed problem: the canonical solution's output is right, too.
            with contextlib.suppress(Exception), swallowed_io():
                if same_output(entry_point, actual, canonical(*copy.deepcopy(recorder.last)), 0):
                    return
        raise WrongResult(recorder.last, expected, actual)

    tree = _ExplainAsserts().visit(ast.parse(part["tests"]))
    code = compile(ast.fix_missing_locations(tree), TEST_FILE, "exec")
    tests = dict(namespace)  # the tests see the candidate's names, the candidate not theirs
    tests.update({"__name__": "__tests__", _FAIL: wrong})
    tests.setdefault("math", math)  # MBPP's asserts call math.isclose without importing math
    if part["kind"] == "asserts":
        tests[entry_point] = recorder
    limit = float(part["time_limit"])
    try:
        with time_limit(limit):
            exec(code, tests)
            if part["kind"] == "check":
                tests["check"](recorder)
    except BaseException as error:
        return failure(error, limit)
    return passed()


# ---- differential testing (MBPP+) ------------------------------------------------------------
def restore_inputs(task_id: str, inputs: Any) -> list[Any]:
    """MBPP+ keeps its inputs as JSON, which has no tuples, sets or complex numbers: the types
    its functions take are restored per problem, as EvalPlus's loader does."""
    if not isinstance(inputs, list):  # Mbpp/793 has an empty object for its plus inputs
        return []
    number = int(task_id.rsplit("/", 1)[-1])

    def deep_tuple(value: Any) -> Any:
        return tuple(deep_tuple(v) for v in value) if isinstance(value, list) else value

    if number in _EVERY_ARG_A_TUPLE:
        return [[tuple(arg) for arg in args] for args in inputs]
    if number in _EVERY_ARG_A_LIST_OF_TUPLES:
        return [[[tuple(x) for x in arg] for arg in args] for args in inputs]
    if number in _FIRST_ARG_A_LIST_OF_TUPLES:
        return [[[tuple(x) for x in args[0]], args[1]] for args in inputs]
    if number in (106, 750):
        return [[args[0], tuple(args[1])] for args in inputs]
    if number == 115:  # EvalPlus's loader turns empty members into {} (a dict), kept as it is
        return [[[set(x) if isinstance(x, list) and x else {} for x in args[0]]] for args in inputs]
    if number == 124:
        return [[float(args[0]), complex(args[1])] for args in inputs]
    if number in _FIRST_ARG_A_TUPLE:
        return [[tuple(args[0]), args[1]] for args in inputs]
    if number in (259, 401, 445):
        return [[tuple(tuple(x) for x in arg) for arg in args] for args in inputs]
    if number == 278:
        return [[tuple(tuple(x) if isinstance(x, list) else x for x in args[0])] for args in inputs]
    if number == 307:
        return [[tuple(args[0]), args[1], args[2]] for args in inputs]
    if number == 722:
        return [[{k: tuple(v) for k, v in args[0].items()}, *args[1:]] for args in inputs]
    if number == 252:
        return [[complex(args[0])] for args in inputs]
    if number in (580, 615, 791):
        return [deep_tuple(args) for args in inputs]
    return inputs


_EVERY_ARG_A_TUPLE = frozenset(
    {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630}
    | {726, 740, 744, 809}
)
_EVERY_ARG_A_LIST_OF_TUPLES = frozenset(
    {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
)
_FIRST_ARG_A_LIST_OF_TUPLES = frozenset({75, 413, 444, 753})
_FIRST_ARG_A_TUPLE = frozenset({250, 405, 446, 617, 720, 763, 808})


def is_floats(value: Any) -> bool:
    """A float, or a list or tuple of floats only: compared within 1e-6 at least."""
    if isinstance(value, float):
        return True
    if isinstance(value, list | tuple):
        return all(isinstance(item, float) for item in value)
    return False


def close(actual: Any, expected: Any, atol: float) -> bool:
    """numpy.testing.assert_allclose(actual, expected, rtol=1e-7, atol=atol) as EvalPlus uses
    it, without numpy: numbers within atol + rtol * |expected|, nested in lists and tuples,
    NaN equal to NaN."""
    if isinstance(expected, list | tuple):
        if not isinstance(actual, list | tuple) or len(actual) != len(expected):
            return False
        return all(close(a, e, atol) for a, e in zip(actual, expected, strict=True))
    numbers = int | float | complex
    if isinstance(actual, numbers) and isinstance(expected, numbers):
        if isinstance(actual, complex) or isinstance(expected, complex):
            return abs(complex(actual) - complex(expected)) <= atol + RTOL * abs(expected)
        if math.isnan(actual) or math.isnan(expected):
            return math.isnan(actual) and math.isnan(expected)
        if math.isinf(actual) or math.isinf(expected):
            return actual == expected
        return abs(actual - expected) <= atol + RTOL * abs(expected)
    return bool(actual == expected)


def same_output(entry_point: str, actual: Any, expected: Any, atol: float) -> bool:
    if entry_point in ANY_OUTPUT_TASKS:
        return True
    if entry_point in ZERO_ALSO_TASKS and actual == 0:
        return True
    if entry_point in OUTPUT_NOT_NONE_TASKS:  # expected: whether the canonical gave a value
        return actual == expected if isinstance(actual, bool) else expected == (actual is not None)
    try:
        if actual == expected:
            return True
    except Exception:
        return False
    if atol == 0 and is_floats(expected):
        atol = 1e-6
    return atol != 0 and close(actual, expected, atol)


def _canonical(part: dict[str, Any], entry_point: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"__name__": "__canonical__"}
    exec(compile(part["canonical"], "<canonical>", "exec"), namespace)
    function: Callable[..., Any] = namespace[entry_point]
    return function


def expected_outputs(part: dict[str, Any], inputs: list[Any]) -> tuple[list[Any], list[float]]:
    """The canonical solution's outputs on ``inputs``, and its time on each."""
    function = _canonical(part, part["entry_point"])
    outputs, times = [], []
    for args in inputs:
        started = time.perf_counter()
        with swallowed_io():
            output = function(*copy.deepcopy(args))
        times.append(time.perf_counter() - started)
        if part["entry_point"] in OUTPUT_NOT_NONE_TASKS:
            output = output is not None
        outputs.append(output)
    return outputs, times


def judge_inputs(
    inputs: list[Any],
    expected: list[Any],
    times: list[float],
    function: Callable[..., Any],
    part: dict[str, Any],
) -> dict[str, str]:
    """The first input whose output differs, or that takes too long or raises, fails."""
    entry_point, atol = part["entry_point"], float(part.get("atol") or 0)
    for args, want, seconds in zip(inputs, expected, times, strict=True):
        limit = max(MIN_TIME_LIMIT, TIME_LIMIT_FACTOR * seconds)
        try:
            with time_limit(limit), swallowed_io():
                got = function(*copy.deepcopy(args))
            if not same_output(entry_point, got, want, atol):
                raise WrongResult(args, want, got)
        except BaseException as error:
            return failure(error, limit)
    return passed()


def judge_differential(part: dict[str, Any], source: str) -> dict[str, Any]:
    """MBPP+'s verdict: the base inputs, then the plus inputs, each judged apart; the feedback
    is composed as the paper's harness does for its "plus" version (the base failure first,
    with the plus failure after it when both are wrong results)."""
    task_id = part["task_id"]
    base = restore_inputs(task_id, part["base_input"])
    plus = restore_inputs(task_id, part["plus_input"])
    base_expected, base_times = expected_outputs(part, base)
    plus_expected, plus_times = expected_outputs(part, plus)
    try:
        _, function = load_candidate(source, part["entry_point"])
    except BaseException as error:
        verdict = failure(error)
        return {**verdict, "base": verdict, "plus": verdict}
    on_base = judge_inputs(base, base_expected, base_times, function, part)
    on_plus = judge_inputs(plus, plus_expected, plus_times, function, part)
    if on_base["status"] != "passed":
        feedback = on_base["feedback"]
        if feedback.startswith("The results aren't as expected.") and on_plus["status"] != "passed":
            feedback += "\n" + on_plus["feedback"]
        head = on_base
    else:
        head, feedback = on_plus, on_plus["feedback"]
    return {
        "status": head["status"],
        "detail": ("base: " if head is on_base else "plus: ") + head["detail"]
        if head["status"] != "passed"
        else "",
        "feedback": feedback,
        "base": on_base,
        "plus": on_plus,
        "inputs": [len(base), len(plus)],
    }


# ---- the job ---------------------------------------------------------------------------------
def run(job: dict[str, Any]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    source = job["code"]
    for part in job["parts"]:
        part = {"entry_point": job["entry_point"], **part}
        if part["kind"] == "inputs":
            verdicts[part["name"]] = judge_differential(part, source)
        else:
            try:
                namespace, function = load_candidate(source, job["entry_point"])
            except BaseException as error:
                verdicts[part["name"]] = failure(error)
            else:
                verdicts[part["name"]] = judge_asserts(part, namespace, function)
        _write(job["verdict"], verdicts)
    return verdicts


def _write(path: str, verdicts: dict[str, Any]) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(verdicts, handle, default=repr)
    os.replace(temporary, path)


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    limit = job.get("memory_limit")
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    run(job)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


__all__ = ["FEEDBACK_LIMIT", "TIMED_OUT", "missing_function", "restore_inputs", "wrong_result"]
