"""Tests written as asserts: MBPP's original ``assertion`` (``asserts``) and HumanEval's
``check(candidate)`` (``check``), run against the candidate in the judging process. A failed
comparison says which values differed, as the paper's feedback shows them."""

from __future__ import annotations

import ast
import contextlib
import copy
import math
from collections.abc import Callable
from typing import Any

from .differential import canonical_function, same_output
from .verdicts import TEST_FILE, Recorder, WrongResult, failure, passed, swallowed_io, time_limit

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
    canonical = canonical_function(part, entry_point) if part.get("also_canonical") else None

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
