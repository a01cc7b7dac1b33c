"""oci-eval dabench: InfiAgent-DABench through the chat's loop.

Everything but the last test runs on a made-up data folder (tests/dabench_fixture.py writes
it at run time: two small CSV files and four questions written for these tests; the
benchmark's own data is CC BY-NC 4.0 and never part of this repository). The scoring is
checked on made-up answers, the data check on altered copies, the harness with the scripted
test double and real kernels. The last test runs the first two questions of the real data on
the real bundled model (skipped when the data folder is absent).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.chat import ChatSession
from oci_jupyter.chat.store import ChatStore
from oci_jupyter.evaluation import dabench
from oci_jupyter.evaluation.cli import main
from oci_jupyter.evaluation.dabench import DataMismatch, load, quick_subset, request_text
from oci_jupyter.evaluation.dabench_report import summarize
from oci_jupyter.evaluation.dabench_runner import (
    DABenchSettings,
    browser_cut,
    prepare_folder,
    product_defaults,
    solve_question,
)
from oci_jupyter.evaluation.dabench_scoring import (
    Graded,
    extract_answers,
    figures,
    figures_by,
    is_equal,
    score,
)
from oci_jupyter.evaluation.problems import DataUnavailable
from oci_jupyter.evaluation.run_folder import RecordStore
from oci_jupyter.evaluation.runner import EngineModel
from oci_jupyter.loop import Budgets
from oci_jupyter.prompts import REQUEST_HINT, SYSTEM_PROMPT

from .dabench_fixture import made_up_dabench_data  # noqa: F401  (the fixture dabench_data)
from .eval_helpers import (
    reply,
    runtime_dir_in_tmp,  # noqa: F401  (an autouse fixture: importing it turns it on)
    scripted,
)

REAL_DATA = dabench.default_data_folder()
MEAN_CODE = "import pandas as pd\ndf = pd.read_csv('orders.csv')\nprint(df['price'].mean())"


def data_copy(data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(data, folder)
    for path in folder.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return folder


def question(number: int, folder: Path) -> dabench.Question:
    return next(q for q in load(folder).questions if q.id == number)


# ---- the scoring (the benchmark's rules) ----------------------------------------------------
def test_a_right_answer() -> None:
    scored = score("The mean is 12.5.\n@mean_price[12.50]", {"mean_price": "12.50"})
    assert scored.verdict == "right"
    assert scored.correct == {"mean_price": True}
    assert (scored.right, scored.total) == (1, 1)


def test_a_wrong_answer() -> None:
    scored = score("@mean_price[13.00]", {"mean_price": "12.50"})
    assert scored.verdict == "wrong"
    assert scored.correct == {"mean_price": False}
    # An answer under another name is no answer to this one.
    assert score("@average_price[12.50]", {"mean_price": "12.50"}).verdict == "wrong"


def test_a_partly_right_answer() -> None:
    labels = [("revenue", "150.5"), ("largest_total", "40.0"), ("largest_region", "north")]
    scored = score("@revenue[150.5] @largest_total[40] @largest_region[south]", labels)
    assert scored.verdict == "partly right"
    assert scored.correct == {"revenue": True, "largest_total": True, "largest_region": False}
    assert (scored.right, scored.total) == (2, 3)


def test_no_at_sign_at_all() -> None:
    scored = score("The average price is 12.50.", {"mean_price": "12.50"})
    assert scored.verdict == "no answer"
    assert scored.answers == {}
    assert scored.correct == {"mean_price": False}
    assert score("", {"mean_price": "12.50"}).verdict == "no answer"


def test_a_float_within_one_millionth() -> None:
    assert is_equal("0.3333334", "0.333333")  # 4e-7 apart
    assert is_equal("1e-7", "0")
    assert is_equal("12.5", "12.50")
    assert not is_equal("0.33334", "0.33333")  # 1e-5 apart
    assert is_equal("nan", "nan")  # equal as strings, as the benchmark compares first
    assert not is_equal(None, "1.0")
    assert score("@r[-0.2100001]", {"r": "-0.21"}).verdict == "right"


def test_a_string_answer() -> None:
    assert score("@top_region[north]", {"top_region": "north"}).verdict == "right"
    assert score("@top_region[North]", {"top_region": "north"}).verdict == "wrong"
    assert score("@top_region[ north]", {"top_region": "north"}).verdict == "wrong"
    assert score("@is_normal[False]", {"is_normal": "False"}).verdict == "right"


def test_extraction_follows_the_benchmarks_pattern() -> None:
    # A name given twice keeps its last value; a value ends at the first "]".
    assert extract_answers("@a[1] then @a[2]") == {"a": "2"}
    assert extract_answers("@pair[[1, 2]]") == {"pair": "[1, 2"}
    assert extract_answers("@with space[1] @ok[x y]") == {"ok": "x y"}
    assert extract_answers("@multi[a\nb]") == {}  # "." does not cross lines


def test_the_three_figures_by_level_and_concept() -> None:
    graded = [
        Graded({"a": True}, "easy", ["Summary Statistics"]),
        Graded({"a": True, "b": False}, "medium", ["Summary Statistics", "Correlation"]),
        Graded({"a": False, "b": False, "c": True}, "hard", ["Correlation"]),
        Graded({"a": False}, "hard", ["Outliers"], answered=False),
    ]
    result = figures(graded)
    assert result["questions"] == 4
    assert result["right"] == 1
    assert result["abq"] == 25.0
    assert result["psaq"] == round(100 * (1 + 0.5 + 1 / 3 + 0) / 4, 2)
    assert (result["sub_right"], result["sub_answers"]) == (3, 7)
    assert result["uasq"] == round(100 * 3 / 7, 2)
    assert result["answered"] == 3
    levels = figures_by(graded, "level")
    assert list(levels) == ["easy", "medium", "hard"]
    assert levels["hard"]["abq"] == 0.0
    concepts = figures_by(graded, "concept")
    assert concepts["Summary Statistics"]["questions"] == 2
    assert concepts["Summary Statistics"]["abq"] == 50.0
    assert figures([])["abq"] is None


# ---- the data and its check ------------------------------------------------------------------
def test_the_data_folder_loads_in_id_order(dabench_data: Path) -> None:
    data = load(dabench_data)
    assert [q.id for q in data.questions] == [1, 2, 3, 4]
    third = data.questions[2]
    assert third.task_id == "DABench/3"
    assert third.labels == (
        ("revenue", "150.5"),
        ("largest_total", "40.0"),
        ("largest_region", "north"),
    )
    assert third.csv == dabench_data / "tables" / "orders.csv"
    assert not data.published  # made up: not the published release
    assert "not the published release" in data.describe()["data_release"]


def test_a_file_whose_sha256_differs_is_refused(tmp_path: Path, dabench_data: Path) -> None:
    folder = data_copy(dabench_data, tmp_path)
    (folder / "tables" / "orders.csv").write_text("order_id,price\n1,1.0\n")
    with pytest.raises(DataMismatch, match=r"orders\.csv has sha256 .* refused"):
        load(folder)

    folder = data_copy(dabench_data, tmp_path / "b")
    with (folder / "da-dev-labels.jsonl").open("a") as handle:
        handle.write('{"id": 9, "common_answers": []}\n')
    with pytest.raises(DataMismatch, match=r"da-dev-labels\.jsonl has sha256"):
        load(folder)


def test_files_the_sums_leave_out_or_no_sums_are_refused(
    tmp_path: Path, dabench_data: Path
) -> None:
    folder = data_copy(dabench_data, tmp_path)
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    (folder / "SHA256SUMS").write_text("\n".join(s for s in sums if "weather" not in s) + "\n")
    with pytest.raises(DataMismatch, match=r"weather\.csv is not listed"):
        load(folder)
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(DataUnavailable, match=r"SHA256SUMS cannot be read.*--data PATH"):
        load(folder)


def test_without_a_data_folder_it_says_what_to_pass(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dabench_data: Path,
) -> None:
    monkeypatch.setattr(dabench, "repository_root", lambda: tmp_path / "a" / "repo")
    monkeypatch.chdir(tmp_path)
    assert dabench.default_data_folder() is None
    with pytest.raises(DataUnavailable, match=r"--data PATH"):
        load()
    assert main(["dabench", "--list"]) == 2
    assert "pass the DABench data folder with --data PATH" in capsys.readouterr().err
    # The current folder's ../shared/data/dabench is the other default.
    shutil.copytree(dabench_data, tmp_path / "shared" / "data" / "dabench")
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert dabench.default_data_folder() == (tmp_path / "shared" / "data" / "dabench").resolve()


def test_the_cli_refuses_altered_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dabench_data: Path
) -> None:
    folder = data_copy(dabench_data, tmp_path)
    (folder / "tables" / "weather.csv").write_text("day,temp_c\nmon,99\n")
    assert main(["dabench", "--list", "--data", str(folder)]) == 2
    assert "weather.csv has sha256" in capsys.readouterr().err
    assert main(["dabench", "--list", "--data", str(dabench_data)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == "DABench/1\teasy\tSummary Statistics\torders.csv"
    assert main(["dabench", "--list", "--data", str(dabench_data), "--ids", "4,dabench/2"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [
        "DABench/4",
        "DABench/2",
    ]
    assert main(["dabench", "--list", "--data", str(dabench_data), "--ids", "7"]) == 2
    assert "unknown question id: DABench/7" in capsys.readouterr().err


# ---- the request and the subset ----------------------------------------------------------------
def test_the_request_is_the_question_with_its_constraints_and_format(dabench_data: Path) -> None:
    q = question(2, dabench_data)
    text = request_text(q)
    assert text.startswith(q.question)
    assert f"Constraints: {q.constraints}" in text
    assert f"Answer format: {q.format}" in text
    assert "`orders.csv`" in text
    assert text == dabench.REQUEST_TEMPLATE.format(
        question=q.question, constraints=q.constraints, format=q.format, file_name=q.file_name
    )


def test_the_quick_subset_is_fixed_and_stratified_by_level(dabench_data: Path) -> None:
    questions = load(dabench_data).questions
    chosen = quick_subset(questions, size=3)
    # One of each level; the easy one is the middle of its two (ids 1 and 4).
    assert [q.id for q in chosen] == [2, 3, 4]
    assert quick_subset(questions, size=3) == chosen
    assert [q.id for q in quick_subset(questions, size=10)] == [1, 2, 3, 4]
    assert dabench._shares([82, 87, 88], 60) == [19, 20, 21]


QUICK_IDS = [
    8, 10, 25, 28, 34, 55, 64, 69, 77, 114, 117, 124, 140, 142, 174, 180, 210, 218, 249, 250,
    268, 272, 282, 309, 324, 337, 354, 363, 408, 414, 415, 425, 429, 450, 453, 466, 473, 507,
    513, 521, 527, 530, 542, 555, 574, 588, 604, 644, 650, 658, 665, 674, 683, 688, 723, 727,
    729, 736, 738, 756,
]  # fmt: skip
"""``--subset quick`` on the published data (ids only): docs/benchmarks.md lists them."""


@pytest.mark.skipif(REAL_DATA is None, reason="the DABench data folder is absent")
def test_the_quick_subset_of_the_real_data() -> None:
    data = load(REAL_DATA)
    assert data.published
    chosen = quick_subset(data.questions)
    assert [q.id for q in chosen] == QUICK_IDS
    levels = [q.level for q in chosen]
    assert (levels.count("easy"), levels.count("medium"), levels.count("hard")) == (19, 20, 21)


# ---- the chat's loop (scripted model, real kernels) ---------------------------------------------
async def ask(
    number: int, replies: list[str], tmp_path: Path, data: Path, **settings: Any
) -> tuple[dict[str, Any], Any]:
    engine = await scripted(replies)
    model = EngineModel(engine)
    record = await solve_question(
        question(number, data),
        model,
        DABenchSettings.product(**settings),
        tmp_path / "notebook",
        log_path=tmp_path / "kernel.log",
    )
    return record, engine


async def test_a_question_answered_after_one_step(tmp_path: Path, dabench_data: Path) -> None:
    listing = "import os\nprint(sorted(os.listdir()))\n" + MEAN_CODE
    words = "The mean price is @mean_price[12.50]."
    # Read as the chat reads a reply: up to where its code block closes.
    record, engine = await ask(
        1, [reply(listing) + "It prints 12.5.", words], tmp_path, dabench_data
    )
    assert record["verdict"] == "right"
    assert record["turns"][0]["reply"] == reply(listing).rstrip("\n")
    assert record["turns"][0]["finish_reason"] == "cut"
    assert record["final_words"] == "The mean price is @mean_price[12.50]."
    assert record["answers"] == {"mean_price": "12.50"}
    assert record["loop"]["status"] == "success"
    assert (record["loop"]["steps"], record["loop"]["replies"]) == (1, 2)
    first, second = record["turns"]
    # The notebook's folder holds the CSV file and nothing else.
    assert first["output"] == "['orders.csv']\n12.5\n"
    assert first["outcome"]["status"] == "ok"
    assert first["code"].startswith("import os")
    assert second["code"] is None
    assert record["seconds"]["question"] > 0
    assert record["tokens"]["completion"] > 0
    # The request is the user's words; the loop fed the run's output back.
    prompt = engine.prompts[0]
    assert prompt[0]["content"].startswith(SYSTEM_PROMPT)
    # The request's CSV file, previewed as the chat previews a file the request names.
    assert prompt[-1]["content"].startswith("Data files the request names")
    assert "order_id,region,price,quantity" in prompt[-1]["content"]
    assert prompt[-1]["content"].endswith(
        "Request:\n" + request_text(question(1, dabench_data)) + "\n\n" + REQUEST_HINT
    )
    assert "12.5" in engine.prompts[1][-1]["content"]
    assert engine.params[0].max_tokens == product_defaults().reply_tokens
    assert not (tmp_path / "notebook").exists()  # the notebook folder is gone afterwards


async def test_a_silent_step_shows_the_values_it_assigned(
    tmp_path: Path, dabench_data: Path
) -> None:
    silent = "import pandas as pd\nmean_price = float(pd.read_csv('orders.csv')['price'].mean())"
    record, engine = await ask(1, [reply(silent), "@mean_price[12.5]"], tmp_path, dabench_data)
    assert record["turns"][0]["values"] == [["mean_price", "12.5"]]
    assert "mean_price = 12.5" in engine.prompts[1][-1]["content"]
    assert record["verdict"] == "right"


async def test_an_error_is_fixed_and_a_partial_answer_scored(
    tmp_path: Path, dabench_data: Path
) -> None:
    typo = "import pandas as pd\ndf = pd.read_csv('orders.csv')\nprint(df['prices'].sum())"
    fixed = (
        "import pandas as pd\ndf = pd.read_csv('orders.csv')\ndf['total'] = df.price * df.quantity"
        "\nprint(df.total.sum(), df.total.max(), df.loc[df.total.idxmax(), 'region'])"
    )
    words = "@revenue[150.5] @largest_total[40.0] @largest_region[south]"
    record, _ = await ask(3, [reply(typo), reply(fixed), words], tmp_path, dabench_data)
    first, second, _third = record["turns"]
    assert first["outcome"]["ename"] == "KeyError"
    assert (second["step"], second["attempt"]) == (1, 2)
    assert second["output"] == "150.5 40.0 north\n"
    assert record["verdict"] == "partly right"
    assert (record["right"], record["total"]) == (2, 3)


async def test_words_without_the_format_are_no_answer(tmp_path: Path, dabench_data: Path) -> None:
    code = reply("import pandas as pd\nprint(pd.read_csv('weather.csv').temp_c.max())")
    record, _ = await ask(4, [code, "The highest is 23.0."], tmp_path, dabench_data)
    assert record["final_words"] == "The highest is 23.0."
    assert record["verdict"] == "no answer"


async def test_the_rewrite_protocol_adds_one_reply(tmp_path: Path, dabench_data: Path) -> None:
    code = reply("import pandas as pd\nprint(pd.read_csv('weather.csv').temp_c.max())")
    record, engine = await ask(
        4,
        [code, "The highest is 23.0.", "@max_temp[23.0]"],
        tmp_path,
        dabench_data,
        protocol="rewrite",
    )
    assert record["final_words_score"]["verdict"] == "no answer"
    assert record["rewrite"]["reply"] == "@max_temp[23.0]"
    assert record["verdict"] == "right"
    rewrite_prompt = engine.prompts[2]
    assert [m["role"] for m in rewrite_prompt] == ["user", "assistant", "user"]
    assert rewrite_prompt[1]["content"] == "The highest is 23.0."
    assert question(4, dabench_data).format in rewrite_prompt[2]["content"]


async def test_the_prompt_is_the_sidebars_for_a_notebook_without_cells(
    tmp_path: Path, dabench_data: Path
) -> None:
    """The chat session, asked the same words with no cells and no variables, sends the model
    the same first prompt (and the same reply room) as the harness."""
    record, ours = await ask(1, [reply(MEAN_CODE), "@mean_price[12.50]"], tmp_path, dabench_data)
    engine = await scripted(["No code here."])
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "done":
            done.set()

    # The notebook sits in the question's folder, beside its CSV file (previewed for both;
    # the harness removed its copy of the folder when the question ended).
    prepare_folder(question(1, dabench_data), tmp_path / "notebook")
    session = ChatSession(engine, ChatStore(tmp_path / "chats"), send, root_dir=tmp_path)
    ask_message = {
        "type": "ask",
        "id": "r1",
        "prompt": record["request"],
        "mode": "chat",
        "notebook": "notebook/analysis.ipynb",
    }
    await session.receive(json.dumps(ask_message))
    await asyncio.wait_for(done.wait(), 10)
    assert engine.prompts[0] == ours.prompts[0]
    assert "Data files the request names" in ours.prompts[0][-1]["content"]
    assert engine.params[0].max_tokens == ours.params[0].max_tokens


def test_the_settings_are_the_products_defaults() -> None:
    defaults = product_defaults()
    assert defaults.budgets == Budgets(attempts=3, steps=4, replies=8)
    assert defaults.read_results is True
    assert defaults.reply_tokens == 1024
    assert defaults.time_limit == 60.0
    settings = DABenchSettings.product()
    assert settings.budgets == defaults.budgets
    assert settings.describe()["mode"] == "chat"
    assert browser_cut("x" * 10) == "x" * 10
    cut = browser_cut("a" * 3000 + "b" * 3000)
    assert cut.startswith("a" * 1980)
    assert cut.endswith("b" * 1980)
    assert "2040 characters omitted" in cut


# ---- the command line --------------------------------------------------------------------------
def scripted_args(data: Path, replies: list[str], out: Path, *more: str) -> list[str]:
    return [
        "dabench",
        "--data",
        str(data),
        "--engine-class",
        "tests.doubles.ScriptedTestEngine",
        "--engine-kwargs",
        json.dumps({"replies": replies}),
        "--no-progress",
        "--out",
        str(out),
        *more,
    ]


def test_cli_runs_resumes_and_summarizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dabench_data: Path
) -> None:
    out = tmp_path / "run"
    replies = [reply(MEAN_CODE), "@mean_price[12.50]"]
    assert main(scripted_args(dabench_data, replies, out, "--ids", "1")) == 0
    printed = capsys.readouterr().out
    assert "| **This run**: scripted-test-model" in printed
    assert "--protocol format-asked | 1 | 100.0 (1/1) |" in printed
    assert "| gpt-4-0613 (leaderboard) | reformat (published) | 257 | 78.7 |" in printed
    assert {p.name for p in out.iterdir()} >= {
        "records.jsonl",
        "run.json",
        "summary.json",
        "summary.md",
        "abq_by_level.png",
    }
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["protocol"] == "format-asked"
    assert config["budgets"] == {"attempts": 3, "steps": 4, "replies": 8}
    assert config["request_template"] == dabench.REQUEST_TEMPLATE
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scores"]["abq"] == 100.0
    assert summary["by_level"]["easy"]["questions"] == 1

    assert main(scripted_args(dabench_data, replies, out, "--ids", "1")) == 2  # holds a run already
    assert "--resume" in capsys.readouterr().err
    assert (
        main(
            scripted_args(
                dabench_data, replies, out, "--ids", "1", "--resume", "--protocol", "rewrite"
            )
        )
        == 2
    )
    assert "protocol 'format-asked' -> 'rewrite'" in capsys.readouterr().err
    # Resuming with one more question runs only that one.
    more = [reply("import pandas as pd\nprint(pd.read_csv('weather.csv').temp_c.max())"), "23"]
    assert main(scripted_args(dabench_data, more, out, "--ids", "1,4", "--resume")) == 0
    capsys.readouterr()
    records = RecordStore(out).load()
    assert [r["task_id"] for r in records] == ["DABench/1", "DABench/4"]
    assert records[1]["verdict"] == "no answer"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scores"]["abq"] == 50.0
    assert summary["verdicts"] == {"right": 1, "no answer": 1}

    assert main(["dabench", "--summarize", str(out)]) == 0
    assert "| Summary Statistics | 2 | 50.0 (1/2) |" in capsys.readouterr().out

    from oci_jupyter.evaluation.table import main as table_main

    assert table_main([str(out)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("### DABench")
    assert "| **scripted-test-model**, run | --protocol format-asked | 2 |" in table


def test_cli_against_a_running_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dabench_data: Path
) -> None:
    """--url: a running Jupyter server's model, its window and tokenizer, its replies cut."""
    from .servers import jupyter_server

    script = tmp_path / "script.json"
    script.write_text(json.dumps({"replies": [reply(MEAN_CODE) + "Then...", "@mean_price[12.5]"]}))
    oci = {
        "engine_class": "tests.doubles.ScriptedTestEngine",
        "engine_kwargs": {"script_file": str(script)},
    }
    out = tmp_path / "endpoint"
    with jupyter_server(tmp_path, oci) as server:
        argv = [
            "dabench",
            "--url",
            server.url,
            "--token",
            server.token,
            "--data",
            str(dabench_data),
        ]
        assert main([*argv, "--ids", "1", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    (record,) = RecordStore(out).load()
    assert record["verdict"] == "right"
    assert record["turns"][0]["reply"] == reply(MEAN_CODE).rstrip("\n")
    assert record["turns"][0]["output"] == "12.5\n"
    prompts = json.loads(script.read_text())["prompts"]
    assert prompts[0][-1]["content"].endswith(
        "Request:\n" + request_text(question(1, dabench_data)) + "\n\n" + REQUEST_HINT
    )


def test_cli_rejects_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dabench_data: Path
) -> None:
    for argv in (["--workers", "0"], ["--protocol", "reformat"], ["--subset", "slow"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["dabench", *argv])
        assert exit_info.value.code == 2
    capsys.readouterr()
    assert main(["dabench", "--data", str(dabench_data), "--ids", "1", "--subset", "quick"]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main(["dabench", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_a_rewrite_run_reports_both_protocols(tmp_path: Path) -> None:
    records = [
        {
            "task_id": "DABench/1",
            "id": 1,
            "final": True,
            "level": "easy",
            "concepts": ["Summary Statistics"],
            "final_words": "It is 12.5.",
            "final_words_score": {"correct": {"mean_price": False}},
            "rewrite": {"reply": "@mean_price[12.50]"},
            "correct": {"mean_price": True},
            "verdict": "right",
            "loop": {"status": "success", "replies": 2, "steps": 1},
        }
    ]
    summary = summarize(records, config={"protocol": "rewrite", "model": "m"})
    assert summary["scores"]["abq"] == 100.0
    assert summary["also"]["format-asked"]["scores"]["abq"] == 0.0
    from oci_jupyter.evaluation.dabench_report import markdown

    text = markdown(summary)
    assert "| --protocol rewrite | 1 | 100.0 (1/1) |" in text
    assert "(the same conversations) | --protocol format-asked | 1 | 0.0 (0/1) |" in text


# ---- the real model -----------------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    REAL_DATA is None,
    reason="the DABench data folder (../shared/data/dabench) is absent; its license keeps it "
    "out of the repository",
)
def test_real_model_two_questions_end_to_end(
    bundled_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "real"
    argv = ["dabench", "--limit", "2", "--model-path", str(bundled_model), "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--protocol format-asked | 2 |" in printed
    records = RecordStore(out).load()
    assert [r["task_id"] for r in records] == ["DABench/0", "DABench/5"]
    for record in records:
        assert any(t["code"] for t in record["turns"]), record  # it computed with code
        assert record["verdict"] in ("right", "partly right", "wrong", "no answer")
        assert record["seconds"]["question"] > 0
    runs = [t["outcome"] for r in records for t in r["turns"] if t["outcome"]]
    assert any(run["status"] == "ok" for run in runs)  # code of its ran on the CSV file
    assert (out / "abq_by_level.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["questions"] == 2
    assert summary["config"]["data_release"].startswith("the published")
