"""DABench's own scoring rules (``examples/DA-Agent/eval_closed_form.py`` of InfiAgent/InfiAgent).

- The answer text is searched for ``@name[value]`` (the regular expression
  ``@(\\w+)\\[(.*?)\\]``: a name of word characters, the value up to the first ``]``); a name
  found twice keeps its last value.
- A sub-answer is right when its value equals the label as a string, or both parse as floats
  within 1e-6. A label with no answer of its name is wrong.
- **ABQ**, accuracy by question: the share of questions all of whose sub-answers are right;
  **PSAQ**, proportional accuracy by sub-question: the mean over questions of the share of
  their sub-answers that are right; **UASQ**, uniform accuracy by sub-question: right
  sub-answers over all sub-answers. By level and by concept as ABQ (the script's concept
  analysis is ABQ per concept).

One difference, stated wherever a figure is: the published script leaves out of every
denominator a question whose response is empty; here every question that ran counts, and an
empty answer is wrong (``answered`` says how many had words at all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ANSWER_PATTERN = re.compile(r"@(\w+)\[(.*?)\]")
TOLERANCE = 1e-6

Verdict = Literal["right", "partly right", "wrong", "no answer"]
VERDICTS: tuple[Verdict, ...] = ("right", "partly right", "wrong", "no answer")
"""``no answer``: the text holds no ``@name[value]`` at all; ``wrong``: it does, but none of
the question's sub-answers is right."""


def extract_answers(text: str) -> dict[str, str]:
    """Every ``@name[value]`` of ``text``, the last value of a name given twice."""
    return dict(ANSWER_PATTERN.findall(text or ""))


def is_equal(response: str | None, label: str) -> bool:
    """The benchmark's comparison: equal strings, or floats within 1e-6."""
    if response == label:
        return True
    if response is None:
        return False
    try:
        return abs(float(response) - float(label)) < TOLERANCE
    except (TypeError, ValueError, OverflowError):
        return False


@dataclass(frozen=True)
class Score:
    """One question's answer against its labels."""

    answers: dict[str, str]
    """What the text gave: every ``@name[value]``, asked for or not."""
    correct: dict[str, bool]
    """Per label name: whether its sub-answer is right."""

    @property
    def right(self) -> int:
        return sum(self.correct.values())

    @property
    def total(self) -> int:
        return len(self.correct)

    @property
    def all_right(self) -> bool:
        return bool(self.correct) and all(self.correct.values())

    @property
    def verdict(self) -> Verdict:
        if self.all_right:
            return "right"
        if self.right:
            return "partly right"
        return "wrong" if self.answers else "no answer"

    def record(self) -> dict[str, Any]:
        return {
            "answers": self.answers,
            "correct": self.correct,
            "right": self.right,
            "total": self.total,
            "verdict": self.verdict,
        }


def score(text: str, labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> Score:
    """``text`` (the answer) against ``labels`` (answer name -> value)."""
    expected = dict(labels)
    answers = extract_answers(text)
    correct = {name: is_equal(answers.get(name), value) for name, value in expected.items()}
    return Score(answers, correct)


# ---- the figures ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Graded:
    """What the figures need of one question."""

    correct: Mapping[str, bool]
    level: str = ""
    concepts: Sequence[str] = ()
    answered: bool = True


def figures(graded: Sequence[Graded]) -> dict[str, Any]:
    """ABQ, PSAQ, UASQ (percentages) and their counts over ``graded``."""
    questions = len(graded)
    right_questions = sum(1 for g in graded if g.correct and all(g.correct.values()))
    sub_total = sum(len(g.correct) for g in graded)
    sub_right = sum(sum(g.correct.values()) for g in graded)
    proportional = sum(sum(g.correct.values()) / len(g.correct) for g in graded if g.correct)
    return {
        "questions": questions,
        "right": right_questions,
        "answered": sum(1 for g in graded if g.answered),
        "sub_answers": sub_total,
        "sub_right": sub_right,
        "abq": _percent(right_questions, questions),
        "psaq": _percent(proportional, questions),
        "uasq": _percent(sub_right, sub_total),
    }


def figures_by(graded: Sequence[Graded], key: Literal["level", "concept"]) -> dict[str, Any]:
    """:func:`figures` per level, or per concept (a question counts for each of its
    concepts), in a stable order."""
    groups: dict[str, list[Graded]] = {}
    for item in graded:
        names = [item.level] if key == "level" else list(item.concepts)
        for name in names:
            groups.setdefault(name, []).append(item)
    if key == "level":
        from .dabench import LEVELS

        order = sorted(groups, key=lambda n: (LEVELS.index(n) if n in LEVELS else 9, n))
    else:
        order = sorted(groups, key=lambda n: (-len(groups[n]), n))
    return {name: figures(groups[name]) for name in order}


def _percent(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


__all__ = [
    "ANSWER_PATTERN",
    "TOLERANCE",
    "VERDICTS",
    "Graded",
    "Score",
    "Verdict",
    "extract_answers",
    "figures",
    "figures_by",
    "is_equal",
    "score",
]
