import numpy as np
import pytest

from talking_face.datamodules import media, timebase


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _frames(count: int) -> list[np.ndarray]:
    return [np.full((64, 80, 3), 3 * i, np.uint8) for i in range(count)]


@pytest.mark.parametrize("suffix", [".mp4", ".mpg"])
def test_video_round_trip_keeps_frames_and_audio(tmp_path, suffix):
    path = media.write_video(tmp_path / f"clip{suffix}", _frames(50), audio=_tone(2.0, timebase.SAMPLE_RATE))
    info = media.probe_video(path)
    assert (info.width, info.height, info.fps, info.has_audio) == (80, 64, 25.0, True)
    frames = media.read_video(path)
    assert frames.shape == (50, 64, 80, 3)
    assert abs(int(frames[30].mean()) - 90) <= 3  # lossy codecs, but the right frame
    audio = media.load_audio(path)
    assert abs(audio.size - 2 * timebase.SAMPLE_RATE) < 0.05 * timebase.SAMPLE_RATE
    assert 0.25 < np.abs(audio).max() < 0.4
    assert not list(tmp_path.glob(".*")), "no temporary file is left behind"


def test_frame_rate_is_resampled_to_the_pipeline_rate(tmp_path):
    path = media.write_video(tmp_path / "thirty.mp4", _frames(60), fps=30)  # 2 s at 30 fps
    assert media.probe_video(path).fps == 30
    assert len(media.read_video(path)) == 50  # 2 s at 25 fps
    assert len(media.read_video(path, fps=None)) == 60


def test_a_phone_video_stored_on_its_side_is_read_upright_without_a_warning(tmp_path, caplog):
    """Phones store portrait video as landscape frames plus a display rotation: ffmpeg applies it."""
    import subprocess

    frames = np.stack(_frames(5))
    frames[:, :8, :8] = 255  # a white corner to follow: top-left of the stored frame
    stored = media.write_video(tmp_path / "stored.mp4", frames, crf=0)
    rotated = tmp_path / "rotated.mp4"
    command = [media._ffmpeg(), "-v", "error", "-display_rotation", "90", "-i", str(stored), "-c", "copy"]
    subprocess.run([*command, str(rotated)], check=True)
    with caplog.at_level("WARNING"):
        upright = media.read_video(rotated, fps=None)
        info = media.probe_video(rotated)
    assert (info.width, info.height) == (64, 80) and upright.shape == (5, 80, 64, 3)
    assert upright[:, -8:, :8].mean() > 200  # a quarter turn anticlockwise: the corner is at the bottom left
    assert not caplog.records


def test_audio_of_any_rate_and_channels_comes_out_mono_16k(tmp_path):
    import soundfile

    stereo = np.stack([_tone(1.0, 44_100), _tone(1.0, 44_100)], axis=1)
    soundfile.write(tmp_path / "speech.wav", stereo, 44_100)
    audio = media.load_audio(tmp_path / "speech.wav")
    assert audio.ndim == 1 and abs(audio.size - timebase.SAMPLE_RATE) <= 2


def test_bad_files_raise_media_errors_naming_the_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    with pytest.raises(media.MediaError, match="junk.mp4"):
        media.read_video(junk)
    with pytest.raises(media.MediaError, match="junk.mp4"):
        media.load_audio(junk)
    with pytest.raises(media.MediaError, match="missing.wav: no such file"):
        media.load_audio(tmp_path / "missing.wav")
    silent_video = media.write_video(tmp_path / "mute.mp4", _frames(5))
    with pytest.raises(media.MediaError, match="mute.mp4"):
        media.load_audio(silent_video)


def test_truncated_mp4_is_reported_not_hung(tmp_path):
    """(A truncated MPEG-1 stream decodes as a shorter clip; preprocessing catches that by duration.)"""
    path = media.write_video(tmp_path / "full.mp4", _frames(50))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(media.MediaError, match="truncated.mp4"):
        media.read_video(truncated)


def test_the_preset_reaches_the_encoder(tmp_path):
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    frames = [np.roll(texture, i, axis=1) for i in range(10)]
    paths = [media.write_video(tmp_path / f"{p}.mp4", frames, preset=p) for p in ("ultrafast", "veryslow")]
    for path in paths:
        assert media.read_video(path, fps=None).shape == (10, 64, 80, 3)
    assert paths[0].read_bytes() != paths[1].read_bytes()


def test_crf_trades_file_size_for_fidelity(tmp_path):
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    frames = [np.roll(texture, i, axis=1) for i in range(10)]  # a moving texture
    errors, sizes = [], []
    for crf in (10, 30):
        path = media.write_video(tmp_path / f"crf{crf}.mp4", frames, crf=crf)
        decoded = media.read_video(path, fps=None)
        errors.append(np.abs(decoded.astype(int) - np.stack(frames)).mean())
        sizes.append(path.stat().st_size)
    assert errors[0] < errors[1] and sizes[0] > sizes[1]
