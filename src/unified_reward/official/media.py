"""The media an official record names: image files, video files, folders of frames, and `images` lists of
frames of one video or of two (decided per record)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unified_reward.data.media import encode_video
from unified_reward.data.schema import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, EncodedMedia
from unified_reward.official.records import Unconvertible

FRAME_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp")


def _read(media_root: Path, relative: str) -> bytes:
    path = media_root / relative
    if not path.is_file():
        raise Unconvertible(f"media file not found: {relative}")
    return path.read_bytes()


def _ext(relative: str, allowed: tuple[str, ...]) -> str:
    ext = relative.rsplit(".", 1)[-1].lower()
    if ext not in allowed:
        raise Unconvertible(f"unsupported media extension: {relative}")
    return ext


def _frames_to_video(media_root: Path, paths: list[str], fps: float) -> EncodedMedia:
    frames = []
    for relative in paths:
        try:
            with Image.open(media_root / relative) as image:
                frames.append(image.convert("RGB"))
        except FileNotFoundError as error:
            raise Unconvertible(f"media file not found: {relative}") from error
        except Exception as error:  # PIL's damaged-file errors have no common base
            raise Unconvertible(f"corrupt frame image: {relative} ({error})") from error
    width, height = frames[0].size
    width, height = width - width % 2, height - height % 2
    stack = np.stack(
        [np.asarray(f.resize((width, height)) if f.size != (width, height) else f)[:height, :width] for f in frames]
    )
    return encode_video(np.ascontiguousarray(stack), fps=fps)


def _frame_folder(media_root: Path, relative: str, fps: float, max_frames: int) -> EncodedMedia:
    """A `video` entry that is a folder of frames, as the official loader reads one: files in name order,
    at most `max_frames` of them spread evenly."""
    folder = media_root / relative
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower().lstrip(".") in FRAME_EXTENSIONS)
    if not names:
        raise Unconvertible(f"video folder has no frame images: {relative}")
    if len(names) > max_frames:
        names = [names[i] for i in np.linspace(0, len(names) - 1, max_frames).round().astype(int)]
    return _frames_to_video(media_root, [f"{relative.rstrip('/')}/{n}" for n in names], fps)


def _video_entry(media_root: Path, relative: str, fps: float, max_frames: int) -> EncodedMedia:
    if (media_root / relative).is_dir():
        return _frame_folder(media_root, relative, fps, max_frames)
    return EncodedMedia("video", _ext(relative, VIDEO_EXTENSIONS), _read(media_root, relative))


def _frame_groups(paths: list[str], two_videos_by_text: bool) -> list[list[str]]:
    """Frames of one video or of two: two folders or two name stems (`v0_3.png`, `v1_3.png`) in a row are two
    videos; otherwise the record's text decides (two videos: equal halves)."""

    def video_of(path: str) -> tuple[str, str]:
        folder, _, name = path.rpartition("/")
        return folder, re.sub(r"\d+$", "", name.rsplit(".", 1)[0])

    runs: list[list[str]] = []
    for path in paths:
        if runs and video_of(runs[-1][-1]) == video_of(path):
            runs[-1].append(path)
        else:
            runs.append([path])
    if len(runs) == 2 or (len(runs) == 1 and not two_videos_by_text):
        return runs
    if not two_videos_by_text:
        return [paths]
    if len(paths) % 2:
        raise Unconvertible(f"{len(paths)} frames of one sequence cannot be split into the two videos of a pair")
    half = len(paths) // 2
    return [paths[:half], paths[half:]]


def record_media(
    record: dict[str, Any],
    media_root: Path,
    fps: float,
    max_frames: int,
    two_videos_by_text: bool,
    separate_images: bool = False,
) -> list[EncodedMedia]:
    """The record's media in order, as images or videos (more than 2 images are video frames unless
    `separate_images`: an edit's source image and its edits)."""
    if "video" in record:
        videos = record["video"] if isinstance(record["video"], list) else [record["video"]]
        return [_video_entry(media_root, v, fps, max_frames) for v in videos]
    images = record.get("images", record.get("image"))
    if images is None:
        raise Unconvertible("record has no 'image', 'images' or 'video'")
    images = images if isinstance(images, list) else [images]
    if len(images) <= 2 or separate_images:
        return [EncodedMedia("image", _ext(i, IMAGE_EXTENSIONS), _read(media_root, i)) for i in images]
    return [_frames_to_video(media_root, group, fps) for group in _frame_groups(images, two_videos_by_text)]
