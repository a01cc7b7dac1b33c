"""The combined table of several oci-eval runs: rows per score and protocol, the paper's
references beside them, the plot, and a clear error for a folder that is not a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.evaluation.table import load_rows, main, markdown


def write_run(folder: Path, scores: dict[str, list[tuple[int, float]]], **fields: Any) -> Path:
    folder.mkdir(parents=True)
    summary = {
        "problems": 50,
        "feedback": "own",
        "oracle": False,
        "success": "first-run",
        "config": {"prompt": "product"},
        "wall_seconds": 600.0,
        "machine": {"cpu_model": "Test CPU", "cores": 2},
        "scores": {
            score: [{"turn": k + 1, "passed": p, "pass_at_1": v} for k, (p, v) in enumerate(turns)]
            for score, turns in scores.items()
        },
        **fields,
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def test_an_mbpp_run_gives_two_rows_each_naming_its_protocol(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "mbpp",
        {"MBPP": [(30, 60.0), (33, 66.0)], "MBPP+": [(25, 50.0), (26, 52.0)]},
        feedback="tests",
        oracle=True,
        command="mbppplus",
    )
    rows = load_rows(run)
    assert [(r.score, r.by_turn, r.passed) for r in rows] == [
        ("MBPP", (60.0, 66.0), (30, 33)),
        ("MBPP+", (50.0, 52.0), (25, 26)),
    ]
    text = markdown(rows)
    mbpp = text.split("### MBPP\n")[1].split("### MBPP+")[0]
    assert (
        "| **Qwen2.5-Coder-1.5B Q4_K_M, oci-eval mbppplus, --feedback tests (oracle), "
        "--prompt product, "
        "--success first-run** | 50 | 60.0 (30/50) | 66.0 (33/50) |"
    ) in mbpp
    assert "| OpenCodeInterpreter-DS-6.7B (paper, tests feedback) | all | 73.9 | 82.7 |" in mbpp
    assert "| Qwen2.5-Coder-1.5B-Instruct (published, bf16, single turn) | all | 69.2 | — |" in mbpp
    plus = text.split("### MBPP+\n")[1]
    assert "52.0 (26/50)" in plus
    assert "| OpenCodeInterpreter-DS-6.7B (paper, tests feedback) | all | 63.7 | 72.4 |" in plus


def test_the_cli_prints_the_table_and_draws_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = write_run(tmp_path / "own", {"HumanEval": [(40, 80.0), (41, 82.0)]}, command="humaneval")
    oracle = write_run(
        tmp_path / "tests", {"HumanEval": [(40, 80.0), (44, 88.0)]}, feedback="tests", oracle=True
    )
    image = tmp_path / "table.png"
    assert main([str(own), str(oracle), "--plot", str(image)]) == 0
    out = capsys.readouterr().out
    humaneval = out.split("### HumanEval\n")[1].split("### MBPP")[0]
    assert "oci-eval humaneval, --feedback own, --prompt product" in humaneval
    assert "--feedback tests (oracle)" in humaneval
    assert "88.0 (44/50)" in humaneval
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_without_a_summary_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"table: {tmp_path / 'summary.json'} does not exist")
    assert "an oci-eval run folder?" in err


def test_a_paired_run_names_the_run_its_turn_1_came_from(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "paired",
        {"MBPP": [(30, 60.0), (31, 62.0)]},
        feedback="own",
        command="mbpp",
    )
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    summary["config"] = {
        **summary.get("config", {}),
        "first_turn": "replayed",
        "first_turn_from": "runs/mbpp-tests",
    }
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (row,) = load_rows(run)
    assert row.protocol.endswith(", turn 1 replayed from mbpp-tests")
    unpaired = write_run(tmp_path / "own", {"MBPP": [(30, 60.0), (31, 62.0)]}, command="mbpp")
    assert "replayed" not in load_rows(unpaired)[0].protocol
