"""oci-eval: the OpenCodeInterpreter benchmarks (HumanEval, MBPP, MBPP+ with execution
feedback) through the product's own refinement loop: the model's own run in real Jupyter
kernels as the feedback (``--feedback own``), or the paper's oracle feedback from the
benchmark's tests (``--feedback tests``).

``python -m oci_jupyter.evaluation --help`` (or ``oci-eval``); see docs/benchmarks.md.
"""

from __future__ import annotations

from .benchmarks import BENCHMARKS, Benchmark, get_benchmark
from .humaneval import load_problems
from .problems import Problem, select
from .report import passed_at, summarize
from .runner import EndpointModel, EngineModel, EvalSettings, run_evaluation, solve

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "EndpointModel",
    "EngineModel",
    "EvalSettings",
    "Problem",
    "get_benchmark",
    "load_problems",
    "passed_at",
    "run_evaluation",
    "select",
    "solve",
    "summarize",
]
