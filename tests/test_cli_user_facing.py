"""What a user of `talking-face` sees: the tool list, quick help, one-line errors with exit codes 2 and 1,
tracebacks only with --debug or for bugs, interruption that leaves nothing behind, and the output path rules.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from generation_media import SENTENCE, photo_file, spoken, write_speech

from talking_face.cli import TOOLS, main
from talking_face.generation.options import GenerationOptions

GRACE = photo_file()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, "-m", "talking_face.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


def test_the_command_lists_every_tool_by_group_without_importing_torch():
    code = (
        "import sys; from talking_face.cli import main; main(['--help']); "
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'help imported torch'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for group in ("make a video:", "data:", "train:", "measure:"):
        assert group in result.stdout
    for name in TOOLS:
        assert f"  {name} " in result.stdout
    assert run_cli().stdout == result.stdout  # bare `talking-face` says the same


def test_generate_help_names_the_tool_and_imports_no_torch():
    code = (
        "import sys; from talking_face.cli import main\n"
        "try:\n    main(['generate', '--help'])\nexcept SystemExit as done:\n    assert done.code == 0\n"
        "assert 'torch' not in sys.modules, 'generate --help imported torch'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: talking-face generate")
    assert "--mouth_scale" in result.stdout and "--face_index" in result.stdout


def test_every_generation_option_is_a_generate_flag_with_its_one_default():
    """generate, the pipeline and the demo take their knobs from GenerationOptions: none is written twice."""
    help_text = " ".join(run_cli("generate", "--help").stdout.split("options:")[1].split())
    for option in dataclasses.fields(GenerationOptions):
        flag = re.search(rf"--{option.name} \S+ (.*?)\(type: [^)]*, default: ([^)]*)\)", help_text)
        assert flag, option.name
        assert flag.group(2) == ("null" if option.default is None else str(option.default)), option.name
        assert len(flag.group(1)) > 10, f"--{option.name} has no help"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        ([], "--face is required"),
        (["--face", "nowhere.jpg", "--text", "hi"], "--face: nowhere.jpg: no such file"),
        (["--face", str(GRACE), "--text", "hi", "--chunk_frames", "0"], "--chunk_frames: 0 is out of range"),
        (
            ["--face", str(GRACE), "--text", "hi", "--mouth-scale", "20"],
            "--mouth_scale: 20.0 is out of range",
        ),
        (["--face", str(GRACE), "--text", "hi", "--blinks", "-1"], "--blinks: -1.0 is out of range"),
        (["--face", str(GRACE), "--text", "hi", "--crf", "60"], "--crf: 60 is out of range"),
        (["--face", str(GRACE), "--text", "hi", "--preset", "quick"], "--preset: give one of ultrafast"),
        (["--face", str(GRACE), "--text", "hi", "--mouth_scale", "abc"], "--mouth_scale: expected a float"),
        (["--face", str(GRACE), "--text", "hi", "--recognise", "false"], "--recognise: expected one of"),
        (["--face", str(GRACE), "--text", "  "], "--text: the text is empty"),
        (["--face", str(GRACE)], "--audio: nothing to say"),
        (["--face", str(GRACE), "--text", "hi", "--voice", "nobody"], "--voice: unknown voice 'nobody'"),
        (["--face", str(GRACE), "--text", "hi", "--out", "video.txt"], "--out: video.txt: give a video file"),
        (["--face", str(GRACE), "--text", "hi", "--bogus", "1"], "unrecognized arguments: --bogus"),
    ],
    ids=[
        "no-face",
        "missing-face",
        "chunk0",
        "mouth20",
        "blinks",
        "crf",
        "preset",
        "not-a-number",
        "recognise",
        "empty-text",
        "nothing",
        "voice",
        "out-suffix",
        "unknown-flag",
    ],  # fmt: skip
)
def test_usage_errors_are_one_line_with_exit_code_2(args, flag):
    result = run_cli("generate", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 2 and flag in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("talking-face generate: error:")


def test_a_device_that_is_not_there_gets_a_hint():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    result = run_cli("generate", "--face", str(GRACE), "--text", "hi", "--device", "cuda")
    assert result.returncode == 2
    assert (
        "--device:" in result.stderr and "--device cpu" in result.stderr and "Traceback" not in result.stderr
    )


@pytest.mark.slow
def test_out_equal_to_an_input_is_refused_before_any_work(tmp_path):
    speech = write_speech(tmp_path / "speech.wav", spoken())
    clip = tmp_path / "me.mp4"
    clip.write_bytes(b"my only copy")
    result = run_cli("generate", "--face", str(clip), "--audio", str(speech), "--out", str(clip))
    assert result.returncode == 2 and "--out:" in result.stderr and "is the --face input" in result.stderr
    assert clip.read_bytes() == b"my only copy"


@pytest.mark.slow
def test_input_problems_found_while_working_are_one_line_with_exit_code_1_and_debug_shows_the_traceback(
    tmp_path,
):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("a shopping list, not a photo\n")
    result = run_cli("generate", "--face", str(fake), "--text", SENTENCE, "--out", str(tmp_path / "o.mp4"))
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert lines == [lines[0]] and "holiday.jpg: not an image or a video" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "ffmpeg version" not in result.stderr
    debug = run_cli("generate", "--face", str(fake), "--text", SENTENCE, "--out", str(tmp_path / "o.mp4"),
                    env={"TALKING_FACE_DEBUG": "1"})  # fmt: skip
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "MediaError" in debug.stderr
    assert list(tmp_path.iterdir()) == [fake]


def test_a_bug_keeps_its_traceback(monkeypatch):
    import json

    from talking_face.cli import Tool

    monkeypatch.setitem(TOOLS, "generate", Tool("make a video", "json:loads", "a tool that fails"))
    with pytest.raises(json.JSONDecodeError):  # not a usage or input error: it reaches the user whole
        main(["generate", "--s", "[1"])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_leaves_nothing_behind(tmp_path, signum):
    scratch, out = tmp_path / "tmp", tmp_path / "videos" / "talk.mp4"
    scratch.mkdir()
    long_speech = write_speech(tmp_path / "long.wav", np.tile(spoken(), 12))  # ~25 s: minutes to render
    command = [sys.executable, "-m", "talking_face.cli", "generate", "--face", str(GRACE), "--audio",
               str(long_speech), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}
    # as from a terminal: a background job of a shell (CI) starts with SIGINT ignored, which Python keeps
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint
    )
    deadline = time.monotonic() + 240
    seen = ""
    while "generate:" not in seen and time.monotonic() < deadline:  # wait for frames to be written
        seen += process.stderr.read(1)
    time.sleep(1.0)
    process.send_signal(signum)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, seen + rest
    assert "nothing was written" in rest and "Traceback" not in rest
    left = [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")]  # torch's own cache
    assert list(out.parent.iterdir()) == [] and left == []


@pytest.mark.slow
def test_the_users_audio_goes_in_as_it_came_and_an_existing_output_is_replaced_with_a_notice(tmp_path):
    import imageio_ffmpeg

    speech = write_speech(tmp_path / "speech44.wav", spoken(), 44_100, stereo=True)
    mp3 = tmp_path / "speech.mp3"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-i", str(speech), "-b:a", "96k", str(mp3)], check=True)
    out = tmp_path / "new" / "talk.mp4"
    first = run_cli("generate", "--face", str(GRACE), "--audio", str(speech), "--out", str(out), "--progress",
                    "false")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "replacing" not in first.stderr
    assert "Audio: aac" in _streams(out) and "44100 Hz, stereo" in _streams(out)
    again = run_cli("generate", "--face", str(GRACE), "--audio", str(mp3), "--out", str(out), "--progress",
                    "false")  # fmt: skip
    assert again.returncode == 0 and f"replacing {out}" in again.stderr
    assert "Audio: mp3" in _streams(out)  # copied, not re-encoded
    assert sorted(p.name for p in out.parent.iterdir()) == ["talk.mp4"]


def _streams(path: Path) -> str:
    import imageio_ffmpeg

    probe = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)]
    return subprocess.run(probe, capture_output=True, text=True).stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("omp", "cores", "threads"), [(None, 4, 3), (None, 1, 1), ("2", 8, None)])
def test_generate_on_the_cpu_leaves_a_core_to_composition_unless_the_user_chose(
    monkeypatch, omp, cores, threads
):
    import torch

    from talking_face.generation.generate import leave_a_core_for_composition

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    try:
        torch.set_num_threads(5)
        leave_a_core_for_composition()
        assert torch.get_num_threads() == (5 if threads is None else threads)
    finally:
        torch.set_num_threads(before)
