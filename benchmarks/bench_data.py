"""Samples/s of our shard reader with 8-frame video decoding vs a bare decord loop over the same videos.

    python benchmarks/bench_data.py [--records 800] [--size 64] [--repeats 5] [--warmup 1]

Ours: `ShardStream` over video shards (tar read, JSON parse, record validation, decord decode of
8 uniformly sampled frames from bytes). Baseline: the same mp4 files extracted to disk and read by
a plain loop of `decord.VideoReader(path)` + `get_batch` of the same 8 indices. Single process,
one decoding thread each, alternated (`ab.alternate`). The last line is `ratio=<median ours / median baseline>`
(higher is better; target >= 0.8).
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import decord

from ab import alternate, report
from unified_reward.data.media import VideoSampling
from unified_reward.data.reading import ShardStream
from unified_reward.data.shards import ShardSetWriter
from unified_reward.synthetic.world import WorldConfig, make_record


def build(folder: Path, records: int, size: int) -> tuple[list[str], list[Path]]:
    config = WorldConfig(seed=0, image_size=size)
    with ShardSetWriter(folder / "shards", max_count=200) as writer:
        writer.write_all(make_record(config, "train", "video_generation", "point", i) for i in range(records))
    shards = sorted(str(p) for p in (folder / "shards").glob("*.tar"))
    videos = folder / "videos"
    videos.mkdir()
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".mp4"):
                    (videos / member.name).write_bytes(tar.extractfile(member).read())
    return shards, sorted(videos.glob("*.mp4"))


def ours(shards: list[str], sampling: VideoSampling) -> tuple[int, float]:
    started = time.perf_counter()
    count = sum(
        record.candidates[0].num_frames == sampling.num_frames for record in ShardStream(shards, sampling=sampling)
    )
    return count, time.perf_counter() - started


def bare_decord(videos: list[Path], sampling: VideoSampling) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    for path in videos:
        reader = decord.VideoReader(str(path), num_threads=1)
        frames = reader.get_batch(sampling.indices(len(reader), reader.get_avg_fps()).tolist()).asnumpy()
        count += frames.shape[0] == sampling.num_frames
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=800)
    parser.add_argument("--size", type=int, default=64, help="video side in pixels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    sampling = VideoSampling(num_frames=8)

    def rate(measure, source) -> float:
        count, seconds = measure(source, sampling)
        assert count == args.records, (count, args.records)
        return count / seconds

    with tempfile.TemporaryDirectory() as tmp:
        shards, videos = build(Path(tmp), args.records, args.size)
        print(f"videos: {args.records} x {args.size}px, 8 frames sampled each")
        results = alternate(
            {
                "ours (ShardStream)": lambda: rate(ours, shards),
                "baseline (bare decord)": lambda: rate(bare_decord, videos),
            },
            repeats=args.repeats,
            warmup=args.warmup,
        )
    report(results, "ours (ShardStream)", "baseline (bare decord)", unit="samples/s")


if __name__ == "__main__":
    main()
