"""Reading and writing video and audio with the ffmpeg that imageio-ffmpeg bundles.

No ffmpeg on PATH is needed. Video is streamed frame by frame (a long video is never held in memory
unless the caller asks for an array), resampled to the pipeline's frame rate; audio of any container and
rate comes out as float32 mono at the pipeline's sample rate.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talking_face.datamodules import timebase
from talking_face.datamodules.atomic import atomic_path
from talking_face.errors import InputError, InputWarning

__all__ = [
    "DEFAULT_CRF", "DEFAULT_PRESET", "PRESETS", "MediaError", "VideoInfo", "audio_codec_of", "probe_video",
    "iter_video_frames", "read_video", "load_audio", "write_video",
]  # fmt: skip

DEFAULT_CRF = 18
"""x264's constant rate factor for H.264: lower is closer to the frames and larger (0 lossless, +6 about
halves the file)."""

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
"""x264's speed presets, fastest first: at the same crf a faster one spends less CPU on each frame for a
somewhat larger file a little further from the frames (measured in ``benchmarks/README.md``)."""

DEFAULT_PRESET = "fast"


class MediaError(InputError, RuntimeError):
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
    import logging

    import imageio_ffmpeg

    # ffmpeg turns a phone's portrait video upright as it decodes; imageio-ffmpeg then warns, on every read,
    # that the frames' size is not the stored one. The frames are right: nothing to tell the user.
    logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    return imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", output_params=output_params)


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, size, duration and whether an audio stream is present."""
    path = Path(path)
    reader = _frame_reader(path)
    try:
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as error:  # ffmpeg's whole log is in the chained error
        raise MediaError(f"{path}: not a readable video (ffmpeg cannot decode it)") from error
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
    complaints = result.stderr.decode(errors="replace").strip().splitlines()
    if result.returncode != 0:
        raise MediaError(
            f"{path}: audio cannot be decoded ({complaints[-1] if complaints else 'ffmpeg failed'})"
        )
    audio = np.frombuffer(result.stdout, np.float32)
    if audio.size == 0:
        raise MediaError(f"{path}: no audio stream or zero-length audio")
    if complaints:  # decoded, with errors: a truncated or damaged file
        # ffmpeg's last complaint, without its "[dec:mp3float @ 0x...]" prefixes
        reason = re.sub(r"^(\[[^\]]*\]\s*)+", "", complaints[-1].strip())
        warnings.warn(
            f"{path}: the audio is damaged or ends early (ffmpeg: {reason}); using the "
            f"{audio.size / sample_rate:.2f} s that decode",
            InputWarning,
            stacklevel=2,
        )
    return audio.copy()


_COPYABLE_AUDIO = {  # audio codecs each container takes as they are; any other is encoded to AAC
    ".mp4": {"aac", "mp3", "alac"},
    ".m4v": {"aac", "mp3", "alac"},
    ".mov": {"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".mkv": {"aac", "mp3", "alac", "flac", "opus", "vorbis", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
}


def audio_codec_of(path: str | Path) -> str | None:
    """The codec of the first audio stream of a media file (``aac``, ``mp3``, ``pcm_s16le``...), or None."""
    result = subprocess.run([_ffmpeg(), "-nostdin", "-hide_banner", "-i", str(path)],
                            capture_output=True, check=False)  # fmt: skip
    match = re.search(r"Stream #\S+.*?: Audio: (\w+)", result.stderr.decode(errors="replace"))
    return match.group(1) if match else None


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = timebase.FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = timebase.SAMPLE_RATE,
    audio_file: str | Path | None = None,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
) -> Path:
    """Write RGB uint8 frames [H, W, 3] (and mono float audio, or ``audio_file``'s sound) to a video file,
    atomically.

    The container picks the codecs: ``.mpg`` gets MPEG-1 video + MP2 audio (GRID's format), anything
    else H.264 + AAC (``.mp4``, playable everywhere) at ``crf`` and x264's ``preset``, tuned for grain:
    x264's default tuning smooths the fine texture of a moving face (skin, hair) away, which a still image
    keeps (measured in ``benchmarks/README.md``, full resolution). Frames are streamed to ffmpeg, never
    collected.
    ``audio_file`` (instead of ``audio``) goes in as it came: its own sample rate and channels, its stream
    copied where the container takes its codec, else encoded to AAC.
    """
    import soundfile

    path = Path(path)
    mpeg1 = path.suffix.lower() in {".mpg", ".mpeg"}
    codec, audio_codec_name = ("mpeg1video", "mp2") if mpeg1 else ("libx264", "aac")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise MediaError(f"{path}: no frames to write")
    height, width = first.shape[:2]
    with atomic_path(path) as tmp_video, tempfile.TemporaryDirectory() as scratch:
        audio_input, audio_params = [], ["-an"]
        if audio_file is not None:
            copyable = _COPYABLE_AUDIO.get(path.suffix.lower(), set())
            audio_codec_name = "copy" if audio_codec_of(audio_file) in copyable else audio_codec_name
            audio_input = ["-i", str(audio_file)]
            audio_params = ["-map", "0:v:0", "-map", "1:a:0", "-c:a", audio_codec_name]
        elif audio is not None:  # ffmpeg muxes audio from a file: a scratch wav beside nothing of the user's
            wav = Path(scratch) / "audio.wav"
            soundfile.write(wav, np.asarray(audio, np.float32), sample_rate)
            audio_input, audio_params = ["-i", str(wav)], ["-c:a", audio_codec_name]
        quality = (
            ["-q:v", "3"]
            if mpeg1
            else ["-crf", str(crf), "-preset", preset, "-tune", "grain", "-movflags", "+faststart"]
        )
        command = [
            _ffmpeg(), "-nostdin", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", *audio_input,
            "-c:v", codec, "-pix_fmt", "yuv420p", *quality, *audio_params, str(tmp_video),
        ]  # fmt: skip
        with open(Path(scratch) / "ffmpeg.log", "w+b") as log:
            encoder = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=log)
            try:
                with contextlib.suppress(BrokenPipeError):  # ffmpeg gave up: its log says why, below
                    for frame in itertools.chain([first], frames):  # the frame's own memory, not a copy
                        encoder.stdin.write(np.ascontiguousarray(frame, np.uint8).data)
                    encoder.stdin.close()
                if encoder.wait() != 0:
                    log.seek(0)
                    raise MediaError(f"{path}: ffmpeg could not write it ({log.read().decode().strip()})")
            finally:  # on any way out, ffmpeg is gone before the temporary file is: nothing recreates it
                if encoder.poll() is None:
                    encoder.kill()
                    encoder.wait()
    return path
