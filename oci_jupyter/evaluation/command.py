"""What the ``oci-eval`` commands share (:mod:`.cli`, :mod:`.dabench_cli`): the options that
choose the model and opening it, the run folder's options and checks, the argument types,
and the exit statuses.

Exit status: 0 done; 1 the model failed during the run (what finished is kept); 2 bad options
or a model/server that cannot be reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..engine import Engine
from .models import EndpointModel, EngineModel, ModelUnavailable, ReplyModel
from .run_folder import RecordStore, load_run

ENGINES = ("auto", "llamacpp", "vllm", "openai")
ENGINE_TRAITS = {
    "model_path": "model_path",
    "n_ctx": "n_ctx",
    "n_threads": "n_threads",
    "vllm_model": "vllm_model",
    "base_url": "openai_base_url",
    "api_key": "openai_api_key",
    "model": "openai_model",
    "engine_class": "engine_class",
    "engine_kwargs": "engine_kwargs",
}
"""The model options (their ``args`` names) and the ``c.OCI`` trait each one sets: the engine
is the server's own (``OCI.create_engine``)."""


class CliError(Exception):
    """A clear message for the user; exit status 2."""


def _number(
    text: str, kind: type[int] | type[float], ok: Callable[[float], bool], rule: str
) -> Any:
    """``text`` as a ``kind`` for which ``ok`` holds; else argparse's error with ``rule``."""
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{rule}, not {text}")
    return value


def positive_int(text: str) -> int:
    value: int = _number(text, int, lambda v: v >= 1, "must be at least 1")
    return value


def positive_float(text: str) -> float:
    value: float = _number(text, float, lambda v: v > 0, "must be more than 0")
    return value


def temperature(text: str) -> float:
    value: float = _number(text, float, lambda v: 0 <= v <= 2, "must be between 0 and 2")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the model (an engine in this process, or a server's), shared
    by every benchmark's command line (``oci-eval dabench`` too)."""
    model = parser.add_argument_group("the model: an engine in this process, or a server")
    model.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="engine to host in this process (default: auto, as the server: vLLM with a GPU, "
        "else llama.cpp with the bundled model)",
    )
    model.add_argument("--url", help="a running Jupyter server with oci_jupyter (its model)")
    model.add_argument("--token", default=None, help="that server's token (default: $OCI_TOKEN)")
    model.add_argument("--model-path", help="llama.cpp: a GGUF file instead of the bundled one")
    model.add_argument("--n-ctx", type=positive_int, help="llama.cpp: context window")
    model.add_argument("--n-threads", type=positive_int, help="llama.cpp: CPU threads")
    model.add_argument("--vllm-model", help="vLLM: a Hugging Face id or a model folder")
    model.add_argument("--base-url", help="openai: the server's base URL, e.g. http://h:8000/v1")
    model.add_argument("--api-key", help="openai: API key (default: $OCI_OPENAI_API_KEY)")
    model.add_argument("--model", help="openai: model id (default: the first served)")
    model.add_argument(
        "--engine-class",
        help="advanced: an Engine subclass to host (module.Class), as c.OCI.engine_class",
    )
    model.add_argument(
        "--engine-kwargs", type=json.loads, help="advanced: its keyword arguments, as JSON"
    )


def check_model_options(args: argparse.Namespace) -> None:
    """The model options (:func:`add_model_arguments`) agree with each other."""
    engine_options = {
        "--model-path": (args.model_path, ("auto", "llamacpp")),
        "--n-ctx": (args.n_ctx, ("auto", "llamacpp")),
        "--n-threads": (args.n_threads, ("auto", "llamacpp")),
        "--vllm-model": (args.vllm_model, ("vllm",)),
        "--base-url": (args.base_url, ("openai",)),
        "--api-key": (args.api_key, ("openai",)),
        "--model": (args.model, ("openai",)),
    }
    if args.url:
        if args.engine or args.engine_class:
            raise CliError("--url uses a running server's model: leave out --engine")
        given = [name for name, (value, _) in engine_options.items() if value is not None]
        if given:
            raise CliError(f"{', '.join(given)} configure an in-process engine, not --url")
        return
    if args.token is not None:
        raise CliError("--token goes with --url")
    engine = args.engine or "auto"
    for name, (value, engines) in engine_options.items():
        if value is not None and engine not in engines and not args.engine_class:
            raise CliError(f"{name} is an option of --engine {' / '.join(engines)}")
    if engine == "openai" and not args.base_url and not args.engine_class:
        raise CliError("--engine openai needs --base-url")
    if args.engine_kwargs is not None and not args.engine_class:
        raise CliError("--engine-kwargs goes with --engine-class")


def add_run_arguments(
    parser: argparse.ArgumentParser, *, unit: str, workers: int, prefix: str
) -> None:
    """The options of the run and its folder; ``unit``: what a worker takes (``problems``)."""
    run = parser.add_argument_group("the run")
    run.add_argument(
        "--workers",
        type=positive_int,
        default=workers,
        help=f"{unit} at once, each in its own kernel (the model generates one at a time)",
    )
    run.add_argument("--out", type=Path, help=f"output folder (default: ./{prefix}-<timestamp>)")
    run.add_argument(
        "--resume", action="store_true", help=f"continue the run in --out: skip finished {unit}"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    run.add_argument(
        "--summarize",
        type=Path,
        metavar="DIR",
        help="only write DIR's summary (json, md, png) from its records, and print it",
    )


def run_command(
    parser: argparse.ArgumentParser, prog: str, unit: str, command: Callable[[], int]
) -> int:
    """``command()``, its errors turned into the exit statuses (see the module's docstring)."""
    try:
        return command()
    except CliError as exc:
        parser.print_usage(sys.stderr)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except ModelUnavailable as exc:
        print(f"{prog}: the model stopped answering: {exc}", file=sys.stderr)
        print(f"Finished {unit} are kept; continue with --resume.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; continue with --resume.", file=sys.stderr)
        return 130


def out_folder(args: argparse.Namespace, prefix: str) -> Path:
    """``--out``, else a new ``prefix-<timestamp>``; one that holds records only with
    ``--resume``."""
    out: Path = args.out or Path(f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}")
    if not args.resume and RecordStore(out).load():
        raise CliError(f"{out} already holds records: add --resume to continue that run")
    return out


def check_resume(
    out: Path,
    config: Mapping[str, Any],
    keys: Sequence[str],
    before_choices: Mapping[str, Any] | None = None,
) -> None:
    """Refuse to resume ``out`` under another protocol: any of ``keys`` whose value differs
    from its run's (``before_choices``: the values of runs recorded before a key existed)."""
    run = load_run(out)
    if not run:
        return  # nothing recorded yet
    before = {**(before_choices or {}), **run.get("config", {})}
    changed = [
        f"{key} {before[key]!r} -> {config.get(key)!r}"
        for key in keys
        if key in before and before[key] != config.get(key)
    ]
    if changed:
        raise CliError(
            f"--resume would mix two protocols in {out}: {'; '.join(changed)}. "
            "Use the first run's options, or another --out."
        )


async def open_model(args: argparse.Namespace) -> tuple[ReplyModel, Engine | None, dict[str, Any]]:
    """The model to evaluate, checked before any problem starts."""
    from ..client import ModelRequestError, ServerInfo, ServerUnavailable

    if args.url:
        token = args.token if args.token is not None else os.environ.get("OCI_TOKEN", "")
        endpoint = EndpointModel(ServerInfo(args.url, token, "--url"))
        try:
            served = await asyncio.to_thread(wait_for_server, endpoint)
        except (ServerUnavailable, ModelRequestError) as exc:
            endpoint.close()
            raise CliError(str(exc)) from exc
        described = {
            "model": served.get("model", "?"),
            "engine": f"server {args.url} ({served.get('engine', '?')} {served.get('device', '')})",
            "context_length": served.get("context_length"),
        }
        return endpoint, None, described

    from ..config import OCI

    traits: dict[str, Any] = {"engine": args.engine or "auto"}
    for option, trait in ENGINE_TRAITS.items():
        if getattr(args, option) is not None:
            traits[trait] = getattr(args, option)
    try:
        engine = OCI(**traits).create_engine()
    except Exception as exc:  # a bad class path, a trait that does not validate
        raise CliError(f"cannot create the engine: {exc}") from exc
    print(f"oci-eval: loading the model ({engine.status.engine})...", file=sys.stderr)
    status = await engine.wait_ready()
    if status.state != "ready":
        await engine.shutdown()
        raise CliError(f"the model did not load: {status.error or status.state}")
    described = {
        "model": status.model,
        "engine": f"{status.engine} in-process ({status.device})",
        "context_length": status.context_length,
    }
    model_file = getattr(engine, "model_file", None)
    if model_file is not None:
        described["model_file"] = str(model_file)
    if status.engine == "llamacpp":
        described["llama_cpp_python"] = version_of("llama_cpp_python")
    return EngineModel(engine), engine, described


def wait_for_server(endpoint: EndpointModel, timeout: float = 600.0) -> dict[str, Any]:
    """The server's status once its model is ready (it may still be loading)."""
    from ..client import ModelRequestError

    deadline = time.monotonic() + timeout
    while True:
        status = endpoint.check()
        state = status.get("state")
        if state == "ready":
            return status
        if state in ("error", "stopped") or time.monotonic() > deadline:
            reason = status.get("error") or status.get("detail") or state
            raise ModelRequestError(503, f"the server's model is not ready: {reason}")
        time.sleep(1.0)


async def close_model(model: ReplyModel, engine: Engine | None) -> None:
    if engine is not None:
        await engine.shutdown()
    if isinstance(model, EndpointModel):
        model.close()


def version_of(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
