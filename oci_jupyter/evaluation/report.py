"""Records, the pass@1-by-turn summary, and its table and plot.

**pass@1 after turn k.** Each problem is answered by one greedy conversation of at most
``turns`` turns. Every turn's code is judged by the problem's hidden tests (a turn whose reply
has no code, or whose code killed the kernel, fails). A problem is *passed at turn k* when the
last turn the loop reached that is ≤ k passed. When the loop stopped before turn k (the model's
own run succeeded, or the model stopped writing code), its last turn stands for all later turns:
a problem solved at turn 1 stays solved; a reply without code stays a failure. pass@1 at turn k
is the share of problems passed at turn k. Turn 1 is the paper's plain pass@1; turn 2 is
"+ one execution-feedback turn".

Under the ``read`` success rule the model reads the output of a successful run, too. A reply
in words after it is the answer, not a turn without code: its record's hidden status is
:data:`ANSWER`, and the code that ran stands for it (answering in words after passing is no
regression).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..prompts import same_code
from .feedback import PROTOCOL_TEXT
from .problems import task_number
from .prompting import DEFAULT_PROMPT, PROMPT_TEXT
from .run_folder import counts, duration, machine, machine_line, write_summary

PLOT = "pass_at_k.png"
ANSWER = "answer"
"""The hidden status of a reply in words after a successful run: the code that ran stands."""


@dataclass(frozen=True)
class Reference:
    label: str
    source: str
    by_turn: tuple[float, ...]
    """pass@1 (%) at turn 1, after one feedback turn, ..."""


PAPER = Reference(
    "OpenCodeInterpreter-DS-6.7B",
    "OpenCodeInterpreter paper (arXiv 2402.14658), HumanEval",
    (76.2, 81.1),
)
QWEN_PUBLISHED = Reference(
    "Qwen2.5-Coder-1.5B-Instruct",
    "Qwen2.5-Coder technical report (arXiv 2409.12186), HumanEval, single turn",
    (70.7,),
)
REFERENCES = (PAPER, QWEN_PUBLISHED)
"""HumanEval's reference rows."""
PAPER_NOTE = "its feedback turn is the tests protocol"
REFERENCES_BY_SCORE: dict[str, tuple[Reference, ...]] = {
    "HumanEval": REFERENCES,
    "MBPP": (
        Reference(
            "OpenCodeInterpreter-DS-6.7B",
            f"OpenCodeInterpreter paper (arXiv 2402.14658), MBPP; {PAPER_NOTE}",
            (73.9, 82.7),
        ),
    ),
    "MBPP+": (
        Reference(
            "OpenCodeInterpreter-DS-6.7B",
            f"OpenCodeInterpreter paper (arXiv 2402.14658), MBPP+; {PAPER_NOTE}",
            (63.7, 72.4),
        ),
    ),
}


def by_problem(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each finished problem's turns, in turn order (the last complete set if it ran twice)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    pending: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        task = record["task_id"]
        pending.setdefault(task, []).append(record)
        if record.get("final"):
            groups[task] = sorted(pending.pop(task), key=lambda r: int(r["turn"]))
    return dict(sorted(groups.items(), key=lambda item: task_number(item[0])))


def passed_at(turns: Sequence[dict[str, Any]], k: int, score: str | None = None) -> bool:
    """Whether a problem counts as passed after turn k (see the module's docstring), by the
    run's own score, or by ``score`` (``MBPP+`` of an MBPP run, say)."""
    reached = [t for t in turns if int(t["turn"]) <= k and not _words_after_success(t)]
    if not reached:
        return False
    if score is None:
        return bool(reached[-1].get("passed"))
    return bool(((reached[-1].get("scores") or {}).get(score) or {}).get("passed"))


def _words_after_success(turn: dict[str, Any]) -> bool:
    """An answer in words after a run that succeeded: the turn before it stands."""
    return (turn.get("hidden") or {}).get("status") == ANSWER and not turn.get("code")


# ---- the summary -----------------------------------------------------------------------------
def summarize(
    records: Iterable[dict[str, Any]],
    turns: int,
    *,
    config: dict[str, Any] | None = None,
    wall_seconds: float | None = None,
    selected: int | None = None,
    success: str | None = None,
    benchmark: Any = None,
    feedback: str | None = None,
    prompt: str | None = None,
) -> dict[str, Any]:
    """``success``, ``feedback``, ``prompt``: the run's success rule, feedback protocol and
    first-turn prompt (default: the config's, else ``first-run``, ``own`` and ``product``,
    those of runs recorded before there was a choice). ``benchmark``: the run's
    :class:`~.benchmarks.Benchmark` (default: the config's, else HumanEval); every score it
    gives gets its rows."""
    from .benchmarks import get_benchmark

    problems = by_problem(records)
    settings = config or {}
    rule = success or str(settings.get("success") or "first-run")
    protocol = feedback or str(settings.get("feedback") or "own")
    asked = prompt or str(settings.get("prompt") or DEFAULT_PROMPT)
    bench = benchmark or get_benchmark(str(settings.get("benchmark") or "humaneval"))
    count = len(problems)

    def rows_for(score: str | None, label: str) -> list[dict[str, Any]]:
        rows = []
        for k in range(1, turns + 1):
            passed = sum(passed_at(t, k, score) for t in problems.values())
            rows.append(
                {
                    "benchmark": label,
                    "feedback": protocol,
                    "success": rule,
                    "prompt": asked,
                    "turn": k,
                    "passed": passed,
                    "pass_at_1": round(100.0 * passed / count, 2) if count else None,
                    "reached": sum(1 for t in problems.values() if len(t) >= k),
                }
            )
        return rows

    rows = rows_for(None, bench.label)
    by_score = {bench.label: rows}
    for other in bench.scores:
        if other != bench.label:
            by_score[other] = rows_for(other, other)
    every_turn = [t for ts in problems.values() for t in ts]
    loop_status = Counter(ts[-1].get("loop_status", "") for ts in problems.values())
    own_runs = Counter((t.get("outcome") or {}).get("status", "not run") for t in every_turn)
    hidden = Counter((t.get("hidden") or {}).get("status", "") for t in every_turn)
    recovery = Counter(t.get("recovery", "") for t in every_turn if t.get("recovery"))
    skipped = Counter(str(t["skipped"]) for t in every_turn if t.get("skipped"))
    completion = [t["tokens"]["completion"] for t in every_turn if _tokens(t, "completion")]
    gained = [
        task
        for task, ts in problems.items()
        if not passed_at(ts, 1) and passed_at(ts, turns) and turns > 1
    ]
    lost = [
        task
        for task, ts in problems.items()
        if passed_at(ts, 1) and not passed_at(ts, turns) and turns > 1
    ]
    # Counted from the records, not the config: a resumed run may have replayed more or fewer.
    replayed = sum(1 for ts in problems.values() if ts[0].get("replayed"))
    return {
        "benchmark": bench.label,
        "command": bench.name,
        "problems": count,
        "selected": selected if selected is not None else count,
        "turns": turns,
        "success": rule,
        "feedback": protocol,
        "prompt": asked,
        "oracle": protocol == "tests",
        "pass_at_1_by_turn": rows,
        "scores": by_score,
        "loop_status": dict(loop_status),
        "own_run_outcomes": dict(own_runs),
        "hidden_test_results": dict(hidden),
        "kernel_recovery": dict(recovery),
        "turns_not_run": dict(skipped),
        "repeated_failed_code": sum(_repeats(ts) for ts in problems.values()),
        "fixed_by_feedback": gained,
        "broken_by_feedback": lost,
        "first_turns_replayed": replayed,
        "mean_completion_tokens": round(sum(completion) / len(completion), 1)
        if completion
        else None,
        "wall_seconds": round(wall_seconds, 1) if wall_seconds is not None else None,
        "wall_seconds_per_problem": round(wall_seconds / count, 1)
        if wall_seconds is not None and count
        else None,
        "config": config or {},
        "machine": machine(),
        "references": [
            {
                "benchmark": score,
                "label": r.label,
                "source": r.source,
                "pass_at_1_by_turn": list(r.by_turn),
            }
            for score in by_score
            for r in REFERENCES_BY_SCORE.get(score, ())
        ],
    }


def _repeats(turns: Sequence[dict[str, Any]]) -> int:
    """Replies whose code is an earlier turn's code that failed its own run (run again, or
    not run by a loop that skips repeats)."""
    failed: list[str] = []
    count = 0
    for turn in turns:
        code = turn.get("code")
        if code and any(same_code(code, earlier) for earlier in failed):
            count += 1
        elif code and (turn.get("outcome") or {}).get("status") not in (None, "ok"):
            failed.append(code)
    return count


def _tokens(turn: dict[str, Any], kind: str) -> bool:
    tokens = turn.get("tokens") or {}
    return isinstance(tokens.get(kind), int)


def turn_label(k: int) -> str:
    if k == 1:
        return "turn 1"
    feedback = k - 1
    return f"after {feedback} feedback turn{'s' if feedback > 1 else ''}"


def markdown(summary: dict[str, Any]) -> str:
    rows = summary["pass_at_1_by_turn"]
    turns = summary["turns"]
    config = summary.get("config", {})
    label = summary.get("benchmark", "HumanEval")
    protocol = summary.get("feedback", "own")
    by_score = summary.get("scores") or {label: rows}
    lines = [f"# oci-eval: {label} with execution feedback ({_protocol_name(protocol)})", ""]
    if protocol == "tests":
        lines += [f"> **Oracle protocol.** {PROTOCOL_TEXT['tests']}.", ""]
    model = config.get("model", "model")
    done = summary["problems"]
    selected = summary.get("selected", done)
    scope = f"{done} problems" if done == selected else f"{done} of {selected} problems"
    rule = summary.get("success", "first-run")
    asked = summary.get("prompt", DEFAULT_PROMPT)
    for score, score_rows in by_score.items():
        lines += [
            f"| {score} pass@1 (%) | "
            + " | ".join(turn_label(r["turn"]) for r in score_rows)
            + " |",
            "|---|" + "---:|" * turns,
        ]
        cells = [
            f"{r['pass_at_1']:.1f} ({r['passed']}/{done})" if r["pass_at_1"] is not None else "—"
            for r in score_rows
        ]
        # Each row names its whole protocol; --prompt comes before the score so that the score
        # stays next to its --feedback and --success, as rows read before there was a choice.
        lines.append(
            f"| **This run**: {model}, {config.get('engine', '')}, {scope}, --prompt {asked}, "
            f"{score}, --feedback {protocol}, --success {rule} | " + " | ".join(cells) + " |"
        )
        for reference in REFERENCES_BY_SCORE.get(score, ()):
            values = [
                f"{reference.by_turn[k]:.1f}" if k < len(reference.by_turn) else "—"
                for k in range(turns)
            ]
            lines.append(f"| {reference.label} ({reference.source}) | " + " | ".join(values) + " |")
        lines.append("")
    lines += ["pass@1 after turn k: " + _DEFINITION, ""]
    lines += [f"Feedback: --feedback {protocol}: " + PROTOCOL_TEXT.get(protocol, "?") + ".", ""]
    lines += [f"Success rule: --success {rule}: " + SUCCESS_RULE_TEXT.get(rule, "?"), ""]
    lines += [f"Prompt: --prompt {asked}: " + PROMPT_TEXT.get(asked, "?") + ".", ""]
    if config.get("first_turn") == "replayed" or summary.get("first_turns_replayed"):
        lines += [_paired(summary, config), ""]
    lines += ["## Run", ""]
    for key, value in config.items():
        lines.append(f"- {key}: {value}")
    if summary.get("wall_seconds") is not None:
        lines.append(f"- wall time: {duration(summary['wall_seconds'])}")
    lines.append(machine_line(summary.get("machine", {})))
    lines += ["", "## What happened", ""]
    lines.append(f"- loop endings: {counts(summary['loop_status'])}")
    runs = "the model's own runs" if protocol == "own" else "answers judged during the loop"
    lines.append(f"- {runs}: {counts(summary['own_run_outcomes'])}")
    lines.append(f"- hidden tests per turn: {counts(summary['hidden_test_results'])}")
    if summary.get("repeated_failed_code") is not None and turns > 1:
        not_run = summary.get("turns_not_run") or {}
        lines.append(
            f"- replies repeating code that had failed: {summary['repeated_failed_code']}"
            + (f" (turns not run: {counts(not_run)})" if not_run else "")
        )
    if summary.get("kernel_recovery"):
        lines.append(f"- kernel recovery: {counts(summary['kernel_recovery'])}")
    if turns > 1:
        fixed, broken = summary["fixed_by_feedback"], summary["broken_by_feedback"]
        lines.append(f"- fixed by feedback ({len(fixed)}): {', '.join(fixed) or 'none'}")
        lines.append(f"- broken by feedback ({len(broken)}): {', '.join(broken) or 'none'}")
    if summary.get("mean_completion_tokens") is not None:
        lines.append(f"- mean reply length: {summary['mean_completion_tokens']} tokens")
    if summary.get("wall_seconds_per_problem") is not None:
        lines.append(f"- wall time per problem: {summary['wall_seconds_per_problem']} s")
    return "\n".join(lines) + "\n"


_DEFINITION = (
    "a problem counts as passed at turn k when the code of the last turn the loop reached "
    "(≤ k) passes the benchmark's hidden tests; a loop that stopped early (its answer "
    "succeeded, or no code) keeps that turn's result for later turns; an answer in words "
    "after a successful run keeps the code that ran."
)
SUCCESS_RULE_TEXT = {
    "first-run": "an answer stands at its first run without errors (the loop stops there).",
    "read": "the model also reads the output of a successful run, then answers in words "
    "(the code that ran stands) or gives the function again (run and judged as that turn).",
}


def _paired(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """The sentence that says the run is paired with its source, and for how many problems."""
    replayed = int(summary.get("first_turns_replayed") or 0)
    done = summary["problems"]
    source = config.get("first_turn_from", "another run")
    sentence = (
        f"First turn (--first-turn-from): turn 1 replayed from {source} (greedy, same "
        "messages): the protocols differ only in their feedback turns."
    )
    if replayed == done:
        return f"{sentence} Replayed for all {done} problems."
    return (
        f"{sentence} Replayed for {replayed} of {done} problems; generated for the other "
        f"{done - replayed} (the source has no first turn with the same messages for them)."
    )


def _protocol_name(protocol: str) -> str:
    return "the oracle tests protocol" if protocol == "tests" else "the model's own runs"


def plot(summary: dict[str, Any], path: Path) -> None:
    """pass@1 by turn for this run, with the paper's row beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["pass_at_1_by_turn"] if r["pass_at_1"] is not None]
    turns = summary["turns"]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    model = summary.get("config", {}).get("model", "this run")
    label = summary.get("benchmark", "HumanEval")
    protocol = summary.get("feedback", "own")
    asked = summary.get("prompt", DEFAULT_PROMPT)
    if rows:
        xs = [r["turn"] for r in rows]
        ys = [r["pass_at_1"] for r in rows]
        axes.plot(
            xs,
            ys,
            marker="o",
            label=f"{model} (this run, --prompt {asked}, --feedback {protocol}, "
            f"n={summary['problems']})",
        )
        for x, y in zip(xs, ys, strict=True):
            axes.annotate(
                f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, -16), ha="center"
            )
    references = REFERENCES_BY_SCORE.get(label, ())
    for reference, style in zip(references, ("s--", "^:")[: len(references)], strict=True):
        points = reference.by_turn[:turns]
        xs = list(range(1, len(points) + 1))
        axes.plot(xs, list(points), style, label=f"{reference.label} (published)")
    axes.set_xticks(range(1, turns + 1), [turn_label(k) for k in range(1, turns + 1)])
    axes.set_xlim(0.6, turns + 0.4)
    axes.set_ylim(0, 100)
    axes.set_ylabel(f"{label} pass@1 (%)")
    axes.set_title("pass@1 by turn (execution feedback)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_reports(folder: Path, summary: dict[str, Any], *, with_plot: bool = True) -> None:
    write_summary(folder, summary, markdown, plot if with_plot else None, PLOT)
