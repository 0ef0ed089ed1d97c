"""Every benchmark in ``benchmarks/`` runs end to end at its smallest settings and writes its report.

Tiny runs: the numbers mean nothing here; what is checked is that each benchmark still runs against today's
package and fills every row of its tables with numbers. Slow (a corpus, trainings or fresh processes).
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest
from generation_media import save_checkpoint, spoken, write_speech

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture
def benchmark(monkeypatch):
    """``benchmark(name)``: the module ``benchmarks/<name>.py``, importable by name (its fresh worker
    processes import it again)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return importlib.import_module


@pytest.fixture(scope="module")
def checkpoints(tiny_landmarks, tiny_face2vid, tmp_path_factory) -> dict[str, Path]:
    """Tiny random checkpoints of both stages (64-px Face2Vid), saved as ``fit`` saves them."""
    folder = tmp_path_factory.mktemp("benchmark_checkpoints")
    return {
        "landmarks": save_checkpoint(tiny_landmarks(seed=0), folder / "landmarks.ckpt"),
        "face2vid": save_checkpoint(tiny_face2vid(seed=0), folder / "face2vid.ckpt"),
    }


@pytest.fixture(scope="module")
def speech_material(tmp_path_factory) -> Path:
    """A folder laid out as ``articulation.py``'s real-speech material (the pocketsphinx sdist's LibriVox,
    cards and goforward), its three recordings spoken by the project's TTS: no download in tests."""
    folder = tmp_path_factory.mktemp("speech_material")
    data = folder / "pocketsphinx-5.1.1" / "test" / "data"
    (data / "librivox").mkdir(parents=True)
    (data / "cards").mkdir()
    book = "bob met a man by the big map"
    (data / "librivox" / "book-0001.txt").write_text(book + "\n")
    write_speech(data / "librivox" / "book-0001.wav", spoken(book))
    (data / "cards" / "cards.transcription").write_text("<s> queen of spades </s> (001)\n")
    write_speech(data / "cards" / "001.wav", spoken("queen of spades"))
    pcm = np.round(spoken("go forward ten meters") * 32767).astype("<i2")
    pcm.tofile(data / "goforward.raw")
    return folder


def _tables(markdown: str) -> list[list[list[str]]]:
    """The body rows (cells) of every markdown table, table by table."""
    tables, rows = [], None
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            if rows is None:
                rows = []
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not all(set(cell) <= set(":-") for cell in cells):
                rows.append(cells)
        elif rows is not None:
            tables.append(rows[1:])  # without the header
            rows = None
    return tables


def _number(cell: str) -> float:
    value = float(cell.split()[0].rstrip("×x%").replace(",", ""))
    assert math.isfinite(value), cell
    return value


def test_data_throughput(benchmark, tmp_path: Path) -> None:
    report = benchmark("data_throughput").run(speakers=1, utterances=1, out=str(tmp_path))
    assert (tmp_path / "data_throughput.md").read_text() == report
    preprocessing, stages, loading = _tables(report)
    assert [row[0] for row in preprocessing] == ["1", "2"]  # workers
    assert all(_number(row[4]) > 0 for row in preprocessing)  # frames/s
    assert stages[-1][0].startswith("total (") and _number(stages[-1][1]) > 0
    assert [(row[0].split()[0], row[1]) for row in loading] == [
        ("landmarks", "0"), ("landmarks", "2"), ("face2vid", "0"), ("face2vid", "2")
    ]  # fmt: skip
    assert all(_number(row[3]) > 0 and _number(row[4]) > 0 for row in loading)


def test_face2vid_speed(benchmark, tmp_path: Path) -> None:
    module = benchmark("face2vid_speed")
    module.main(
        ["--configs", "face2vid.yaml", "face2vid_tiny.yaml", "--sizes", "32", "--threads", "1",
         "--frames", "2", "--out", str(tmp_path)]
    )  # fmt: skip
    (rows,) = _tables((tmp_path / "face2vid_speed.md").read_text())
    assert [row[0] for row in rows] == list(module.COMBINATIONS)
    for row in rows:
        assert row[1:3] == ["32", "1"] and all(_number(cell) > 0 for cell in row[3:6])  # frames/s, ms/frame
        assert _number(row[6]) >= 0 and _number(row[7]) > 0  # GFLOP/frame, parameters


def test_generate_speed(benchmark, checkpoints, tmp_path: Path) -> None:
    benchmark("generate_speed").main(
        ["--seconds", "1", "--sizes", "64", "--inputs", "photo", "--threads", "1", "--out", str(tmp_path),
         "--landmarks_checkpoint", str(checkpoints["landmarks"]),
         "--face2vid_checkpoint", str(checkpoints["face2vid"])]
    )  # fmt: skip
    summary, parts = _tables((tmp_path / "generate_speed.md").read_text())
    (row,) = summary
    assert row[:3] == ["photo + audio", "64", "trained"]  # the given checkpoint, not a fresh model
    assert abs(_number(row[4]) - 25) <= 1 and _number(row[5]) == pytest.approx(1.0, abs=0.1)  # 1 s, 25 fps
    assert _number(row[6]) > 0  # wall-clock seconds
    (row,) = parts
    assert row[0] == "photo + audio, 64 px" and len(row) == 12 and [_number(cell) for cell in row[1:]]


def test_finetune_identity(benchmark, tiny_cache, checkpoints, tmp_path: Path) -> None:
    benchmark("finetune_identity").main(
        ["--checkpoint", str(checkpoints["face2vid"]), "--cache", str(tiny_cache), "--sources", "photo",
         "--steps", "1", "--batch_size", "1", "--sentences", "1", "--clip_utterances", "1",
         "--eval_utterances", "1", "--mirror_utterances", "1", "--eval_frames", "4", "--her", "s1", "s2",
         "--mirror", "s3", "--threads", "1", "--out", str(tmp_path)]
    )  # fmt: skip
    report = (tmp_path / "finetune_identity.md").read_text()
    assert "### her (s1, s2)" in report and "### her mirror image (s3), control" in report
    expected = ["copy the reference frame", "real video (metric noise floor)",
                "before: the checkpoint as given", "1 steps on her photo"]  # fmt: skip
    for rows in _tables(report):
        assert [row[0] for row in rows] == expected
        assert all(_number(row[1]) > 0 for row in rows if not row[0].startswith("real"))  # PSNR (real: ∞)


def test_face2vid_ablation(benchmark, tiny_cache, tmp_path: Path) -> None:
    benchmark("face2vid_ablation").main(
        ["--cache", str(tiny_cache), "--configs", "face2vid.yaml", "face2vid_tiny.yaml", "--steps", "2",
         "--image_size", "32", "--batch_size", "2", "--variants", "neither", "no attention",
         "--test_speakers", "1", "--held_out_fraction", "0.34", "--eval_utterances", "1",
         "--eval_frames", "4", "--no_lmd", "--threads", "1", "--out", str(tmp_path)]
    )  # fmt: skip
    report = (tmp_path / "face2vid_ablation.md").read_text()
    tables = _tables(report)
    assert len(tables) == 2  # held-out utterances, held-out speakers
    for rows in tables:
        assert [row[0] for row in rows] == [
            "neither", "no attention", "copy the reference photo", "real video (metric noise floor)"
        ]  # fmt: skip
        assert all(_number(row[1]) > 0 for row in rows[:3])  # PSNR (the real video's is infinite)
    assert "no attention / neither = **" in report  # the flow ratio of the pair that was trained


def test_landmark_ablation(benchmark, tiny_cache, tmp_path: Path) -> None:
    benchmark("landmark_ablation").main(
        ["--cache", str(tiny_cache), "--configs", "landmarks.yaml", "landmarks_tiny.yaml", "--epochs", "1",
         "--seeds", "0", "--batch_size", "2", "--test_speakers", "1", "--held_out_fraction", "0.34",
         "--threads", "1", "--out", str(tmp_path)]
    )  # fmt: skip
    honest, oracle, speed = _tables((tmp_path / "landmark_ablation.md").read_text())
    assert {row[0] for row in honest} == {"baseline", *benchmark("landmark_ablation").VARIANTS}
    assert all(_number(cell) > 0 for row in honest + oracle for cell in row[2:])  # LMD, velocity error
    assert [row[1] for row in speed] == ["1"] * 3 + ["2"] * 3  # torch threads
    assert all(_number(row[2]) > 0 for row in speed)


def test_landmark_ablation_real_speech(benchmark, tiny_cache, speech_material, tmp_path: Path) -> None:
    material = speech_material
    benchmark("landmark_ablation").main(
        ["--cache", str(tiny_cache), "--configs", "landmarks.yaml", "landmarks_tiny.yaml", "--epochs", "1",
         "--seeds", "0", "--batch_size", "2", "--test_speakers", "1", "--held_out_fraction", "0.34",
         "--real_speech", str(material), "--real_faces", "grace_hopper", "--out", str(tmp_path)]
    )  # fmt: skip
    _, _, driving, network, _ = _tables((tmp_path / "landmark_ablation.md").read_text())
    for rows in (driving, network):  # every model in each real-speech mode it serves
        assert [row[0] for row in rows] == ["shipped checkpoint"] * 4 + [
            "audio only", "text only", *["audio + text, no dropout"] * 2, *["multimodal (shipped)"] * 4
        ]  # fmt: skip
        assert all(len(row) == 4 for row in rows)  # bilabial ratio and openness corr on one face


def test_articulation(benchmark, checkpoints, speech_material, tmp_path: Path) -> None:
    benchmark("articulation").main(
        ["--material", str(speech_material), "--faces", "grace_hopper", "--modes", "audio", "phones", "both",
         "--render_utterances", "1", "--landmarks_checkpoint", str(checkpoints["landmarks"]),
         "--face2vid_checkpoint", str(checkpoints["face2vid"]), "--out", str(tmp_path)]
    )  # fmt: skip
    (rows,) = _tables((tmp_path / "articulation.md").read_text())
    taken = {"audio": "audio", "phones": "phones", "both": "transcript"}  # the path prepare took
    assert [(row[0], row[1], row[3].split()[0]) for row in rows] == [
        (mode, path, measured) for mode, path in taken.items() for measured in ("driving", "rendered")
    ]
    assert all(_number(cell) >= -1 for row in rows for cell in row[4:])  # every score a finite number


def test_lip_sync(benchmark, tiny_cache, checkpoints, tmp_path: Path) -> None:
    benchmark("lip_sync").main(
        ["--cache", str(tiny_cache), "--test_speakers", "s3", "--utterances_per_speaker", "1",
         "--landmarks_checkpoint", str(checkpoints["landmarks"]),
         "--face2vid_checkpoint", str(checkpoints["face2vid"]), "--out", str(tmp_path)]
    )  # fmt: skip
    (rows,) = _tables((tmp_path / "lip_sync.md").read_text())
    assert [row[0] for row in rows] == ["audio", "text", "both", "still_mouth", "real_video"]
    assert all(row[1] == "1" and _number(row[2]) > 0 for row in rows)  # one video each, faces found
    assert (tmp_path / "lip_sync.json").is_file() and (tmp_path / "lip_sync.csv").is_file()
