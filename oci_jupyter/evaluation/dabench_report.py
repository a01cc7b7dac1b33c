"""DABench's summary: ABQ, PSAQ and UASQ (overall, by level, by concept), what the loops did,
the table beside the leaderboard's rows, and the plot of ABQ by level.

Every table row names its protocol: this run's (``format-asked`` or ``rewrite``, see
:mod:`.dabench_runner`) and the leaderboard's (``reformat``: a second model rewrote each
agent's last response into the format). A run under ``rewrite`` also reports the
``format-asked`` scores of the same conversations (its final words before the rewrite).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dabench_scoring import Graded, figures, figures_by
from .run_folder import counts, duration, machine, machine_line, write_summary

PLOT = "abq_by_level.png"
BENCHMARK = "DABench"
COMMAND = "dabench"
PUBLISHED_PROTOCOL = "reformat"
PUBLISHED_PROTOCOL_TEXT = (
    "the published protocol: a ReAct agent runs code, then a second model (GPT-3.5) rewrites "
    "its last response into the format"
)
PROTOCOL_TEXT: dict[str, str] = {
    "format-asked": "the request asks for the answer format; the loop's final words are "
    "scored as they are (no rewrite)",
    "rewrite": "the request asks for the answer format; one more reply by the same model, "
    "asked to write its final response again in the format, is scored",
}
DENOMINATOR_NOTE = (
    "every question that ran counts, an empty answer as wrong (the published script leaves "
    "questions with an empty response out of its denominators)"
)


@dataclass(frozen=True)
class LeaderboardRow:
    label: str
    abq: float
    psaq: float
    uasq: float


LEADERBOARD_SOURCE = "InfiAgent-DABench leaderboard (infiagent.github.io), all 257 questions"
LEADERBOARD = (
    LeaderboardRow("gpt-4-0613", 78.72, 74.60, 79.01),
    LeaderboardRow("daagent-34b", 67.50, 60.77, 62.98),
    LeaderboardRow("gpt-3.5-turbo-0613", 65.70, 58.20, 61.88),
    LeaderboardRow("daagent-7b", 57.63, 49.02, 54.19),
    LeaderboardRow("deepseek-coder-33b-instruct", 48.90, 44.84, 46.31),
    LeaderboardRow("mistral-7b-instruct-v0.2", 41.61, 36.45, 36.90),
    LeaderboardRow("qwen-7b-chat", 27.27, 27.27, 16.00),
    LeaderboardRow("codellama-34b-instruct", 17.39, 14.56, 13.94),
)
"""ABQ / PSAQ / UASQ (%) as published (the data folder's README); overall figures only."""


# ---- the summary ------------------------------------------------------------------------------
def graded(records: Iterable[dict[str, Any]], key: str | None = None) -> list[Graded]:
    """What the figures need of each record: its scored answer, or with ``key`` another of
    its scores (``final_words_score``: the words before a rewrite)."""
    items = []
    for record in records:
        scored = record.get(key) if key else record
        scored = scored or {}
        text = record.get("final_words", "") if key else _scored_text(record)
        items.append(
            Graded(
                correct=dict(scored.get("correct") or {}),
                level=str(record.get("level", "?")),
                concepts=list(record.get("concepts") or ()),
                answered=bool(text.strip()),
            )
        )
    return items


def _scored_text(record: dict[str, Any]) -> str:
    rewrite = record.get("rewrite")
    if isinstance(rewrite, dict):
        return str(rewrite.get("reply") or "")
    return str(record.get("final_words") or "")


def summarize(
    records: Sequence[dict[str, Any]],
    *,
    config: dict[str, Any] | None = None,
    wall_seconds: float | None = None,
    selected: int | None = None,
) -> dict[str, Any]:
    settings = config or {}
    ordered = sorted(records, key=lambda r: int(r.get("id", 0)))
    protocol = str(settings.get("protocol") or (ordered[0].get("protocol") if ordered else "?"))
    items = graded(ordered)
    count = len(ordered)
    loops = [r.get("loop") or {} for r in ordered]
    replies = [int(loop.get("replies") or 0) for loop in loops]
    steps = [int(loop.get("steps") or 0) for loop in loops]
    seconds = [float((r.get("seconds") or {}).get("question") or 0.0) for r in ordered]
    tokens = [int((r.get("tokens") or {}).get("completion") or 0) for r in ordered]
    runs = Counter(
        (t.get("outcome") or {}).get("status", "not run")
        for r in ordered
        for t in r.get("turns") or []
        if t.get("code")
    )
    summary: dict[str, Any] = {
        "benchmark": BENCHMARK,
        "command": COMMAND,
        "protocol": protocol,
        "protocol_text": PROTOCOL_TEXT.get(protocol, "?"),
        "questions": count,
        "selected": selected if selected is not None else count,
        "scores": figures(items),
        "by_level": figures_by(items, "level"),
        "by_concept": figures_by(items, "concept"),
        "verdicts": dict(Counter(str(r.get("verdict", "?")) for r in ordered)),
        "loop_status": dict(Counter(str(loop.get("status", "?")) for loop in loops)),
        "budgets_spent": dict(Counter(str(loop["budget"]) for loop in loops if loop.get("budget"))),
        "code_runs": dict(runs),
        "kernel_errors": sum(1 for r in ordered if r.get("kernel_error")),
        "model_errors": sum(1 for r in ordered if r.get("model_error")),
        "mean_replies": _mean(replies),
        "mean_steps": _mean(steps),
        "mean_seconds_per_question": _mean(seconds),
        "mean_completion_tokens_per_question": _mean(tokens),
        "wall_seconds": round(wall_seconds, 1) if wall_seconds is not None else None,
        "config": settings,
        "machine": machine(),
        "denominators": DENOMINATOR_NOTE,
        "references": {
            "source": LEADERBOARD_SOURCE,
            "protocol": PUBLISHED_PROTOCOL,
            "protocol_text": PUBLISHED_PROTOCOL_TEXT,
            "rows": [
                {"label": r.label, "abq": r.abq, "psaq": r.psaq, "uasq": r.uasq}
                for r in LEADERBOARD
            ],
        },
    }
    if protocol == "rewrite":
        words = graded(ordered, "final_words_score")
        summary["also"] = {
            "format-asked": {
                "protocol_text": PROTOCOL_TEXT["format-asked"] + " (the same conversations, "
                "their final words before the rewrite)",
                "scores": figures(words),
                "by_level": figures_by(words, "level"),
            }
        }
    return summary


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


# ---- the table -------------------------------------------------------------------------------
LEVEL_COLUMNS = ("easy", "medium", "hard")
TABLE_HEADER = [
    "| DABench (%) | protocol | questions | ABQ | PSAQ | UASQ | "
    + " | ".join(f"ABQ {lv}" for lv in LEVEL_COLUMNS)
    + " |",
    "|---|---|---:|---:|---:|---:|" + "---:|" * len(LEVEL_COLUMNS),
]


def run_rows(summary: dict[str, Any], *, label: str | None = None) -> list[str]:
    """A run's table rows: its own protocol's, then (under ``rewrite``) ``format-asked``'s."""
    config = summary.get("config", {})
    who = label or f"**This run**: {config.get('model', 'model')}, {config.get('engine', '')}"
    done, selected = summary["questions"], summary.get("selected", summary["questions"])
    scope = f"{done}" if done == selected else f"{done} of {selected}"
    if config.get("subset"):
        scope += f" (--subset {config['subset']})"
    rows = [_row(who, summary["protocol"], scope, summary["scores"], summary["by_level"])]
    for protocol, also in (summary.get("also") or {}).items():
        rows.append(
            _row(
                f"{who} (the same conversations)",
                protocol,
                scope,
                also["scores"],
                also.get("by_level", {}),
            )
        )
    return rows


def _row(
    who: str, protocol: str, scope: str, scores: dict[str, Any], levels: dict[str, Any]
) -> str:
    def cell(value: float | None, part: int | None = None, whole: int | None = None) -> str:
        if value is None:
            return "—"
        return f"{value:.1f}" + (f" ({part}/{whole})" if part is not None else "")

    level_cells = [
        cell(levels[lv]["abq"], levels[lv]["right"], levels[lv]["questions"])
        if lv in levels
        else "—"
        for lv in LEVEL_COLUMNS
    ]
    return (
        f"| {who} | --protocol {protocol} | {scope} | "
        f"{cell(scores['abq'], scores['right'], scores['questions'])} | "
        f"{cell(scores['psaq'])} | "
        f"{cell(scores['uasq'], scores['sub_right'], scores['sub_answers'])} | "
        + " | ".join(level_cells)
        + " |"
    )


def leaderboard_rows() -> list[str]:
    return [
        f"| {r.label} (leaderboard) | {PUBLISHED_PROTOCOL} (published) | 257 | {r.abq:.1f} | "
        f"{r.psaq:.1f} | {r.uasq:.1f} | " + " | ".join("—" for _ in LEVEL_COLUMNS) + " |"
        for r in LEADERBOARD
    ]


def markdown(summary: dict[str, Any]) -> str:
    config = summary.get("config", {})
    protocol = summary["protocol"]
    lines = [f"# oci-eval dabench: InfiAgent-DABench through the chat's loop ({protocol})", ""]
    lines += [*TABLE_HEADER, *run_rows(summary), *leaderboard_rows(), ""]
    lines += [
        "ABQ: questions all of whose sub-answers are right; PSAQ: the mean share of right "
        "sub-answers per question; UASQ: right sub-answers over all sub-answers (the "
        f"benchmark's rules, `@name[value]`, floats within 1e-6). Denominators: "
        f"{DENOMINATOR_NOTE}.",
        "",
        f"Protocol: --protocol {protocol}: {PROTOCOL_TEXT.get(protocol, '?')}. Leaderboard: "
        f"{PUBLISHED_PROTOCOL_TEXT} ({LEADERBOARD_SOURCE}; overall figures only).",
        "",
        "## By concept (ABQ)",
        "",
        "| concept | questions | ABQ (%) | PSAQ (%) | UASQ (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for concept, scores in summary.get("by_concept", {}).items():
        lines.append(
            f"| {concept} | {scores['questions']} | {_num(scores['abq'])} "
            f"({scores['right']}/{scores['questions']}) | {_num(scores['psaq'])} | "
            f"{_num(scores['uasq'])} |"
        )
    lines += ["", "## Run", ""]
    for key, value in config.items():
        if key in ("request_template", "request_hint", "system_prompt", "system_prompt_text"):
            value = json.dumps(value, ensure_ascii=False)
        lines.append(f"- {key}: {value}")
    if summary.get("wall_seconds") is not None:
        lines.append(f"- wall time: {duration(summary['wall_seconds'])}")
    lines.append(machine_line(summary.get("machine", {})))
    lines += ["", "## What happened", ""]
    lines.append(f"- verdicts: {counts(summary['verdicts'])}")
    lines.append(f"- loop endings: {counts(summary['loop_status'])}")
    if summary.get("budgets_spent"):
        lines.append(f"- budgets that ended a loop: {counts(summary['budgets_spent'])}")
    lines.append(f"- runs of the model's code: {counts(summary['code_runs'])}")
    scores = summary["scores"]
    lines.append(f"- questions with any final words: {scores['answered']} of {scores['questions']}")
    if summary.get("kernel_errors") or summary.get("model_errors"):
        lines.append(
            f"- kernels that died: {summary['kernel_errors']}; model errors: "
            f"{summary['model_errors']}"
        )
    lines.append(
        f"- per question: {summary['mean_replies']} replies, {summary['mean_steps']} steps, "
        f"{summary['mean_completion_tokens_per_question']} tokens generated, "
        f"{summary['mean_seconds_per_question']} s (means)"
    )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


# ---- the plot --------------------------------------------------------------------------------
def plot(summary: dict[str, Any], path: Path) -> None:
    """ABQ by level and overall for this run, beside the leaderboard's (overall) ABQ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = summary.get("by_level", {})
    names = [lv for lv in LEVEL_COLUMNS if lv in levels] + ["all"]
    ours = [levels[lv]["abq"] for lv in names[:-1]] + [summary["scores"]["abq"]]
    sizes = [levels[lv]["questions"] for lv in names[:-1]] + [summary["questions"]]
    board = list(LEADERBOARD)
    figure, axes = plt.subplots(figsize=(9, 4.2), dpi=120)
    xs = list(range(len(names)))
    values = [v if v is not None else 0.0 for v in ours]
    model = summary.get("config", {}).get("model", "this run")
    bars = axes.bar(
        xs,
        values,
        color="tab:blue",
        label=f"{model} (this run, --protocol {summary['protocol']})",
    )
    for bar, value, n in zip(bars, ours, sizes, strict=True):
        _label(axes, bar, f"{'—' if value is None else f'{value:.1f}'}\nn={n}", 8)
    start = len(names) + 0.6
    board_x = [start + i for i in range(len(board))]
    board_bars = axes.bar(
        board_x,
        [r.abq for r in board],
        color="lightgrey",
        edgecolor="grey",
        hatch="//",
        label=f"leaderboard, all 257 ({PUBLISHED_PROTOCOL}: GPT-3.5 rewrites the answer)",
    )
    for bar, row in zip(board_bars, board, strict=True):
        _label(axes, bar, f"{row.abq:.1f}", 7)
    axes.set_xticks(
        xs + board_x,
        names + [r.label for r in board],
        rotation=35,
        ha="right",
        fontsize=8,
    )
    axes.set_ylim(0, 110)
    axes.set_yticks(range(0, 101, 20))
    axes.set_ylabel("ABQ (%)")
    axes.set_title("InfiAgent-DABench: accuracy by question (ABQ), by level")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _label(axes: Any, bar: Any, text: str, size: int) -> None:
    """``text`` just above ``bar``."""
    axes.annotate(
        text,
        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
        textcoords="offset points",
        xytext=(0, 3),
        ha="center",
        fontsize=size,
    )


def write_reports(folder: Path, summary: dict[str, Any], *, with_plot: bool = True) -> None:
    drawn = plot if with_plot and summary["questions"] else None
    write_summary(folder, summary, markdown, drawn, PLOT)


# ---- several runs (python -m oci_jupyter.evaluation.table) -----------------------------------
def is_dabench(summary: dict[str, Any]) -> bool:
    return summary.get("command") == COMMAND


def runs_table(summaries: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One table of several DABench runs (``(name, summary)``), beside the leaderboard."""
    lines = ["### DABench", "", *TABLE_HEADER]
    for name, summary in summaries:
        config = summary.get("config", {})
        label = f"**{config.get('model', 'model')}**, {name}"
        lines += run_rows(summary, label=label)
    lines += leaderboard_rows()
    return "\n".join(lines) + "\n"


__all__ = [
    "LEADERBOARD",
    "PLOT",
    "PROTOCOL_TEXT",
    "PUBLISHED_PROTOCOL",
    "is_dabench",
    "markdown",
    "plot",
    "runs_table",
    "summarize",
    "write_reports",
]
