"""Articulation on real voices (issue 13): do the lips close for p/b/m and open with the vowels?

    python benchmarks/articulation.py [--material outputs/material] [--faces grace_hopper astronaut luispedro]
        [--modes audio phones recognised both text] [--render_utterances 2] [--out outputs/benchmarks]

Real read speech the project never heard, from the pocketsphinx 5.1.1 **source** distribution (fetched once
with ``pip download --no-deps --no-binary pocketsphinx pocketsphinx==5.1.1`` into ``--material``; the product
itself never downloads anything): five LibriVox utterances of one woman (``test/data/librivox``, 24.7 s),
five card names of another speaker (``test/data/cards``) and ``goforward.raw`` ("go forward ten meters").

Every utterance drives the shipped checkpoints through ``TalkingFacePipeline`` on each face, in each mode:

- ``audio``: the recording alone (no recognition, ``recognise="off"``);
- ``phones``: the recording + the phones pocketsphinx's acoustic model hears in it, with no words
  (``recognise="phones"``);
- ``recognised``: the recording, text recognised from it when the pipeline can (what ``generate --audio``
  does); the column ``taken`` says which path the pipeline took;
- ``both``: the recording + its true transcript (forced alignment);
- ``text``: the transcript alone (the project's TTS speaks it).

Reference phones on frames: forced alignment of the true transcript on the recording
(``datamodules.forced_aligner``); in text mode, the TTS engine's own phone times. The lip gap of every frame
is measured on the driving landmarks (what Face2Vid was told to draw; all utterances) and, for the first
``--render_utterances`` utterances, by dlib re-run on the rendered video frames (what a viewer sees).
Scores (``talking_face.generation.articulation``), pooled over the utterances of a face and mode:
``bilabial_ratio`` (goal <= 0.4), ``openness_corr`` (goal >= 0.5), ``gap_spread``.

Speed: recognition + alignment per second of speech (``recognise_rtf``, when the pipeline recognises) and
forced alignment of the true text (``align_rtf``). Writes ``<out>/articulation.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SDIST = "pocketsphinx-5.1.1"
FACES = ("grace_hopper", "astronaut", "luispedro")
MODES = ("audio", "phones", "recognised", "both", "text")
RECOGNISE = {"audio": "off", "phones": "phones", "recognised": "words"}


@dataclass
class Utterance:
    name: str
    wav: Path
    text: str
    audio: np.ndarray  # float32 mono at timebase.SAMPLE_RATE


def fetch_material(folder: Path) -> Path:
    """The sdist's ``test/data`` folder under ``folder`` (downloaded and unpacked once)."""
    data = folder / SDIST / "test" / "data"
    if (data / "librivox").is_dir():
        return data
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{SDIST}.tar.gz"
    if not archive.is_file():
        # --no-binary :all: would also build the sdist's build tools (Cython) from source: minutes
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "pocketsphinx",
                   "pocketsphinx==5.1.1", "-d", str(folder)]  # fmt: skip
        subprocess.run(command, check=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(f"{SDIST}/test/data/")]
        tar.extractall(folder, members=members, filter="data")
    return data


def utterances(data: Path, work: Path) -> list[Utterance]:
    """LibriVox, cards and goforward with their transcripts, each also written as a 16 kHz wav."""
    import soundfile

    from talking_face.datamodules import timebase
    from talking_face.datamodules.media import load_audio

    work.mkdir(parents=True, exist_ok=True)
    found: list[tuple[str, Path, str]] = []
    for txt in sorted((data / "librivox").glob("*.txt")):
        found.append((txt.stem.rsplit("-", 1)[-1], txt.with_suffix(".wav"), txt.read_text().strip()))
    for line in (data / "cards" / "cards.transcription").read_text().splitlines():
        words, _, name = line.rpartition("(")
        text = words.replace("<s>", "").replace("</s>", "").strip()
        found.append((f"cards{name.strip(' )')}", data / "cards" / f"{name.strip(' )')}.wav", text))
    goforward = work / "goforward.wav"
    pcm = np.fromfile(data / "goforward.raw", dtype="<i2").astype(np.float32) / 32768
    soundfile.write(goforward, pcm, 16_000)
    found.append(("goforward", goforward, "go forward ten meters"))
    out = []
    for name, path, text in found:
        audio = load_audio(path, timebase.SAMPLE_RATE)
        wav = work / f"{name}.wav"
        soundfile.write(wav, audio, timebase.SAMPLE_RATE)
        out.append(Utterance(name, wav, text, audio))
    return out


def reference_phones(utterance: Utterance, num_frames: int) -> tuple[list[str], float]:
    """The true transcript's phones on frames (forced alignment) and the seconds it took."""
    from talking_face.datamodules import timebase
    from talking_face.datamodules.alignment import frame_phoneme_ids
    from talking_face.datamodules.forced_aligner import force_align
    from talking_face.datamodules.phonemes import VOCAB

    started = time.perf_counter()
    alignment = force_align(utterance.audio, timebase.SAMPLE_RATE, utterance.text)
    seconds = time.perf_counter() - started
    return [VOCAB[i] for i in frame_phoneme_ids(alignment.phonemes, num_frames)], seconds


def scored_phones(plan, utterance: Utterance, text_mode: bool, references: dict) -> list[str]:
    """The phone of each frame of ``plan`` that its lips are scored against: in text mode the TTS's own
    timing, else the true transcript's forced alignment, kept in ``references[name]`` (phones, seconds it
    took) so each utterance is aligned once."""
    from talking_face.datamodules.phonemes import VOCAB

    if text_mode:
        return [VOCAB[i] for i in plan.speech.phoneme_ids]
    if utterance.name not in references:
        references[utterance.name] = reference_phones(utterance, plan.num_frames)
    return references[utterance.name][0]


def phone_error(reference: list[str], hypothesis: list[str]) -> float:
    """Edit distance between two phone sequences (silences dropped) / length of the reference."""
    ref = [p for p in reference if p != "sil"]
    hyp = [p for p in hypothesis if p != "sil"]
    row = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        previous, row = row, np.empty_like(row)
        row[0] = i
        for j, h in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (r != h))
    return float(row[-1]) / max(len(ref), 1)


def recognition(utts: list[Utterance]) -> dict:
    """Recognition + alignment of every utterance: seconds (wall and CPU) per second of speech, word and
    phone error; and the phone error and CPU time of the phones heard without words."""
    from talking_face.datamodules import timebase
    from talking_face.datamodules.forced_aligner import force_align
    from talking_face.datamodules.speech_recognition import hear_phones, recognise

    recognise(utts[0].audio[: timebase.SAMPLE_RATE], timebase.SAMPLE_RATE)  # loads the language model
    seconds, cpu, speech, errors, words, rows = 0.0, 0.0, 0.0, 0.0, 0, []
    heard_cpu, heard_errors = 0.0, 0.0
    for utt in utts:
        started = time.process_time()
        found = recognise(utt.audio, timebase.SAMPLE_RATE)
        cpu += time.process_time() - started
        truth = force_align(utt.audio, timebase.SAMPLE_RATE, utt.text)
        started = time.process_time()
        heard = hear_phones(utt.audio, timebase.SAMPLE_RATE)
        heard_cpu += time.process_time() - started
        true_phones = [p.label for p in truth.phonemes]
        per = phone_error(true_phones, [p.label for p in found.phonemes])
        heard_per = phone_error(true_phones, [p.label for p in heard])
        wer = phone_error(utt.text.split(), found.text.split())  # the same edit distance, over words
        seconds += found.seconds
        speech += utt.audio.size / timebase.SAMPLE_RATE
        said = len([p for p in truth.phonemes if p.label != "sil"])
        errors += per * said
        heard_errors += heard_per * said
        words += said
        rows.append({"utterance": utt.name, "truth": utt.text, "recognised": found.text,
                     "confidence": found.confidence, "phone_error": per, "word_error": wer,
                     "heard_phone_error": heard_per})  # fmt: skip
    return {
        "recognise_rtf": seconds / speech,
        "recognise_cpu_rtf": cpu / speech,
        "phone_error": errors / words,
        "heard_cpu_rtf": heard_cpu / speech,
        "heard_phone_error": heard_errors / words,
        "utterances": rows,
    }


def driving_gap(plan) -> np.ndarray:
    """Lip gap [T] of the driving landmarks (face-normalised: inter-ocular units)."""
    from talking_face.datamodules.faces.alignment import face_normalise
    from talking_face.datamodules.faces.mouth import mouth_opening, mouth_points

    return mouth_opening(face_normalise(mouth_points(plan.driving.astype(np.float64)), plan.size))


def rendered_gap(pipeline, plan) -> tuple[np.ndarray, np.ndarray]:
    """Lip gap [T] re-detected by dlib on the rendered full frames, and ``found`` [T]."""
    from talking_face.generation.lip_sync import detect_landmarks, face_opening

    frames = (frame for chunk in pipeline.render(plan) for frame in chunk.frames)
    landmarks, found = detect_landmarks(frames)
    gap = np.zeros(len(found)) if not found.any() else face_opening(landmarks)
    return np.where(found, gap, 0.0), found


def prepare(pipeline, face: Path, utterance: Utterance, mode: str):
    """The pipeline's plan for one face, utterance and mode, with the seconds it took."""
    kwargs: dict = {"head_motion": 0.0, "blinks": 0.0}
    if mode == "text":
        kwargs["text"] = utterance.text
    else:
        kwargs["audio"] = utterance.wav
        if mode == "both":
            kwargs["text"] = utterance.text
        else:
            kwargs["recognise"] = RECOGNISE[mode]
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = pipeline.prepare(face, **kwargs)
    return plan, time.perf_counter() - started, [str(w.message) for w in caught]


def run(args: argparse.Namespace) -> dict:
    import torch

    from talking_face.datamodules.faces.photos import packaged_photos
    from talking_face.generation.articulation import articulation
    from talking_face.generation.pipeline import TalkingFacePipeline

    torch.set_num_threads(args.threads)
    data = fetch_material(args.material)
    utts = utterances(data, args.out / "articulation_wavs")
    if args.utterances:
        utts = [u for u in utts if u.name in args.utterances]
    photos = {p.name: p.file() for p in packaged_photos()}
    faces = [f for f in args.faces if f in photos]
    pipeline = TalkingFacePipeline.from_checkpoints(args.landmarks_checkpoint, args.face2vid_checkpoint)
    recognised = recognition(utts) if {"phones", "recognised"} & set(args.modes) else None
    speech_seconds = sum(u.audio.size for u in utts) / 16_000
    references: dict[str, tuple[list[str], float]] = {}
    rows, taken_log = [], []
    for mode in args.modes:
        for face in faces:
            pooled = {"driving": ([], [], []), "rendered": ([], [], [])}
            taken, prepare_seconds, render_seconds, rendered_speech, spoken = [], 0.0, 0.0, 0.0, 0.0
            for k, utt in enumerate(utts):
                plan, seconds, notes = prepare(pipeline, photos[face], utt, mode)
                prepare_seconds += seconds
                spoken += plan.num_frames / plan.fps
                taken.append(plan.speech.text_source or plan.speech.mode)
                taken_log.append(
                    {
                        "mode": mode,
                        "face": face,
                        "utterance": utt.name,
                        "path": plan.speech.path,
                        "notes": notes,
                    }
                )
                phones = scored_phones(plan, utt, mode == "text", references)
                gap = driving_gap(plan)
                pooled["driving"][0].append(gap)
                pooled["driving"][1].extend(phones)
                pooled["driving"][2].append(np.ones(len(gap), bool))
                if k < args.render_utterances:
                    started = time.perf_counter()
                    gap, found = rendered_gap(pipeline, plan)
                    render_seconds += time.perf_counter() - started
                    rendered_speech += plan.num_frames / plan.fps
                    pooled["rendered"][0].append(gap)
                    pooled["rendered"][1].extend(phones)
                    pooled["rendered"][2].append(found)
            for measured_on, (gaps, phones, found) in pooled.items():
                if not gaps:
                    continue
                scores = articulation(np.concatenate(gaps), phones, np.concatenate(found))
                rows.append({
                    "mode": mode, "face": face, "measured_on": measured_on,
                    "taken": ",".join(sorted(set(taken))),
                    "seconds_of_speech": spoken if measured_on == "driving" else rendered_speech,
                    **scores,
                    "prepare_rtf": prepare_seconds / spoken,
                    "render_rtf": (render_seconds / rendered_speech) if rendered_speech else float("nan"),
                })  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return {
        "rows": rows,
        "taken": taken_log,
        "utterances": [u.name for u in utts],
        "speech_seconds": speech_seconds,
        "align_rtf": sum(s for _, s in references.values()) / speech_seconds if references else float("nan"),
        "recognition": recognised,
        "load_average": os.getloadavg()[0],
    }


def markdown(result: dict) -> str:
    head = "| mode | taken | face | measured on | bilabial ratio | openness corr | gap spread | prepare RTF |"
    lines = [head, "|" + "---|" * 8]  # RTF: seconds per second of speech
    for r in result["rows"]:
        lines.append(
            f"| {r['mode']} | {r['taken']} | {r['face']} "
            f"| {r['measured_on']} ({r['seconds_of_speech']:.1f} s) "
            f"| {r['bilabial_ratio']:.2f} | {r['openness_corr']:.2f} | {r['gap_spread']:.3f} "
            f"| {r['prepare_rtf']:.2f} |"
        )
    lines.append(
        f"\nForced alignment of the true text: {result['align_rtf']:.2f} s per second of speech "
        f"(load average {result['load_average']:.1f})."
    )
    if result["recognition"]:
        found = result["recognition"]
        lines.append(
            f"Recognition + alignment: {found['recognise_rtf']:.2f} s per second of speech "
            f"({found['recognise_cpu_rtf']:.2f} s of CPU), phone error "
            f"{100 * found['phone_error']:.1f} % against the aligned true transcript. Phones heard without "
            f"words: {found['heard_cpu_rtf']:.2f} s of CPU per second of speech, phone error "
            f"{100 * found['heard_phone_error']:.1f} %."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--material", type=Path, default=Path("outputs/material"))
    parser.add_argument("--faces", nargs="+", default=list(FACES))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--utterances", nargs="*", default=None, help="names (0870, cards001, goforward)")
    parser.add_argument("--render_utterances", type=int, default=2, help="rendered + dlib on the first N")
    parser.add_argument("--landmarks_checkpoint", default=None, help="default: the shipped one")
    parser.add_argument("--face2vid_checkpoint", default=None, help="default: the shipped one")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args(argv)
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "articulation.json").write_text(json.dumps(result, indent=1))
    table = markdown(result)
    (args.out / "articulation.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
