"""Served judgments/s of the reward server with dynamic batching against one request per forward, same judge, same
requests, 16 concurrent clients (`ab.alternate`: the two servers run side by side and are loaded in turn).

    python benchmarks/bench_serve.py [--clients 16] [--requests 4] [--tokens 4] [--repeats 5]

Ours: `max_batch_size=16` (requests of one batch judged in one call). Baseline: `max_batch_size=1`, what a server
that runs one forward per request does. Each client sends `--requests` score requests (one image each) one after
another. The last line is `ratio=<ours/baseline>` (target >= 3 at 16 clients).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ab import alternate, report
from bench_judge import tiny_judge
from unified_reward.serving.client import JudgeClient, media_data_url
from unified_reward.serving.process import ServerProcess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="requests per client per round")
    parser.add_argument("--tokens", type=int, default=4, help="visual tokens per image")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    tiny_judge(args.tokens, 16, prefix_reuse=True).save_pretrained(folder / "judge")
    rng = np.random.default_rng(0)
    images = [
        media_data_url(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
        for _ in range(args.clients * args.requests)
    ]
    common = [f"judge={folder / 'judge'}", "chat=false", "batch_size=16", "accelerator=cpu"]
    servers = {
        "dynamic batching": ServerProcess(
            *common,
            "max_batch_size=16",
            "batch_timeout=0.01",
            f"hydra.run.dir={folder / 'batched'}",
            log=folder / "batched.log",
        ),
        "one per forward": ServerProcess(
            *common, "max_batch_size=1", f"hydra.run.dir={folder / 'single'}", log=folder / "single.log"
        ),
    }

    def measure(server: ServerProcess):
        client = JudgeClient(server.url)

        def one_client(index: int) -> None:
            for k in range(args.requests):
                client.score("image_generation", "two red circles", images[index * args.requests + k])

        def run() -> float:
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(one_client, range(args.clients)))
            return args.clients * args.requests / (time.perf_counter() - started)

        return run

    try:
        for server in servers.values():
            server.start()
        print(
            f"{args.clients} clients x {args.requests} score requests per round, tiny Qwen2-VL judge, "
            f"{args.tokens} visual tokens per image, CPU"
        )
        results = alternate({name: measure(s) for name, s in servers.items()}, repeats=args.repeats, warmup=args.warmup)
    finally:
        for server in servers.values():
            server.stop()
    report(results, "dynamic batching", "one per forward", unit="judgments/s")


if __name__ == "__main__":
    main()
