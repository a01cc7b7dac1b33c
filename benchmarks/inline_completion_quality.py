"""Ghost text's quality: HumanEval infilling through the server's endpoints with the bundled
model (oci_jupyter/evaluation/infilling.py), each prompt style on the same problems, beside
the Qwen2.5-Coder report's HumanEval-FIM figures for its base models.

    python benchmarks/inline_completion_quality.py --styles fim,chat --every 4
    python benchmarks/inline_completion_quality.py --styles fim            # all 1,033

The data folder is not in the repository (``--data``, default ../shared/data/
humaneval-infilling). Prints the CPU, the load and the model's decoding speed with the
figures; ``--out-dir`` keeps one JSON line per problem (a rerun resumes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import format_table, running_server
from oci_jupyter.engine.llamacpp import cpu_model
from oci_jupyter.evaluation.infilling import (
    DEFAULT_DATA,
    FILES,
    EndpointClient,
    evaluate,
    load_problems,
    summary,
)

PUBLISHED = {
    # Qwen2.5-Coder Technical Report (arXiv:2409.12186v3), Table 7, HumanEval-FIM Python,
    # exact match of the first generated line, base models.
    "Qwen2.5-Coder-0.5B (base)": 70.3,
    "Qwen2.5-Coder-1.5B (base)": 77.0,
    "Qwen2.5-Coder-3B (base)": 78.7,
    "Qwen2.5-Coder-7B (base)": 79.7,
}


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


async def decode_speed(client: EndpointClient) -> float:
    """Tokens a second of one plain continuation (the model's decoding speed now)."""
    response = await client._client.post(
        "oci/v1/completions",
        json={
            "prompt": "# numbers from 1 to 100\nnumbers = [1, 2, 3,",
            "max_tokens": 48,
            "temperature": 0,
        },
    )
    started = time.monotonic()
    response = await client._client.post(
        "oci/v1/completions",
        json={
            "prompt": "# numbers from 1 to 100\nnumbers = [1, 2, 3, 4,",
            "max_tokens": 48,
            "temperature": 0,
        },
    )
    tokens = response.json()["usage"]["completion_tokens"]
    return tokens / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--kind", choices=list(FILES), default="single")
    parser.add_argument("--styles", default="fim,chat")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out-dir", type=Path)
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args()
    problems = load_problems(args.data, args.kind, args.every, args.limit)
    styles = [s for s in args.styles.split(",") if s]
    print(f"CPU: {cpu_model()}; load {load()}; {len(problems)} {args.kind}-line problems")
    rows, report = [], {"cpu": cpu_model(), "kind": args.kind, "every": args.every, "runs": {}}
    with running_server({"engine": "llamacpp", "n_ctx": 4096}, timeout=600) as (server, status):
        print(f"model: {status['model']} ({status['device']})")

        async def run() -> None:
            client = EndpointClient(server.base_url, server.token)
            try:
                speed = await decode_speed(client)
                for style in styles:
                    out = None
                    if args.out_dir:
                        args.out_dir.mkdir(parents=True, exist_ok=True)
                        out = args.out_dir / f"{args.kind}-{style}-every{args.every}.jsonl"
                    before = load()
                    results = await evaluate(client, problems, style, args.max_tokens, out)
                    after = load()
                    result = summary(results)
                    report["runs"][style] = {**result, "load": [before, after], "tok_s": speed}
                    rows.append(
                        [
                            style,
                            result["problems"],
                            result["pass@1"],
                            result["pass@1_first_line"],
                            result["exact_match_first_line"],
                            result["seconds_per_problem"],
                            f"{before} -> {after}",
                        ]
                    )
                    print(json.dumps({style: result}), flush=True)
                report["tok_s"] = round(speed, 1)
            finally:
                await client.close()

        asyncio.run(run())
    print(f"decoding: {report.get('tok_s')} tok/s; CPU {cpu_model()}")
    print(
        format_table(
            ["style", "problems", "pass@1", "pass@1 1st line", "EM 1st line", "s/problem", "load"],
            rows,
        )
    )
    print("published (Qwen2.5-Coder report, Table 7, HumanEval-FIM Python, EM):")
    for name, value in PUBLISHED.items():
        print(f"  {name}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
