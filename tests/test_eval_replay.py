"""``oci-eval --first-turn-from RUN_DIR``: turn 1 replayed from an earlier run (paired runs).

The scripted test double stands in for the model (it counts and keeps every prompt); the
hidden tests judge for real, under ``--feedback tests``, so no kernel is needed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.engine import GenerationParams, Message
from oci_jupyter.evaluation.benchmarks import get_benchmark
from oci_jupyter.evaluation.cli import main
from oci_jupyter.evaluation.replay import (
    ReplayModel,
    ReplayRefused,
    SourceRun,
    check_same_replies,
    load_source,
    message_key,
)
from oci_jupyter.evaluation.run_folder import RecordStore
from oci_jupyter.evaluation.runner import EngineModel, EvalSettings, Reply, run_evaluation

from .eval_helpers import (
    HUMANEVAL,
    MBPP,
    reply,
    runtime_dir_in_tmp,  # noqa: F401  (an autouse fixture: importing it turns it on)
    scripted,
    scripted_cli,
    scripted_prompts,
)

STRLEN = HUMANEVAL["HumanEval/23"]
ADD = HUMANEVAL["HumanEval/53"]
TRUNCATE = HUMANEVAL["HumanEval/2"]
SIMILAR = MBPP["Mbpp/2"]
NOT_PRIME = MBPP["Mbpp/3"]


STRLEN_ZERO = reply("def strlen(string: str) -> int:\n    return 0")
STRLEN_RIGHT = reply("def strlen(string: str) -> int:\n    return len(string)")
ADD_RIGHT = reply("def add(x: int, y: int):\n    return x + y")
TRUNCATE_RIGHT = reply("def truncate_number(number: float) -> float:\n    return number % 1.0")
SIMILAR_RIGHT = reply("def similar_elements(a, b):\n    return tuple(set(a) & set(b))")
PRIME_MEMORISED = reply(  # passes MBPP's five asserts, fails MBPP+'s inputs
    "def is_not_prime(n):\n    return n in (1, 10, 35)\n\nassert is_not_prime(10)"
)
PRIME_RIGHT = reply(
    "import math\n\ndef is_not_prime(n):\n    if n < 2:\n        return True\n"
    "    return any(n % i == 0 for i in range(2, math.isqrt(n) + 1))"
)
PAIRED = "(greedy, same messages): the protocols differ only in their feedback turns"
GREEDY = GenerationParams(max_tokens=512, temperature=0.0, top_p=1.0)


# ---- which first turns replay -----------------------------------------------------------------
def test_mbpp_and_mbppplus_ask_the_same_first_turn() -> None:
    """Why ``mbppplus`` can replay an ``mbpp`` run: all 399 first turns are word for word the
    same under either prompt (the benchmarks differ in their judging only)."""
    mbpp, plus = get_benchmark("mbpp"), get_benchmark("mbppplus")
    for prompt in ("product", "paper"):
        for problem in MBPP.values():
            ours = EvalSettings(benchmark="mbppplus", prompt=prompt).first_turn(plus, problem)
            theirs = EvalSettings(benchmark="mbpp", prompt=prompt).first_turn(mbpp, problem)
            assert message_key(ours) == message_key(theirs)


def test_a_reply_is_keyed_by_the_sources_own_first_turn() -> None:
    recorded = Reply(PRIME_MEMORISED, 300, 40, "stop", replayed=True)
    from_mbpp = SourceRun(Path("src"), {"benchmark": "mbpp"}, {"Mbpp/3": recorded})
    plus = EvalSettings(benchmark="mbppplus")
    replies = from_mbpp.replies_for([SIMILAR, NOT_PRIME], plus)
    first_turn = plus.first_turn(get_benchmark("mbppplus"), NOT_PRIME)
    assert replies == {message_key(first_turn): recorded}  # Mbpp/2 is not in the source

    # This run's first turn is another one (the paper's prompt): the key does not match.
    paper = EvalSettings(benchmark="mbppplus", prompt="paper")
    assert message_key(paper.first_turn(get_benchmark("mbppplus"), NOT_PRIME)) not in (
        from_mbpp.replies_for([NOT_PRIME], paper)
    )
    # A source recorded before there was a choice of benchmark was HumanEval's.
    old = SourceRun(Path("old"), {}, {"HumanEval/23": Reply(STRLEN_RIGHT, replayed=True)})
    he = EvalSettings()
    assert set(old.replies_for([STRLEN, ADD], he)) == {
        message_key(he.first_turn(get_benchmark("humaneval"), STRLEN))
    }


class CountingModel:
    """Answers every request with the same text, and counts them."""

    name = "counting"

    def __init__(self) -> None:
        self.asked: list[Sequence[Message]] = []

    async def reply(self, messages: Sequence[Message], params: Any, request_id: str) -> Reply:
        self.asked.append(messages)
        return Reply("generated", 1, 1)


async def test_the_replay_model_answers_recorded_greedy_first_turns_only() -> None:
    first_turn = EvalSettings().first_turn(get_benchmark("humaneval"), STRLEN)
    recorded = Reply(STRLEN_ZERO, 120, 9, "length", replayed=True)
    inner = CountingModel()
    model = ReplayModel(inner, {message_key(first_turn): recorded})
    assert model.name == "counting"

    assert await model.reply(list(first_turn), GREEDY, "t1") == recorded
    assert inner.asked == []
    # The next turn, another problem's first turn, and the same turn sampled hotter (after a
    # repeat: not the greedy reply that was recorded) go to the model.
    later = [*first_turn, {"role": "assistant", "content": STRLEN_ZERO}]
    other = EvalSettings().first_turn(get_benchmark("humaneval"), ADD)
    hot = GenerationParams(max_tokens=512, temperature=0.8, top_p=0.95)
    for messages, params in ((later, GREEDY), (other, GREEDY), (first_turn, hot)):
        assert (await model.reply(messages, params, "t")).text == "generated"
    assert len(inner.asked) == 3
    assert (model.replayed, model.generated) == (1, 3)


# ---- a paired run -----------------------------------------------------------------------------
async def test_a_paired_run_generates_only_what_the_source_does_not_hold(tmp_path: Path) -> None:
    source = tmp_path / "source"
    settings = EvalSettings(workers=1, feedback="tests")
    first = await scripted([STRLEN_ZERO, STRLEN_RIGHT, ADD_RIGHT])
    await run_evaluation([STRLEN, ADD], EngineModel(first), settings, source, progress=False)
    recorded = {r["task_id"]: r for r in RecordStore(source).load() if r["turn"] == 1}

    engine = await scripted([STRLEN_RIGHT, TRUNCATE_RIGHT])  # strlen's turn 2, truncate's turn 1
    problems = [STRLEN, ADD, TRUNCATE]  # HumanEval/2 is not in the source: generated
    model = ReplayModel(EngineModel(engine), load_source(source).replies_for(problems, settings))
    out = tmp_path / "paired"
    summary = await run_evaluation(
        problems, model, settings, out, progress=False, config={"first_turn": "replayed"}
    )

    assert (model.replayed, model.generated) == (2, 2)
    strlen_turn_two, truncate_turn_one = engine.prompts  # never a replayed first turn
    assert strlen_turn_two[-2] == {"role": "assistant", "content": STRLEN_ZERO}
    assert strlen_turn_two[-1]["content"].startswith("Execution result: \n")
    assert truncate_turn_one == settings.first_turn(get_benchmark("humaneval"), TRUNCATE)

    records = RecordStore(out).load()
    by_turn = {(r["task_id"], r["turn"]): r for r in records}
    for task in ("HumanEval/23", "HumanEval/53"):
        replayed = by_turn[(task, 1)]
        assert replayed["replayed"] is True
        assert replayed["reply"] == recorded[task]["reply"]
        assert replayed["tokens"] == recorded[task]["tokens"]
        assert replayed["finish_reason"] == recorded[task]["finish_reason"]
        assert replayed["seconds"]["generate"] < 0.5  # nothing was generated
    assert "replayed" not in by_turn[("HumanEval/23", 2)]
    assert "replayed" not in by_turn[("HumanEval/2", 1)]
    assert [r["passed"] for r in records] == [False, True, True, True]
    assert summary["first_turns_replayed"] == 2
    assert [r["passed"] for r in summary["pass_at_1_by_turn"]] == [2, 3]
    table = (out / "summary.md").read_text()
    assert PAIRED in table
    assert "Replayed for 2 of 3 problems; generated for the other 1" in table


# ---- the command line -------------------------------------------------------------------------
def source_run(tmp_path: Path) -> Path:
    """A tiny source run, written by a first scripted run: MBPP, feedback from its asserts."""
    folder = tmp_path / "mbpp-tests"
    script = tmp_path / "source.json"
    argv = ["mbpp", "--feedback", "tests", "--problems", "3", "--out", str(folder)]
    assert main([*argv, *scripted_cli(script, [PRIME_MEMORISED])]) == 0
    return folder


def test_the_cli_replays_turn_one_of_another_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mbppplus --feedback tests`` paired with an ``mbpp --feedback tests`` run."""
    source = source_run(tmp_path)
    capsys.readouterr()
    out = tmp_path / "mbpp+-tests-paired"
    script = tmp_path / "paired.json"
    argv = [
        "mbppplus",
        "--feedback",
        "tests",
        "--problems",
        "2,3",
        "--first-turn-from",
        str(source),
        "--out",
        str(out),
    ]
    assert main([*argv, *scripted_cli(script, [SIMILAR_RIGHT, PRIME_RIGHT])]) == 0
    captured = capsys.readouterr()
    assert f"turn 1 replayed from {source} for 1 of 2 problems" in captured.err
    assert "generated for 1" in captured.err

    # Asked: Mbpp/2's first turn (not in the source) and Mbpp/3's feedback turn, nothing else.
    similar_first, prime_second = scripted_prompts(script)
    assert similar_first == EvalSettings().first_turn(get_benchmark("mbppplus"), SIMILAR)
    assert prime_second[-2] == {"role": "assistant", "content": PRIME_MEMORISED}
    assert prime_second[-1]["content"].startswith("Execution result: \nThe results aren't")

    records = RecordStore(out).load()
    assert [(r["task_id"], r["turn"], r.get("replayed")) for r in records] == [
        ("Mbpp/2", 1, None),
        ("Mbpp/3", 1, True),
        ("Mbpp/3", 2, None),
    ]
    replayed = records[1]
    assert replayed["reply"] == PRIME_MEMORISED
    assert replayed["scores"]["MBPP+"]["passed"] is False  # judged by this run's benchmark
    assert replayed["scores"]["MBPP"]["passed"] is True
    assert records[2]["passed"] is True

    config = json.loads((out / "run.json").read_text())["config"]
    assert config["first_turn"] == "replayed"
    assert config["first_turn_from"] == str(source)  # as given
    assert config["first_turns_replayed"] == 1
    source_config = json.loads((source / "run.json").read_text())["config"]
    assert source_config["first_turn"] == "generated"
    table = (out / "summary.md").read_text()
    assert f"turn 1 replayed from {source} {PAIRED}" in table
    assert "Replayed for 1 of 2 problems; generated for the other 1" in table
    assert "MBPP+, --feedback tests, --success first-run | 50.0 (1/2) | 100.0 (2/2) |" in table

    assert main(["--summarize", str(out)]) == 0  # rewritten from the records: still paired
    assert PAIRED in capsys.readouterr().out


def test_the_cli_refuses_a_source_whose_replies_are_not_this_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = source_run(tmp_path)

    def recorded_with(name: str, **config: Any) -> Path:
        """A copy of the source whose run.json says it was run with ``config``."""
        folder = tmp_path / name
        shutil.copytree(source, folder)
        run = json.loads((folder / "run.json").read_text())
        run["config"].update(config)
        (folder / "run.json").write_text(json.dumps(run))
        return folder

    other = recorded_with("other-model", model="another-model")
    sampled = recorded_with("sampled", temperature=0.7)
    longer = recorded_with("longer-context", context_length=8192)
    capsys.readouterr()

    out = tmp_path / "refused"
    script = tmp_path / "refused.json"
    cases: list[tuple[str, list[str], str]] = [
        ("mbppplus", ["--temperature", "0.2"], "this run has temperature 0.2 (must be 0 in"),
        ("mbppplus", ["--max-tokens", "256"], "max_tokens 512 there, 256 here"),
        ("mbppplus", ["--prompt", "paper"], "prompt 'product' there, 'paper' here"),
        ("mbppplus", ["--first-turn-from", str(longer)], "context_length 8192 there, None"),
        ("mbppplus", ["--first-turn-from", str(other)], "model 'another-model' there"),
        ("mbppplus", ["--first-turn-from", str(sampled)], f"{sampled} has temperature 0.7"),
        ("mbppplus", ["--first-turn-from", str(tmp_path / "nowhere")], "no such run folder"),
        ("mbppplus", ["--first-turn-from", str(tmp_path)], "no run.json there"),
        ("humaneval", ["--problems", "23"], "nothing to replay"),
    ]
    for benchmark, options, message in cases:
        argv = [benchmark, "--feedback", "tests", "--out", str(out), *options]
        for name, value in (("--first-turn-from", str(source)), ("--problems", "3")):
            if name not in options:
                argv += [name, value]
        assert main([*argv, *scripted_cli(script, [PRIME_RIGHT])]) == 2
        error = capsys.readouterr().err
        assert message in error, (options, error)
        assert "--first-turn-from" in error
        assert scripted_prompts(script) == []  # nothing was asked
        assert not (out / "records.jsonl").exists()


def test_resume_does_not_mix_replayed_and_generated_first_turns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = source_run(tmp_path)
    script = tmp_path / "script.json"
    paired = tmp_path / "paired"
    argv = ["mbppplus", "--feedback", "tests", "--problems", "3"]
    pairing = ["--first-turn-from", str(source)]
    assert main([*argv, *pairing, "--out", str(paired), *scripted_cli(script, [PRIME_RIGHT])]) == 0
    capsys.readouterr()
    assert main([*argv, "--out", str(paired), "--resume", *scripted_cli(script, [])]) == 2
    assert "first_turn 'replayed' -> 'generated'" in capsys.readouterr().err
    assert main([*argv, *pairing, "--out", str(paired), "--resume", *scripted_cli(script, [])]) == 0
    capsys.readouterr()

    generated = tmp_path / "generated"
    options = ["--out", str(generated), *scripted_cli(script, [PRIME_MEMORISED, PRIME_RIGHT])]
    assert main([*argv, *options]) == 0
    run = json.loads((generated / "run.json").read_text())
    del run["config"]["first_turn"]  # as a run recorded before there was a choice
    (generated / "run.json").write_text(json.dumps(run))
    capsys.readouterr()
    resumed = ["--out", str(generated), "--resume", *scripted_cli(script, [])]
    assert main([*argv, *pairing, *resumed]) == 2
    assert "first_turn 'generated' -> 'replayed'" in capsys.readouterr().err
    assert main([*argv, *resumed]) == 0


def test_check_same_replies_compares_the_model_files_name_only() -> None:
    here = {
        "model": "m",
        "model_file": "/one/place/model.gguf",
        "temperature": 0.0,
        "max_tokens": 512,
        "prompt": "product",
        "context_length": 8192,
    }
    check_same_replies({**here, "model_file": "/another/place/model.gguf"}, here)
    with pytest.raises(ReplayRefused, match=r"model_file 'other\.gguf' there, 'model\.gguf' here"):
        check_same_replies({**here, "model_file": "/one/place/other.gguf"}, here)
    with pytest.raises(ReplayRefused, match="model_file None there"):
        check_same_replies({k: v for k, v in here.items() if k != "model_file"}, here)
