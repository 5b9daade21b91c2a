"""Readers of the benchmarks' released files (a local copy: nothing is downloaded), each returning its items in
the benchmark's own order and the items it had to skip, with the reason.

Layouts (README, "Evaluating judges on reward-model benchmarks"):
- VL-RewardBench: `data/test-*.parquet` (HF `MMInstruction/VL-RewardBench`: id, query, response[2], image
  {bytes}, human_ranking [0, 1] = the first response preferred), or UnifiedReward's `data.json` + `images/`.
- GenAI-Bench: `<config>/<split>-*.parquet` (HF `TIGER-Lab/GenAI-Bench`, configs image_generation /
  video_generation / image_edition; prompt, left_*/right_*, vote_type leftvote / rightvote / tievote /
  bothbad_vote; image_edition: instruct_prompt, source_image, left_output_image / right_output_image); videos
  are URLs in the release, read from `video_dir/<file name of the URL>`.
- EditReward-Bench: `{2pair,3pair,4pair}/train-*.parquet` (HF `TIGER-Lab/EditReward-Bench`: one row per compared
  pair of a set of K edits: id, instruction, source_image, candidate_1, candidate_2, ranking `A>B` / `B>A` / `A=B`,
  comparison_type `AvsC` naming which of the set's edits the two candidates are; a set is the rows whose id shares
  the part before the first `_`).
- VideoGen-RewardBench: `videogen-rewardbench.csv` (path_A, path_B, prompt, VQ, MQ, TA, Overall in A / B /
  same) with the unzipped `videos/` beside it.
- Multimodal RewardBench: `data/all_data.json` (a JSON array: ID, Text, Image (relative to data/), Output1,
  Output2, Better, Category).
- MMRB2: `benchmark/{t2i,edit,interleaved,reasoning}.json` with their images (text-to-image and single-image
  edits read; the others skipped and counted until their tasks exist).
- synthetic: the synthetic world's test split (pair records), through the same harness.
- synthetic_generated: pairs of tiny generators' samples of unseen captions, labelled by the oracle
  (`experiments/judge_on_generated/make_benchmark.sh` writes them).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unified_reward.data.tasks import has_context, media_kind_of
from unified_reward.errors import UserError
from unified_reward.reward_benchmarks.items import BenchmarkItem, ItemError, MediaRef, Skipped

Read = tuple[list[BenchmarkItem], list[Skipped]]


def _each(rows: list[dict[str, Any]], make: Callable[[dict[str, Any], int], BenchmarkItem], name: str) -> Read:
    """Items from rows, one per row: a row with a missing or malformed field is skipped with the field named, and
    an id that an earlier row already has (VL-RewardBench's release has ~25 ids on two rows with different queries)
    becomes `<id>#row<index>`, so that predictions, resumption and counts never merge two rows."""
    items, skipped = [], []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        row_id = str(row.get("id", row.get("ID", index)))
        try:
            item = make(row, index)
            if item.id in seen:
                item = dataclasses.replace(item, id=f"{item.id}#row{index}")
            seen.add(item.id)
            items.append(item)
        except ItemError as error:
            skipped.append(Skipped(row_id, error.reason, str(error)))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            skipped.append(Skipped(row_id, "malformed_field", f"{name} row {index}: {type(error).__name__}: {error}"))
    return items, skipped


def _parquet_rows(paths: list[Path]) -> list[dict[str, Any]]:
    import pandas as pd

    return [row for path in paths for row in pd.read_parquet(path).to_dict("records")]


def _need(paths: list[Path], what: str, root: Path) -> list[Path]:
    if not paths:
        raise UserError(
            f'benchmark.root={root}: no {what} found (the README\'s "Evaluating judges" section gives each layout)'
        )
    return paths


def _embedded(value: Any, kind: str) -> MediaRef:
    """A parquet image column: a struct with `bytes` (as datasets writes images)."""
    if not isinstance(value, dict) or not value.get("bytes"):
        raise ItemError("missing_media", f"no embedded {kind} bytes")
    ext = Path(value.get("path") or "").suffix.lstrip(".").lower() or None
    return MediaRef(kind, data=value["bytes"], ext=ext)


# ---- VL-RewardBench ----------------------------------------------------------------------------------

VL_GROUPS = {  # its cal.py: id prefix -> source -> group
    "RLAIF": "hallucination",
    "RLHF": "hallucination",
    "hallucination": "hallucination",  # POVID (cal.py's "fix povid bug")
    "mathverse": "reasoning",
    "mmmu": "reasoning",
    "wildvision": "general",
}


def vl_rewardbench_group(item_id: str) -> str:
    """The official group of an item, from its id's prefix (before the first `_` or `-`); other prefixes are
    VLFeedback, a general source."""
    return VL_GROUPS.get(re.split(r"[_-]", item_id, maxsplit=1)[0], "general")


def read_vl_rewardbench(root: str | Path) -> Read:
    root = Path(root)
    parquet = sorted((root / "data").glob("test-*.parquet"))
    if parquet:
        rows, image = _parquet_rows(parquet), lambda row: _embedded(row["image"], "image")
    else:
        data = _need([p for p in [root / "data.json"] if p.is_file()], "data/test-*.parquet or data.json", root)
        rows, image = json.loads(data[0].read_text()), lambda row: MediaRef("image", path=str(root / row["image"]))

    def make(row: dict[str, Any], _: int) -> BenchmarkItem:
        ranking = [int(r) for r in row["human_ranking"]]
        if sorted(ranking) != [0, 1] or len(row["response"]) != 2:
            raise ItemError("malformed_field", f"human_ranking {ranking} / {len(row['response'])} responses")
        truth = "first" if ranking[0] == 0 else "second"
        item_id = str(row["id"])
        return BenchmarkItem(
            item_id,
            "image_understanding",
            str(row["query"]),
            (str(row["response"][0]), str(row["response"][1])),
            truth,
            context=image(row),
            group=vl_rewardbench_group(item_id),
        )

    return _each(rows, make, "VL-RewardBench")


# ---- GenAI-Bench ---------------------------------------------------------------------------------------

GENAI_VOTES = {"leftvote": "first", "rightvote": "second", "tievote": "tie", "bothbad_vote": "both_bad"}


@dataclass(frozen=True)
class GenAIConfig:
    """A GenAI-Bench config's columns and the task of ours that judges it."""

    task: str
    prompt: str
    left: str
    right: str
    source: str | None = None  # the image edited (image_edition)


GENAI_CONFIGS = {
    "image_generation": GenAIConfig("image_generation", "prompt", "left_image", "right_image"),
    "video_generation": GenAIConfig("video_generation", "prompt", "left_video", "right_video"),
    "image_edition": GenAIConfig(
        "image_editing", "instruct_prompt", "left_output_image", "right_output_image", source="source_image"
    ),
}


def read_genai_bench(root: str | Path, config: str, split: str = "test_v1", video_dir: str | None = None) -> Read:
    if config not in GENAI_CONFIGS:
        raise UserError(f"GenAI-Bench config {config!r} is not read; configs: {sorted(GENAI_CONFIGS)}")
    columns = GENAI_CONFIGS[config]
    root = Path(root)
    folder = root / config
    paths = _need(sorted(folder.glob(f"**/{split}-*.parquet")), f"{config}/{split}-*.parquet", root)
    video = media_kind_of(columns.task) == "video"
    videos = Path(video_dir) if video_dir else folder / "videos"

    def media(value: Any) -> MediaRef:
        if not video:
            return _embedded(value, "image")
        name = str(value).rstrip("/").rsplit("/", 1)[-1]  # a URL in the release: read the local copy
        return MediaRef("video", path=str(videos / name))

    def make(row: dict[str, Any], index: int) -> BenchmarkItem:
        if row["vote_type"] not in GENAI_VOTES:
            raise ItemError("malformed_field", f"vote_type {row['vote_type']!r}")
        return BenchmarkItem(
            str(row.get("id", f"{config}-{index}")),
            columns.task,
            str(row[columns.prompt]),
            (media(row[columns.left]), media(row[columns.right])),
            GENAI_VOTES[row["vote_type"]],
            context=media(row[columns.source]) if columns.source else None,
            group=row["vote_type"],
        )

    return _each(_parquet_rows(paths), make, f"GenAI-Bench {config}")


# ---- EditReward-Bench ---------------------------------------------------------------------------------------

EDITREWARD_SUBSETS = {"2pair": 2, "3pair": 3, "4pair": 4}


def editreward_set(item_id: str) -> str:
    """The set of edits a row compares two of: its id before the first `_` (its inference_3pair/4pair scripts)."""
    return item_id.split("_", 1)[0]


def _editreward_truth(ranking: str, comparison: str) -> str:
    """`A>B` / `C>A` / `A=B` of the pair whose candidates are the letters of `comparison` (`AvsC`: candidate_1 is
    A, candidate_2 is C) in the benchmark's order."""
    if "=" in ranking:
        return "tie"
    left, right = comparison.upper().split("VS")
    winner, loser = (part.strip().upper() for part in ranking.split(">"))
    if {winner, loser} != {left, right}:
        raise ItemError("malformed_field", f"ranking {ranking!r} does not compare the pair {comparison!r}")
    return "first" if winner == left else "second"


def read_editreward_bench(root: str | Path, split: str = "train") -> Read:
    """Every comparison of every subset, in file order; the item's group is its subset (`2pair`, ...), its `set`
    label the set of edits it belongs to (for the set accuracy of the 3- and 4-edit subsets)."""
    root = Path(root)
    found = {name: sorted((root / name).glob(f"{split}-*.parquet")) for name in EDITREWARD_SUBSETS}
    _need([p for paths in found.values() for p in paths], f"{{2pair,3pair,4pair}}/{split}-*.parquet", root)
    items, skipped = [], []
    for subset, paths in found.items():
        if not paths:
            continue

        def make(row: dict[str, Any], _: int, subset: str = subset) -> BenchmarkItem:
            stated = row.get("dataset") or (f"{row['num_candidates']}pair" if row.get("num_candidates") else None)
            if stated is not None and stated != subset:
                raise ItemError("malformed_field", f"a {stated} row in {subset}/")
            item_id = str(row["id"])
            return BenchmarkItem(
                item_id,
                "image_editing",
                str(row["instruction"]),
                (_embedded(row["candidate_1"], "image"), _embedded(row["candidate_2"], "image")),
                _editreward_truth(str(row["ranking"]), str(row.get("comparison_type") or "AvsB")),
                context=_embedded(row["source_image"], "image"),
                group=subset,
                labels={"set": f"{subset}/{item_id if subset == '2pair' else editreward_set(item_id)}"},
            )

        rows, bad = _each(_parquet_rows(paths), make, f"EditReward-Bench {subset}")
        items += rows
        skipped += bad
    return items, skipped


# ---- VideoGen-RewardBench ------------------------------------------------------------------------------

VIDEOGEN_LABELS = {"A": "first", "B": "second", "same": "tie"}


def read_videogen_rewardbench(root: str | Path) -> Read:
    import pandas as pd

    root = Path(root)
    path = _need([p for p in [root / "videogen-rewardbench.csv"] if p.is_file()], "videogen-rewardbench.csv", root)
    rows = pd.read_csv(path[0]).to_dict("records")

    def make(row: dict[str, Any], index: int) -> BenchmarkItem:
        labels = {k: VIDEOGEN_LABELS[row[k]] for k in ("VQ", "MQ", "TA", "Overall")}
        return BenchmarkItem(
            f"videogen-{index}",
            "video_generation",
            str(row["prompt"]),
            (MediaRef("video", path=str(root / row["path_A"])), MediaRef("video", path=str(root / row["path_B"]))),
            labels["Overall"],
            group=f"{row.get('A_model', '?')} vs {row.get('B_model', '?')}",
            labels=labels,
        )

    return _each(rows, make, "VideoGen-RewardBench")


# ---- Multimodal RewardBench ----------------------------------------------------------------------------


def multimodal_rewardbench_category(category: str, item_id: str) -> str:
    """Its 2_get_accuracy.py: safety and reasoning are split by the id's prefix."""
    if category == "safety":
        return "safety/bias" if item_id.lower().startswith("pairs") else "safety/toxicity"
    if category == "reasoning":
        return "reasoning/math" if item_id.lower().startswith("math") else "reasoning/coding"
    return category


def read_multimodal_rewardbench(root: str | Path) -> Read:
    root = Path(root)
    path = root / "data" / "all_data.json"
    if not path.is_file():
        found = "is there, but it" if (root / "data" / "all_data_release.json").is_file() else "(the release file)"
        raise UserError(
            f"benchmark.root={root}: no data/all_data.json (data/all_data_release.json {found} lacks the prompts "
            "(Text) of most sources): "
            "build all_data.json with `python scripts/0_download_data.py` in the multimodal_rewardbench "
            "checkout (it fetches the sources and their images)"
        )

    def make(row: dict[str, Any], _: int) -> BenchmarkItem:
        if row["Better"] not in ("Output1", "Output2"):
            raise ItemError("malformed_field", f"Better {row['Better']!r}")
        item_id = str(row["ID"])
        return BenchmarkItem(
            item_id,
            "image_understanding",
            str(row["Text"]),
            (str(row["Output1"]), str(row["Output2"])),
            "first" if row["Better"] == "Output1" else "second",
            context=MediaRef("image", path=str(path.parent / row["Image"])),
            group=multimodal_rewardbench_category(str(row["Category"]), item_id),
        )

    return _each(json.loads(path.read_text()), make, "Multimodal RewardBench")


# ---- MMRB2 -------------------------------------------------------------------------------------------------

MMRB2_SUBSETS = ("t2i", "edit", "interleaved", "reasoning")
MMRB2_TASKS = {"t2i": "image_generation", "edit": "image_editing"}  # interleaved, reasoning: no task of ours yet


def _mmrb2_parts(content: Any, kind: str) -> list[str]:
    """The values of a content list's `[kind, value]` entries (MMRB2's `prompt_content` / `response_content`)."""
    return [str(value) for part, value in content if part == kind]


def read_mmrb2(root: str | Path) -> Read:
    """facebookresearch/MMRB2's `benchmark/<subset>.json` (`{"pairs": [...]}`, as its build_from_hf.py writes them):
    each pair's `prompt_content` and `response_a` / `response_b` `response_content` (lists of `["text" | "image",
    value]`, images relative to the json's folder) and `chosen` (A / B). A text-to-image pair becomes an image
    generation item; the pairs of the other subsets are skipped as `task_not_supported` (counted, never dropped)."""
    root = Path(root)
    folder = root / "benchmark" if (root / "benchmark").is_dir() else root
    paths = _need([folder / f"{s}.json" for s in MMRB2_SUBSETS if (folder / f"{s}.json").is_file()], "t2i.json", root)
    items, skipped = [], []
    for path in paths:
        subset = path.stem
        # ids are unique within a subset only
        pairs = [
            pair | {"id": f"{subset}-{pair.get('id', i)}"}
            for i, pair in enumerate(json.loads(path.read_text())["pairs"])
        ]
        if subset not in MMRB2_TASKS:
            skipped += [Skipped(pair["id"], "task_not_supported", f"MMRB2 {subset}: no task of ours") for pair in pairs]
            continue

        def make(pair: dict[str, Any], _: int, subset: str = subset) -> BenchmarkItem:
            if pair["chosen"] not in ("A", "B"):
                raise ItemError("malformed_field", f"chosen {pair['chosen']!r}")
            images = [_mmrb2_parts(pair[f"response_{side}"]["response_content"], "image") for side in "ab"]
            if any(len(found) != 1 for found in images):
                raise ItemError("malformed_field", f"responses with {[len(f) for f in images]} images, not one each")
            sources = _mmrb2_parts(pair["prompt_content"], "image")
            if len(sources) != int(has_context(MMRB2_TASKS[subset])):  # an edit of one source image, or none
                raise ItemError("task_not_supported", f"MMRB2 {subset}: {len(sources)} images in the prompt")
            return BenchmarkItem(
                pair["id"],
                MMRB2_TASKS[subset],
                " ".join(_mmrb2_parts(pair["prompt_content"], "text")),
                tuple(MediaRef("image", path=str(folder / found[0])) for found in images),
                "first" if pair["chosen"] == "A" else "second",
                context=MediaRef("image", path=str(folder / sources[0])) if sources else None,
                group=subset,
            )

        found, bad = _each(pairs, make, f"MMRB2 {subset}")
        items += found
        skipped += bad
    return items, skipped


# ---- the synthetic world ---------------------------------------------------------------------------------


def read_synthetic(source, split: str = "test") -> Read:
    """The pair records of a shard source's split (`data.source`: the synthetic world, built if needed), media
    kept as stored."""
    from unified_reward.data.reading import ShardStream

    source.prepare()
    items: list[BenchmarkItem] = []
    for stream, urls in sorted(source.streams(split).items()):
        if not stream.endswith("_pair"):
            continue
        for record in ShardStream(urls, name=stream, sampling=None):
            candidates = tuple(c if isinstance(c, str) else _stored(c) for c in record.candidates)
            context = _stored(record.context) if record.context is not None else None
            # generation records say whether their candidates are clean renders or look generated (world.make_record)
            look = {"look": "generated" if record.meta.get("generated_look") else "clean"} if context is None else {}
            items.append(
                BenchmarkItem(record.id, record.task, record.prompt, candidates, record.label, context, stream, look)
            )
    return items, []


def _stored(media) -> MediaRef:
    return MediaRef(media.kind, data=media.data, ext=media.ext)


# ---- generators' own samples of the synthetic world ----------------------------------------------------------


def read_generated_samples(root: str | Path, split: str = "test") -> Read:
    """Pairs of generators' samples (benchmark=synthetic_generated): every candidate-set folder under `root` (the
    `<output>/<split>/` of `src/predict.py stage=generator_candidates`, whose sets carry the oracle's score of each
    sample in `meta.oracle_scores`) gives, per caption, the pairs of samples (0, 1), (2, 3), ...: the truth is the
    one the oracle scores higher, or a tie. A set without oracle scores is skipped and counted."""
    from unified_reward.data.reading import ShardStream, SkipCounter
    from unified_reward.data.shards import decode_candidate_set
    from unified_reward.data.sources import ShardFolder

    root = Path(root).expanduser()
    folders = sorted(m.parent.parent for m in root.glob(f"**/{split}/manifest.json"))
    streams = [
        (name, urls)
        for folder in folders
        for name, urls in sorted(ShardFolder(folder).streams(split).items())
        if name.endswith("_candidates")
    ]
    _need([Path(urls[0]) for _, urls in streams], f"candidate-set shards (<task>_candidates) in **/{split}/", root)
    items: list[BenchmarkItem] = []
    skipped: list[Skipped] = []
    for name, urls in streams:
        bad = SkipCounter()  # samples that do not decode: skipped by the stream, each counted here
        for found in ShardStream(urls, name=name, sampling=None, decode=decode_candidate_set, counter=bad):
            scores = found.meta.get("oracle_scores")
            if not isinstance(scores, list) or len(scores) != len(found.candidates):
                skipped.append(Skipped(found.id, "no_oracle_scores", f"{name}: the set's meta has no score per sample"))
                continue
            for j in range(0, len(found.candidates) - 1, 2):
                first, second = scores[j], scores[j + 1]
                truth = "tie" if first == second else ("first" if first > second else "second")
                pair = (_stored(found.candidates[j]), _stored(found.candidates[j + 1]))
                items.append(
                    BenchmarkItem(f"{found.id}#{j}-{j + 1}", found.task, found.prompt, pair, truth, None, found.task)
                )
        for reason, count in bad.as_dict().items():
            skipped += [Skipped(f"{name}#{reason}-{k}", reason, f"{name}: a sample of {urls}") for k in range(count)]
    return items, skipped
