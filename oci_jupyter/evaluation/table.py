"""The paper's table from several ``oci-eval`` runs: one row per benchmark score and protocol,
beside the OpenCodeInterpreter paper's rows and Qwen2.5-Coder's published figures, and one
plot of pass@1 by turn.

    python -m oci_jupyter.evaluation.table RUN_DIR [RUN_DIR ...] [--plot PATH]

Each run folder holds the ``summary.json`` that ``oci-eval`` writes (``oci-eval dabench`` runs
get a table of their own, ABQ / PSAQ / UASQ beside the DABench leaderboard). A run of ``mbpp`` or
``mbppplus`` gives two rows (MBPP and MBPP+ are both judged on every answer); rows name their
protocol (``--feedback``, ``--prompt``, ``--success``) and how many problems they cover.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The OpenCodeInterpreter paper (arXiv 2402.14658, Table 2; the models' cards give the same):
# base (plus) pass@1, plain and after one execution-feedback turn.
PAPER_ROWS: dict[str, dict[str, tuple[float, float]]] = {
    "OpenCodeInterpreter-DS-1.3B": {
        "HumanEval": (65.2, 65.2),
        "HumanEval+": (61.0, 62.2),
        "MBPP": (63.4, 65.2),
        "MBPP+": (52.4, 55.6),
    },
    "OpenCodeInterpreter-DS-6.7B": {
        "HumanEval": (76.2, 81.1),
        "HumanEval+": (72.0, 78.7),
        "MBPP": (73.9, 82.7),
        "MBPP+": (63.7, 72.4),
    },
    "OpenCodeInterpreter-CL-7B": {
        "HumanEval": (72.6, 75.6),
        "HumanEval+": (67.7, 70.1),
        "MBPP": (66.4, 69.9),
        "MBPP+": (55.4, 60.7),
    },
    "OpenCodeInterpreter-SC2-3B": {
        "HumanEval": (65.2, 67.1),
        "HumanEval+": (57.9, 60.4),
        "MBPP": (62.7, 63.4),
        "MBPP+": (52.9, 54.9),
    },
}
# Qwen2.5-Coder technical report (arXiv 2409.12186), 1.5B-Instruct, single turn.
QWEN_PUBLISHED = {"HumanEval": 70.7, "HumanEval+": 66.5, "MBPP": 69.2, "MBPP+": 59.4}
SCORES = ("HumanEval", "MBPP", "MBPP+")


@dataclass(frozen=True)
class Row:
    score: str
    protocol: str
    problems: int
    by_turn: tuple[float, ...]
    passed: tuple[int, ...]
    wall_seconds: float
    machine: str


def load_rows(folder: Path) -> list[Row]:
    """The rows of one run folder (its ``summary.json``)."""
    path = folder / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {folder} an oci-eval run folder?")
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    config = summary.get("config", {})
    # The command names which tests gave the feedback under `tests` (mbpp: the asserts,
    # mbppplus: the base and plus inputs).
    protocol = (
        f"oci-eval {summary.get('command', '?')}, --feedback {summary.get('feedback', 'own')}"
        f"{' (oracle)' if summary.get('oracle') else ''}, "
        f"--prompt {summary.get('prompt', config.get('prompt', 'product'))}, "
        f"--success {summary.get('success', 'first-run')}"
    )
    if config.get("first_turn") == "replayed":
        # A paired run's turn 1 is another run's: the row says whose, so that two rows with
        # the same turn-1 figure are read as one measurement, not two that agree.
        source = Path(str(config.get("first_turn_from", "another run"))).name
        protocol += f", turn 1 replayed from {source}"
    machine = summary.get("machine", {})
    rows = []
    for score, turns in summary.get("scores", {}).items():
        if not turns:
            continue
        rows.append(
            Row(
                score=score,
                protocol=protocol,
                problems=int(summary.get("problems", 0)),
                by_turn=tuple(float(t["pass_at_1"]) for t in turns),
                passed=tuple(int(t["passed"]) for t in turns),
                wall_seconds=float(summary.get("wall_seconds", 0.0)),
                machine=f"{machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores",
            )
        )
    return rows


def markdown(rows: Sequence[Row]) -> str:
    """One table per score: our rows (turn 1, after one feedback turn), then the references."""
    parts: list[str] = []
    for score in SCORES:
        ours = [r for r in rows if r.score == score]
        paper_key = score
        lines = [
            f"### {score}",
            "",
            "| pass@1 (%) | problems | turn 1 | after 1 feedback turn |",
            "|---|---:|---:|---:|",
        ]
        for row in ours:
            first = f"{row.by_turn[0]:.1f} ({row.passed[0]}/{row.problems})"
            second = (
                f"{row.by_turn[1]:.1f} ({row.passed[1]}/{row.problems})"
                if len(row.by_turn) > 1
                else "—"
            )
            lines.append(
                f"| **Qwen2.5-Coder-1.5B Q4_K_M, {row.protocol}** | {row.problems} | "
                f"{first} | {second} |"
            )
        for model, figures in PAPER_ROWS.items():
            if paper_key in figures:
                plain, feedback = figures[paper_key]
                lines.append(
                    f"| {model} (paper, tests feedback) | all | {plain:.1f} | {feedback:.1f} |"
                )
            plus = f"{score}+" if not score.endswith("+") else None
            if plus and plus in figures and score == "HumanEval":
                plain, feedback = figures[plus]
                lines.append(
                    f"| {model}: HumanEval+ (paper) | all | {plain:.1f} | {feedback:.1f} |"
                )
        if score in QWEN_PUBLISHED:
            lines.append(
                f"| Qwen2.5-Coder-1.5B-Instruct (published, bf16, single turn) | all | "
                f"{QWEN_PUBLISHED[score]:.1f} | — |"
            )
        if score == "HumanEval":
            lines.append(
                "| Qwen2.5-Coder-1.5B-Instruct: HumanEval+ (published) | all | "
                f"{QWEN_PUBLISHED['HumanEval+']:.1f} | — |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def plot(rows: Sequence[Row], path: Path) -> None:
    """pass@1 by turn: one panel per score, a line per protocol, the paper's 6.7B dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(SCORES), figsize=(4.2 * len(SCORES), 3.6), sharey=True)
    for ax, score in zip(axes, SCORES, strict=True):
        for row in (r for r in rows if r.score == score):
            turns = list(range(1, len(row.by_turn) + 1))
            label = ",".join(row.protocol.split(",")[:2]).replace("oci-eval ", "")
            ax.plot(turns, row.by_turn, "o-", label=f"{label} ({row.problems} problems)")
        paper = PAPER_ROWS["OpenCodeInterpreter-DS-6.7B"].get(score)
        if paper:
            ax.plot([1, 2], paper, "s--", color="grey", label="OCI-DS-6.7B (paper)")
        ax.set_title(score)
        ax.set_xticks([1, 2], ["turn 1", "+1 feedback"])
        ax.set_xlim(0.7, 2.3)
        ax.set_ylim(30, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("pass@1 (%)")
    figure.suptitle("Qwen2.5-Coder-1.5B-Instruct Q4_K_M (llama.cpp, greedy) vs the paper")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m oci_jupyter.evaluation.table", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="oci-eval run folders")
    parser.add_argument("--plot", type=Path, help="write the pass@1-by-turn plot here (PNG)")
    args = parser.parse_args(argv)
    from .dabench_report import is_dabench, runs_table

    try:
        dabench = [(folder, _summary(folder)) for folder in args.runs]
        dabench = [(folder, summary) for folder, summary in dabench if is_dabench(summary)]
        others = [folder for folder in args.runs if folder not in dict(dabench)]
        rows = [row for folder in others for row in load_rows(folder)]
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        print(f"table: {exc}", file=sys.stderr)
        return 2
    if rows or not dabench:
        print(markdown(rows), end="")
    if dabench:  # oci-eval dabench runs: their own table, beside the leaderboard
        print(("\n" if rows else "") + runs_table([(f.name, s) for f, s in dabench]), end="")
    if args.plot and rows:
        plot(rows, args.plot)
    return 0


def _summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {folder} an oci-eval run folder?")
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return summary


if __name__ == "__main__":
    sys.exit(main())
