"""Reading and writing video and audio with the ffmpeg that imageio-ffmpeg bundles.

No ffmpeg on PATH is needed. Video is streamed frame by frame (a long video is never held in memory
unless the caller asks for an array), resampled to the pipeline's frame rate; audio of any container and
rate comes out as float32 mono at the pipeline's sample rate.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talking_face.datamodules import timebase
from talking_face.datamodules.atomic import atomic_path

__all__ = [
    "MediaError", "VideoInfo", "probe_video", "iter_video_frames", "read_video", "load_audio", "write_video",
]  # fmt: skip


class MediaError(RuntimeError):
    """A media file could not be read or written; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    duration: float
    has_audio: bool


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _frame_reader(path: Path, output_params: list[str] | None = None) -> Iterator:
    import imageio_ffmpeg

    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    return imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", output_params=output_params)


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, size, duration and whether an audio stream is present."""
    path = Path(path)
    reader = _frame_reader(path)
    try:
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as error:
        raise MediaError(f"{path}: not a readable video ({error})") from error
    finally:
        reader.close()
    width, height = meta["size"]
    return VideoInfo(
        fps=float(meta["fps"]),
        width=int(width),
        height=int(height),
        duration=float(meta.get("duration") or 0.0),
        has_audio=meta.get("audio_codec") is not None,
    )


def iter_video_frames(path: str | Path, fps: float | None = timebase.FPS) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames [H, W, 3], resampled to ``fps`` (None keeps the file's own rate).

    Raises MediaError naming the file if it cannot be decoded or holds no frame.
    """
    path = Path(path)
    reader = _frame_reader(path, ["-vf", f"fps={fps}"] if fps else None)
    try:
        meta = next(reader)
        width, height = meta["size"]
        count = 0
        for buffer in reader:
            count += 1
            yield np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
    except (RuntimeError, OSError, StopIteration) as error:
        raise MediaError(f"{path}: video cannot be decoded ({error})") from error
    finally:
        reader.close()
    if count == 0:
        raise MediaError(f"{path}: video holds no frame")


def read_video(path: str | Path, fps: float | None = timebase.FPS) -> np.ndarray:
    """All frames of a (short) video as uint8 [T, H, W, 3]."""
    return np.stack(list(iter_video_frames(path, fps)))


def load_audio(path: str | Path, sample_rate: int = timebase.SAMPLE_RATE) -> np.ndarray:
    """Decode the audio of any audio or video file to float32 mono [N] at ``sample_rate``.

    Stereo is averaged to mono. Raises MediaError naming the file when it has no audio stream or cannot
    be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    command = [_ffmpeg(), "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1",
               "-ar", str(sample_rate), "-f", "f32le", "-"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"{path}: audio cannot be decoded ({message[-1] if message else 'ffmpeg failed'})")
    audio = np.frombuffer(result.stdout, np.float32)
    if audio.size == 0:
        raise MediaError(f"{path}: no audio stream or zero-length audio")
    return audio.copy()


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = timebase.FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = timebase.SAMPLE_RATE,
) -> Path:
    """Write RGB uint8 frames [H, W, 3] (and mono float audio) to a video file, atomically.

    The container picks the codecs: ``.mpg`` gets MPEG-1 video + MP2 audio (GRID's format), anything
    else H.264 + AAC (``.mp4``, playable everywhere). Frames are streamed to ffmpeg, never collected.
    """
    import imageio_ffmpeg
    import soundfile

    path = Path(path)
    mpeg1 = path.suffix.lower() in {".mpg", ".mpeg"}
    codec, audio_codec = ("mpeg1video", "mp2") if mpeg1 else ("libx264", "aac")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise MediaError(f"{path}: no frames to write")
    height, width = first.shape[:2]
    with atomic_path(path) as tmp_video, tempfile.TemporaryDirectory() as scratch:
        audio_path = None
        if audio is not None:  # ffmpeg muxes audio from a file: a scratch wav beside nothing of the user's
            audio_path = str(Path(scratch) / "audio.wav")
            soundfile.write(audio_path, np.asarray(audio, np.float32), sample_rate)
        quality_params = ["-q:v", "3"] if mpeg1 else ["-crf", "18", "-preset", "fast"]
        writer = imageio_ffmpeg.write_frames(
            str(tmp_video), (width, height), fps=fps, codec=codec, quality=None, macro_block_size=1,
            output_params=[*quality_params, "-movflags", "+faststart"] if not mpeg1 else quality_params,
            audio_path=audio_path, audio_codec=audio_codec if audio_path else None, ffmpeg_log_level="error",
        )  # fmt: skip
        writer.send(None)
        try:
            writer.send(np.ascontiguousarray(first))
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
    return path
