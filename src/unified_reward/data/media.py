"""Encoding and decoding of images (PIL) and videos (PyAV to write, decord to read).

Video frames are chosen by one `VideoSampling` policy, the same object at training and at
inference, so a judge never sees clips sampled differently from those it was trained on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from unified_reward.data.schema import EncodedMedia, VideoClip


class MediaDecodeError(ValueError):
    """Media bytes could not be decoded; `reason` is a short stable tag used for skip counts."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class VideoSampling:
    """Which frames of a video the model sees.

    `num_frames=N`: N frames spread uniformly over the whole clip (centres of N equal segments).
    `fps=F`: one frame every 1/F seconds, at most `max_frames` (uniformly thinned past the cap).
    Exactly one of the two is set.
    """

    num_frames: int | None = 8
    fps: float | None = None
    max_frames: int = 32

    def __post_init__(self):
        if (self.num_frames is None) == (self.fps is None):
            raise ValueError("VideoSampling needs exactly one of num_frames or fps")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"VideoSampling.num_frames must be >= 1, got {self.num_frames}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"VideoSampling.fps must be > 0, got {self.fps}")
        if self.max_frames < 1:
            raise ValueError(f"VideoSampling.max_frames must be >= 1, got {self.max_frames}")

    def indices(self, total_frames: int, native_fps: float) -> np.ndarray:
        """Frame indices to read from a clip of `total_frames` frames recorded at `native_fps`."""
        if total_frames < 1:
            raise ValueError("a video with no frames has nothing to sample")
        if self.num_frames is not None:
            return _uniform(total_frames, self.num_frames)
        step = native_fps / self.fps if native_fps > 0 else 1.0
        picked = np.floor(np.arange(0.0, total_frames, max(step, 1.0))).astype(np.int64)
        if len(picked) > self.max_frames:
            picked = picked[_uniform(len(picked), self.max_frames)]
        return picked


def _uniform(total: int, count: int) -> np.ndarray:
    """Centres of `count` equal segments of [0, total): repeats frames when the clip is shorter."""
    return np.minimum(((np.arange(count) + 0.5) * total / count).astype(np.int64), total - 1)


def encode_image(image: Image.Image | np.ndarray, ext: str = "png") -> EncodedMedia:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format={"jpg": "JPEG", "jpeg": "JPEG"}.get(ext, ext.upper()))
    return EncodedMedia("image", ext, buffer.getvalue())


def decode_image(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except Exception as error:  # PIL raises several unrelated types for damaged files
        raise MediaDecodeError("corrupt_image", f"{type(error).__name__}: {error}") from error


def encode_video(frames: np.ndarray, fps: float = 8.0, crf: int = 18, lossless: bool = False) -> EncodedMedia:
    """H.264 mp4 of uint8 frames (T, H, W, 3); H and W must be even (yuv420p). `lossless`: RGB H.264 at
    quantiser 0 (libx264rgb, ~4x the bytes), which decodes to exactly these frames."""
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {height}x{width}")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=int(round(fps)))
        stream.width, stream.height = width, height
        stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        quality = {"qp": "0"} if lossless else {"crf": str(crf)}
        # x264's macroblock-tree rate control reads memory it never wrote: with it, the same frames encode to
        # different bytes from run to run (tests/data/test_media.py shows it with MALLOC_PERTURB_).
        stream.options = quality | {"preset": "veryfast", "x264-params": "mbtree=0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return EncodedMedia("video", "mp4", buffer.getvalue())


def video_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a video's first video stream, from the container's headers: no frame is decoded into
    the output (FFmpeg's stream probe may decode one, at the codec's own size limit), so a clip can be refused
    for its size before its frames fill memory."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise MediaDecodeError("corrupt_video", "the file has no video stream")
            context = container.streams.video[0].codec_context
            return int(context.width), int(context.height)
    except av.FFmpegError as error:
        raise MediaDecodeError("corrupt_video", f"{type(error).__name__}: {str(error)[:200]}") from error


def decode_video(data: bytes, sampling: VideoSampling) -> VideoClip:
    """Decode the frames `sampling` picks from encoded video bytes.

    decord raises RuntimeError when a file cannot be opened and DECORDError (not a RuntimeError)
    when frames cannot be read; both become `MediaDecodeError("corrupt_video", ...)`.
    """
    import decord

    try:
        reader = decord.VideoReader(io.BytesIO(data), num_threads=1)
        total = len(reader)
        native_fps = float(reader.get_avg_fps())
        indices = sampling.indices(total, native_fps)
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except (RuntimeError, ValueError, decord.DECORDError) as error:
        raise MediaDecodeError("corrupt_video", f"{type(error).__name__}: {str(error)[:200]}") from error
    timestamps = indices / native_fps if native_fps > 0 else indices.astype(np.float64)
    return VideoClip(frames=np.ascontiguousarray(frames, dtype=np.uint8), timestamps=timestamps.astype(np.float64))


def encode_media(
    media: EncodedMedia | Image.Image | VideoClip | np.ndarray, *, lossless_video: bool = False
) -> EncodedMedia:
    """Media as shard bytes: stored media unchanged, images (PIL or uint8 (H, W, 3)) as PNG, videos (a clip or
    uint8 (F, H, W, 3)) as MP4 of their frames (`lossless_video`: exactly these frames, see `encode_video`)."""
    if isinstance(media, EncodedMedia):
        return media
    if isinstance(media, VideoClip):
        return encode_video(media.frames, lossless=lossless_video)
    if isinstance(media, np.ndarray) and media.ndim == 4:
        return encode_video(media, lossless=lossless_video)
    if isinstance(media, Image.Image | np.ndarray):
        return encode_image(media)
    raise TypeError(f"cannot encode {type(media).__name__} as media")


def decode_media(media: EncodedMedia, sampling: VideoSampling) -> Image.Image | VideoClip:
    if media.kind == "image":
        return decode_image(media.data)
    return decode_video(media.data, sampling)
