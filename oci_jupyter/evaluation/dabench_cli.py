"""``oci-eval dabench``: InfiAgent-DABench through the chat's loop.

    oci-eval dabench --limit 2                    # the first two questions (id order)
    oci-eval dabench --subset quick --out DIR     # the fixed 60-question subset
    oci-eval dabench --ids 0,5 --protocol rewrite
    oci-eval dabench --data PATH                  # the data folder (default ../shared/data/dabench)
    oci-eval dabench --out DIR --resume           # continue an interrupted run
    oci-eval dabench --summarize DIR              # rewrite DIR's summary from its records

Each question is a chat request (mode ``chat``, the product's system prompt, default budgets
and ``read_results``) in a fresh Jupyter kernel whose working folder holds the question's CSV
file; the loop's final words are scored by the benchmark's rules (ABQ, PSAQ, UASQ). See
:mod:`.dabench_runner` and docs/benchmarks.md. The data (CC BY-NC 4.0) is never part of the
package: ``--data`` names its folder.

Exit status: 0 done; 1 the model failed during the run (finished questions are kept);
2 bad options, unknown questions, missing or altered data, or a model/server that cannot be
reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..prompts import REQUEST_HINT, SYSTEM_PROMPT
from .command import (
    CliError,
    add_model_arguments,
    add_run_arguments,
    check_model_options,
    check_resume,
    close_model,
    open_model,
    out_folder,
    positive_float,
    positive_int,
    run_command,
    temperature,
    version_of,
)
from .dabench import (
    QUICK_RULE,
    REQUEST_TEMPLATE,
    SUBSETS,
    DataSet,
    Question,
    load,
    select,
)
from .dabench_report import summarize, write_reports
from .dabench_runner import PROTOCOL_TEXT, run_dabench
from .dabench_settings import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    DABenchSettings,
    product_defaults,
)
from .problems import DataUnavailable, UnknownProblem
from .run_folder import SUMMARY_MD, RecordStore, load_run, wall_seconds

PROTOCOL_KEYS = (
    "benchmark",
    "protocol",
    "model",
    "temperature",
    "max_tokens",
    "time_limit",
    "budgets",
    "read_results",
    "seed",
    "request_template",
    "data_sha256",
)
"""What must not change between the sessions of one run (``--resume``)."""


def build_parser() -> argparse.ArgumentParser:
    defaults = product_defaults()
    parser = argparse.ArgumentParser(
        prog="oci-eval dabench",
        description=(
            "InfiAgent-DABench (data-analysis questions over CSV files) through the chat's "
            "loop: each question is a chat request in a fresh Jupyter kernel whose working "
            "folder holds its CSV file; the loop's final words are scored by the benchmark's "
            "rules (ABQ, PSAQ, UASQ)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(parser)
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=DEFAULT_PROTOCOL,
        help="; ".join(f"{name} = {text}" for name, text in PROTOCOL_TEXT.items()),
    )
    protocol.add_argument(
        "--temperature",
        type=temperature,
        default=0.0,
        help="sampling temperature (greedy by default, as the other benchmarks; the sidebar "
        "samples at 0.2)",
    )
    protocol.add_argument(
        "--max-tokens",
        type=positive_int,
        default=defaults.reply_tokens,
        help="per reply, at most half the window (the server's c.OCI.default_max_tokens)",
    )
    protocol.add_argument(
        "--time-limit",
        type=positive_float,
        default=defaults.time_limit,
        help="seconds for each run of the model's code (the sidebar's default)",
    )

    chosen = parser.add_argument_group("questions")
    chosen.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="the DABench data folder (questions, labels, tables/, SHA256SUMS); default "
        "../shared/data/dabench beside the repository or the current folder",
    )
    chosen.add_argument(
        "--ids", "--problems", dest="ids", help="comma-separated question ids, e.g. 0,5,DABench/6"
    )
    chosen.add_argument("--subset", choices=SUBSETS, help=f"a fixed subset: quick = {QUICK_RULE}")
    chosen.add_argument("--limit", type=positive_int, help="only the first N questions")
    chosen.add_argument(
        "--list", action="store_true", help="print the chosen ids, levels and files and exit"
    )

    add_run_arguments(parser, unit="questions", workers=1, prefix="oci-eval-dabench")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def command() -> int:
        check_model_options(args)
        if args.resume and args.out is None:
            raise CliError("--resume needs --out DIR (the run to continue)")
        if args.summarize is not None:
            return _summarize_only(args.summarize)
        data = _load(args.data)
        questions = _select(data, args)
        if args.list:
            for q in questions:
                print(f"{q.task_id}\t{q.level}\t{','.join(q.concepts)}\t{q.file_name}")
            return 0
        return asyncio.run(_evaluate(args, data, questions))

    return run_command(parser, "oci-eval dabench", "questions", command)


def _load(path: Path | None) -> DataSet:
    try:
        return load(path)
    except DataUnavailable as exc:
        raise CliError(str(exc)) from exc


def _select(data: DataSet, args: argparse.Namespace) -> list[Question]:
    ids = [part for part in (args.ids or "").split(",") if part.strip()] or None
    if ids and args.subset:
        raise CliError("--ids and --subset each choose the questions: give one of them")
    try:
        return select(data.questions, ids, args.subset, args.limit)
    except UnknownProblem as exc:
        raise CliError(str(exc)) from exc


def _scope(args: argparse.Namespace, count: int) -> str:
    if args.ids:
        return f"{count} chosen ({args.ids})"
    subset = f"--subset {args.subset}, " if args.subset else ""
    if args.limit:
        return f"{subset}the first {count} (id order)"
    return f"{subset}all {count}"


async def _evaluate(args: argparse.Namespace, data: DataSet, questions: list[Question]) -> int:
    out = out_folder(args, "oci-eval-dabench")
    settings = DABenchSettings.product(
        protocol=args.protocol,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        time_limit=args.time_limit,
        workers=args.workers,
    )
    model, engine, described = await open_model(args)
    try:
        config: dict[str, Any] = {
            "benchmark": "dabench",
            **settings.describe(),
            **described,
            "questions": _scope(args, len(questions)),
            **({"subset": args.subset, "subset_rule": QUICK_RULE} if args.subset else {}),
            **data.describe(),
            "request_template": REQUEST_TEMPLATE,
            "request_hint": REQUEST_HINT,
            "system_prompt": "oci_jupyter.prompts.SYSTEM_PROMPT (the product's own, the chat's)",
            "system_prompt_text": SYSTEM_PROMPT,
            "kernel": "python3 (jupyter_client), a fresh kernel per question; its working "
            "folder holds a copy of the question's CSV file only",
            "kernel_packages": _kernel_packages(),
            "oci_jupyter": version_of("oci_jupyter"),
        }
        if args.resume:
            check_resume(out, config, PROTOCOL_KEYS)
        print(
            f"oci-eval dabench: --protocol {settings.protocol}: {len(questions)} questions "
            f"-> {out}",
            file=sys.stderr,
        )
        summary = await run_dabench(
            questions,
            model,  # type: ignore[arg-type]  # EngineModel / EndpointModel: a ChatModel
            settings,
            out,
            config=config,
            resume=args.resume,
            progress=not args.no_progress,
        )
    finally:
        await close_model(model, engine)
    print((out / SUMMARY_MD).read_text(encoding="utf-8") if summary else "")
    print(f"Records, summary and plot: {out}/", file=sys.stderr)
    return 0


def _kernel_packages() -> dict[str, str]:
    """The data packages the kernel's code may import, as installed here (the kernel is this
    environment's python3): a question that needs a missing one fails."""
    return {
        name: version_of(name)
        for name in ("pandas", "numpy", "scipy", "scikit-learn", "statsmodels", "matplotlib")
    }


def _summarize_only(folder: Path) -> int:
    store = RecordStore(folder)
    records = [r for r in store.load() if r.get("final")]
    if not records:
        raise CliError(f"{folder} has no {store.path.name}")
    run = load_run(folder)
    latest = {r["task_id"]: r for r in records}
    wall = wall_seconds(run) or None
    summary = summarize(
        list(latest.values()),
        config=dict(run.get("config", {})),
        wall_seconds=wall,
        selected=int(run.get("selected") or len(latest)),
    )
    write_reports(folder, summary)
    print((folder / SUMMARY_MD).read_text(encoding="utf-8"))
    return 0


__all__ = ["build_parser", "main"]
