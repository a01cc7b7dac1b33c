"""Differential testing, as EvalPlus does it for MBPP+: the canonical solution runs on every
input first (its results are the expected outputs, its times set each input's time limit),
then the candidate runs on the same inputs (a deep copy each time, with its output
swallowed), its ``base_input`` part and its ``plus_input`` part judged apart.

EvalPlus's own code is not imported (docs/design.md, "oci-eval and the libraries"): its
loader's input restoration and its comparison are re-stated here for the 2023-11-16 MBPP+
file, with the special oracles of that release.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

from .verdicts import (
    WrongResult,
    failure,
    load_candidate,
    passed,
    swallowed_io,
    time_limit,
)

MIN_TIME_LIMIT = 1.0
"""Seconds per input at least, and a multiple of the canonical solution's time on it: the
settings of the paper's evaluation scripts (EvalPlus's ``--min-time-limit 1
--gt-time-limit-factor 4``)."""
TIME_LIMIT_FACTOR = 4.0
RTOL = 1e-07
"""numpy.testing.assert_allclose's default relative tolerance, which EvalPlus compares with."""

# EvalPlus's special oracles for MBPP+ (evalplus/eval/_special_oracle.py, late 2023, as the
# paper's harness applies them): tasks whose outputs cannot be compared as values.
OUTPUT_NOT_NONE_TASKS = frozenset({"check_str", "text_match_three", "text_starta_endb"})
ANY_OUTPUT_TASKS = frozenset({"are_equivalent"})
"""Mbpp/164: the canonical answer is disputed; every output is accepted."""
ZERO_ALSO_TASKS = frozenset({"sum_div"})
"""Mbpp/295: 0 is accepted beside the canonical output."""


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


def canonical_function(part: dict[str, Any], entry_point: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"__name__": "__canonical__"}
    exec(compile(part["canonical"], "<canonical>", "exec"), namespace)
    function: Callable[..., Any] = namespace[entry_point]
    return function


def expected_outputs(part: dict[str, Any], inputs: list[Any]) -> tuple[list[Any], list[float]]:
    """The canonical solution's outputs on ``inputs``, and its time on each."""
    function = canonical_function(part, part["entry_point"])
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
