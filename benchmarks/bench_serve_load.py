"""The reward server under hostile load: 16 concurrent clients, a fifth of whose requests are bad (non-finite or
boolean scales, scales the judge cannot read or that would buy unbounded work, lone surrogates, oversized text,
corrupt media, missing fields), against the same clients sending only valid requests, on one server, loaded in turn
(`ab.alternate`).

    python benchmarks/bench_serve_load.py [--clients 16] [--seconds 20] [--bad 0.2] [--repeats 5]

Each round every client sends requests one after another for `--seconds`. Checked in every round: no 5xx, each
valid answer equal to the server's own first answer to that request (every request is tagged by its index into a
table of bodies), each bad request a 4xx; reported: p50 / p95 latency of valid requests, the server's memory before
and after. The last line is `ratio=<valid answers/s with bad requests mixed in / valid answers/s without>`: near
1 when bad requests cost the server next to nothing (they are refused before any judging).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ab import alternate, report
from bench_judge import tiny_judge
from unified_reward.serving.client import JudgeClient, ServerError, media_data_url
from unified_reward.serving.process import ServerProcess

TOKEN = "bench-token"


def image(seed: int) -> str:
    return media_data_url(Image.fromarray(np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)))


def body(op: str, **fields) -> dict:
    base = {"op": op, "task": "image_generation", "prompt": "two red circles"}
    if op == "score":
        base["candidate"] = image(0)
    else:
        base["candidates"] = [image(i) for i in range(2 if op == "compare" else 3)]
    return base | fields


def close(a, b, tol: float = 1e-4) -> bool:
    """Equal up to float noise (a request batched with others is computed in another padding)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
    return abs(a - b) <= tol


def valid_bodies() -> list[dict]:
    understanding = {"task": "image_understanding", "prompt": "What colour is it?", "context": image(9)}
    return [
        body("score"),
        body("score", prompt="one blue square", candidate=image(4)),
        body("compare", both_orders=True),
        body("group_rewards"),
        body("group_rewards", candidates=["red", "blue", "green"]) | understanding,
    ]


def bad_bodies() -> list[dict]:
    return [
        body("score", scale=[1, float("inf")]),
        body("score", scale=[float("nan"), 5]),
        body("score", scale=[True, 5]),
        body("score", scale=[1, 200000]),
        body("score", scale=[1, 100]),
        body("score", prompt="two red \ud800 circles"),
        body("compare", prompt="x" * 30_000),
        body("score", candidate="data:image/png;base64,!!"),
        body("group_rewards", candidates=[]),
        {"op": "score"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--bad", type=float, default=0.2, help="share of bad requests in the mixed rounds")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-load-"))
    tiny_judge(4, 16, prefix_reuse=True).save_pretrained(folder / "judge")
    server = ServerProcess(
        f"judge={folder / 'judge'}",
        f"token={TOKEN}",
        "chat=false",
        "batch_size=16",
        "accelerator=cpu",
        f"hydra.run.dir={folder / 'run'}",
        log=folder / "server.log",
    )
    valid, bad = valid_bodies(), bad_bodies()
    latencies: dict[str, list[float]] = {"mixed": [], "valid only": []}
    problems: list[str] = []

    def measure(name: str, bad_share: float):
        client = JudgeClient(server.url, token=TOKEN, timeout=120)

        def one_client(index: int) -> int:
            rng = np.random.default_rng([index, len(latencies[name])])
            answered, deadline = 0, time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                is_bad = rng.random() < bad_share
                tag = int(rng.integers(len(bad) if is_bad else len(valid)))
                started = time.perf_counter()
                try:
                    result = client.post("/v1/judge", bad[tag] if is_bad else valid[tag])
                    if is_bad:
                        problems.append(f"bad request {tag} answered")
                    elif not close(result, wanted[tag]):
                        problems.append(f"valid request {tag} got another answer")
                    else:
                        answered += 1
                        latencies[name].append(time.perf_counter() - started)
                except ServerError as error:
                    if not (is_bad and 400 <= error.status < 500):
                        problems.append(f"{'bad' if is_bad else 'valid'} request {tag}: {error.status} {error.message}")
            return answered

        def run() -> float:
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                answered = sum(pool.map(one_client, range(args.clients)))
            return answered / (time.perf_counter() - started)

        return run

    with server:
        client = JudgeClient(server.url, token=TOKEN, timeout=120)
        wanted = [client.post("/v1/judge", b) for b in valid]
        memory_before = server.memory_bytes() / 2**20
        print(
            f"{args.clients} clients, {args.seconds:g} s per round, {args.bad:.0%} bad requests in the mixed rounds, "
            "tiny Qwen2-VL judge, CPU"
        )
        results = alternate(
            {"mixed": measure("mixed", args.bad), "valid only": measure("valid only", 0.0)},
            repeats=args.repeats,
            warmup=args.warmup,
        )
        memory_after = server.memory_bytes() / 2**20
    for name, seconds in latencies.items():
        ordered = sorted(seconds)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(f"{name:>24s}: valid latency p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    print(f"server memory {memory_before:.0f} MiB before, {memory_after:.0f} MiB after; problems: {len(problems)}")
    for problem in sorted(set(problems))[:20]:
        print(f"  {problem}")
    report(results, "mixed", "valid only", unit="valid answers/s")


if __name__ == "__main__":
    main()
