"""oci-eval: the OpenCodeInterpreter benchmark protocol (HumanEval with execution feedback)
through real Jupyter kernels, driving the product's own refinement loop.

``python -m oci_jupyter.evaluation --help`` (or ``oci-eval``); see docs/benchmarks.md.
"""

from __future__ import annotations

from .humaneval import Problem, load_problems, select
from .report import passed_at, summarize
from .runner import EndpointModel, EngineModel, EvalSettings, run_evaluation, solve

__all__ = [
    "EndpointModel",
    "EngineModel",
    "EvalSettings",
    "Problem",
    "load_problems",
    "passed_at",
    "run_evaluation",
    "select",
    "solve",
    "summarize",
]
