"""``oci-eval``: HumanEval, MBPP and MBPP+ through the product's loop, with execution feedback;
``oci-eval dabench``: InfiAgent-DABench through the chat's loop (:mod:`.dabench_cli`).

    oci-eval --limit 10                          # HumanEval, the bundled model, in this process
    oci-eval mbpp --limit 10                     # MBPP (and MBPP+) problems
    oci-eval mbppplus --feedback tests           # MBPP+, the paper's oracle feedback protocol
    oci-eval --prompt paper                      # the paper harness's first turn, word for word
    oci-eval --engine openai --base-url http://gpu:8000/v1
    oci-eval --url http://127.0.0.1:8888/ --token ...    # a running JupyterLab's model
    oci-eval --out DIR --resume                   # continue an interrupted run
    oci-eval mbppplus --feedback tests --first-turn-from runs/mbpp-tests --out DIR  # paired
    oci-eval dabench --subset quick --out DIR    # InfiAgent-DABench through the chat's loop

Exit status: 0 done; 1 the model failed during the run (finished problems are kept);
2 bad options, unknown problems, or a model/server that cannot be reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .benchmarks import BENCHMARKS, DEFAULT_BENCHMARK, get_benchmark
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
from .feedback import DEFAULT_FEEDBACK, FEEDBACK_PROTOCOLS, PROTOCOL_TEXT
from .models import ReplyModel
from .problems import DataUnavailable, UnknownProblem, select
from .prompting import DEFAULT_PROMPT, PROMPT_TEXT, PROMPTS, SYSTEM_PROMPT_TEXT
from .replay import (
    BEFORE_THE_MODEL,
    GENERATED,
    REPLAYED,
    ReplayModel,
    ReplayRefused,
    SourceRun,
    check_same_replies,
    load_source,
)
from .report import by_problem, markdown, summarize, write_reports
from .run_folder import SUMMARY_MD, RecordStore, load_run, wall_seconds
from .runner import run_evaluation
from .settings import (
    DEFAULT_SUCCESS,
    RECORDED_BEFORE,
    SUCCESS_RULES,
    EvalSettings,
    ProtocolMismatch,
)

DABENCH = "dabench"
"""The first word of ``oci-eval dabench`` (:mod:`.dabench_cli`, options of its own)."""
# Settings that must not change between the sessions of one run (--resume), and the value
# of those that runs recorded before they existed had.
PROTOCOL_KEYS = (
    "benchmark",
    "feedback",
    "model",
    "turns",
    "success",
    "prompt",
    "temperature",
    "max_tokens",
    "time_limit",
    "first_turn",  # replayed turn-1 replies (--first-turn-from) or generated ones
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oci-eval",
        description=(
            "pass@1 by turn with execution feedback on HumanEval, MBPP or MBPP+, through the "
            "product's refinement loop. --feedback own (default): the model's code runs in a "
            "fresh Jupyter kernel and the result of its own run is the next turn's feedback. "
            "--feedback tests: the benchmark's hidden tests judge each answer and their "
            "failure is the feedback (the OpenCodeInterpreter paper's protocol, an oracle). "
            "Either way each turn's code is judged by the hidden tests in a separate process."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "benchmark",
        nargs="?",
        choices=tuple(BENCHMARKS),
        default=DEFAULT_BENCHMARK,
        help="humaneval (164 problems); mbpp or mbppplus (399 problems, both scores "
        "reported; the word names the run's own score and, under --feedback tests, the "
        "tests that give the feedback). Also: dabench (InfiAgent-DABench data-analysis "
        "questions through the chat's loop; first word only, its options: oci-eval dabench "
        "--help)",
    )
    add_model_arguments(parser)

    protocol = parser.add_argument_group("protocol")
    protocol.add_argument(
        "--turns", type=positive_int, default=2, help="replies per problem (2 = one feedback)"
    )
    protocol.add_argument(
        "--success",
        choices=SUCCESS_RULES,
        default=DEFAULT_SUCCESS,
        help="when an answer stands: first-run = at its first run without errors (the loop "
        "stops there, the paper's protocol); read = the model also reads that run's output, "
        "then answers in words or gives the function again (the notebook's loop)",
    )
    protocol.add_argument(
        "--feedback",
        choices=FEEDBACK_PROTOCOLS,
        default=DEFAULT_FEEDBACK,
        help="own = the model's own run in a kernel is the feedback (a notebook user's "
        "protocol); tests = the hidden tests' failure is the feedback (the paper's protocol: "
        "an ORACLE, it uses the benchmark's tests)",
    )
    protocol.add_argument(
        "--prompt",
        choices=PROMPTS,
        default=DEFAULT_PROMPT,
        help="the first turn: product = the product's system prompt and our request for the "
        "complete function; paper = the OpenCodeInterpreter paper harness's user turn, word for "
        "word, with no system message (to measure what the prompt accounts for)",
    )
    protocol.add_argument(
        "--first-turn-from",
        type=Path,
        metavar="RUN_DIR",
        help="paired runs: take turn 1's replies from RUN_DIR's records instead of generating "
        "them, for every problem whose first turn is word for word RUN_DIR's (the rest is "
        "generated); greedy only, and RUN_DIR must have the same model, model file, "
        "--max-tokens, --prompt and context length. The runs then differ only in their "
        "feedback turns",
    )
    protocol.add_argument("--temperature", type=temperature, default=0.0)
    protocol.add_argument("--max-tokens", type=positive_int, default=512, help="per reply")
    protocol.add_argument(
        "--time-limit",
        type=positive_float,
        default=10.0,
        help="seconds for each run of the model's code and of the hidden tests",
    )

    chosen = parser.add_argument_group("problems")
    chosen.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="the benchmark's data file instead of the default one: HumanEval.jsonl(.gz), or "
        "EvalPlus's MbppPlus.jsonl(.gz) of 2023-11-16 (checked by its sha256)",
    )
    chosen.add_argument("--problems", help="comma-separated ids, e.g. HumanEval/0,HumanEval/5")
    chosen.add_argument("--limit", type=positive_int, help="only the first N problems")
    chosen.add_argument("--list", action="store_true", help="print the problem ids and exit")

    add_run_arguments(parser, unit="problems", workers=2, prefix="oci-eval")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == [DABENCH]:  # a benchmark of its own options (oci-eval dabench --help)
        from .dabench_cli import main as dabench_main

        return dabench_main(words[1:])
    parser = build_parser()
    args = parser.parse_args(argv)

    def command() -> int:
        _check_options(args)
        if args.list:
            for problem in _load(args):
                print(f"{problem.task_id}\t{problem.entry_point}")
            return 0
        if args.summarize is not None:
            return _summarize_only(args.summarize)
        return asyncio.run(_evaluate(args))

    return run_command(parser, "oci-eval", "problems", command)


def _check_options(args: argparse.Namespace) -> None:
    if args.feedback == "tests" and args.success == "read":
        raise CliError(
            "--success read goes with --feedback own: under tests the hidden tests judge each "
            "answer and nothing runs whose output the model could read"
        )
    check_model_options(args)
    if args.resume and args.out is None:
        raise CliError("--resume needs --out DIR (the run to continue)")


# ---- the evaluation --------------------------------------------------------------------------
def _load(args: argparse.Namespace) -> list[Any]:
    try:
        return get_benchmark(args.benchmark).load(args.data)
    except DataUnavailable as exc:
        raise CliError(str(exc)) from exc


async def _evaluate(args: argparse.Namespace) -> int:
    try:
        problems = select(_load(args), _ids(args.problems), args.limit)
    except UnknownProblem as exc:
        raise CliError(str(exc)) from exc
    out = out_folder(args, "oci-eval")
    settings = EvalSettings(
        turns=args.turns,
        success=args.success,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        time_limit=args.time_limit,
        workers=args.workers,
        benchmark=args.benchmark,
        feedback=args.feedback,
        prompt=args.prompt,
    )
    source = _first_turn_source(args) if args.first_turn_from is not None else None
    model, engine, described = await open_model(args)
    try:
        config = {
            "benchmark": settings.benchmark,
            "feedback": settings.feedback,
            "feedback_protocol": PROTOCOL_TEXT[settings.feedback],
            "prompt": settings.prompt,
            "prompt_protocol": PROMPT_TEXT[settings.prompt],
            **described,
            "turns": settings.turns,
            "success": settings.success,
            "temperature": settings.temperature,
            "max_tokens": settings.max_tokens,
            "time_limit": settings.time_limit,
            "workers": settings.workers,
            "problems": _scope(args, len(problems)),
            "system_prompt": SYSTEM_PROMPT_TEXT[settings.prompt],
            "oci_jupyter": version_of("oci_jupyter"),
            "first_turn": GENERATED,
        }
        asked: ReplyModel = model
        if source is not None:
            asked = _replaying(args, source, model, problems, settings, config)
        if args.resume:
            check_resume(out, config, PROTOCOL_KEYS, RECORDED_BEFORE)
        print(
            f"oci-eval: {args.benchmark}, --prompt {args.prompt}, --feedback {args.feedback}: "
            f"{len(problems)} problems -> {out}",
            file=sys.stderr,
        )
        if source is not None:
            replayed = int(config["first_turns_replayed"])
            print(
                f"oci-eval: turn 1 replayed from {args.first_turn_from} for {replayed} of "
                f"{len(problems)} problems (the same first turn, greedy); generated for "
                f"{len(problems) - replayed}",
                file=sys.stderr,
            )
        if args.feedback == "tests":
            print(f"oci-eval: {PROTOCOL_TEXT['tests']}", file=sys.stderr)
        try:
            summary = await run_evaluation(
                problems,
                asked,
                settings,
                out,
                config=config,
                resume=args.resume,
                progress=not args.no_progress,
            )
        except ProtocolMismatch as exc:
            raise CliError(str(exc)) from exc
    finally:
        await close_model(model, engine)
    print(markdown(summary))
    print(f"Records, summary and plot: {out}/", file=sys.stderr)
    return 0


def _first_turn_source(args: argparse.Namespace) -> SourceRun:
    """The run to replay turn 1 from, checked as far as it can be before the model loads."""
    try:
        source = load_source(args.first_turn_from)
        mine = {"temperature": args.temperature, "max_tokens": args.max_tokens}
        check_same_replies(
            source.config,
            {**mine, "prompt": args.prompt},
            BEFORE_THE_MODEL,
            folder=args.first_turn_from,
        )
    except ReplayRefused as exc:
        raise CliError(str(exc)) from exc
    return source


def _replaying(
    args: argparse.Namespace,
    source: SourceRun,
    model: ReplyModel,
    problems: Sequence[Any],
    settings: EvalSettings,
    config: dict[str, Any],
) -> ReplayModel:
    """``model`` behind the source's first replies; ``config`` records the pairing."""
    try:
        check_same_replies(source.config, config, folder=args.first_turn_from)
        replaying = ReplayModel(model, source.replies_for(problems, settings))
    except ReplayRefused as exc:
        raise CliError(str(exc)) from exc
    benchmark = get_benchmark(settings.benchmark)
    replayed = sum(replaying.replays(settings.first_turn(benchmark, p)) for p in problems)
    if not replayed:
        raise CliError(
            f"--first-turn-from {args.first_turn_from}: none of the {len(problems)} problems "
            "has a first turn there with the same messages (another benchmark, or problems it "
            "has not finished): nothing to replay"
        )
    config.update(
        first_turn=REPLAYED,
        first_turn_from=str(args.first_turn_from),
        first_turns_replayed=replayed,
    )
    return replaying


def _ids(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [part for part in text.split(",") if part.strip()]


def _scope(args: argparse.Namespace, count: int) -> str:
    if args.problems:
        return f"{count} chosen ({args.problems})"
    if args.limit:
        return f"the first {count}"
    return f"all {count}"


def _summarize_only(folder: Path) -> int:
    store = RecordStore(folder)
    records = store.load()
    if not records:
        raise CliError(f"{folder} has no {store.path.name}")
    run = load_run(folder)
    config = dict(run.get("config", {}))
    turns = int(config.get("turns") or max(int(r["turn"]) for r in records))
    wall = wall_seconds(run) or None
    selected = int(run.get("selected") or len(by_problem(records)))
    summary = summarize(records, turns, config=config, wall_seconds=wall, selected=selected)
    write_reports(folder, summary)
    print((folder / SUMMARY_MD).read_text(encoding="utf-8"))
    return 0
