"""Does the mouth move for speech and rest for music and noise? (issue 13)

    python benchmarks/speech_detection.py [--material outputs/material] [--out outputs/benchmarks]

Material: the 11 real utterances of ``articulation.py`` (pocketsphinx 5.1.1's sdist, fetched once with
``pip download``), clean and under white noise at 10 and 0 dB SNR; the recordings that ship with gradio (a
pinned dependency: speech, a band, a saxophone, two unclear clips of steady tones); white and pink noise.
Per clip, the share of frames where the mouth may move (``voice_activity``) by loudness alone (the detector
bypassed: what the pipeline did before Silero VAD) and with the detector, in the same run, and the path
``prepare_speech`` takes for the whole clip (recognised words fused, audio alone, or rest).

Writes ``<out>/speech_detection.md``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from importlib.resources import files
from pathlib import Path
from unittest import mock

import numpy as np

GRADIO = {
    "cate_blanch.mp3": "speech",
    "cate_blanch_2.mp3": "speech",
    "heath_ledger.mp3": "speech",
    "cantina.wav": "music",
    "sax.wav": "music",
    "recording1.wav": "unclear",
    "audio_sample.wav": "unclear",
}
"""gradio's sample recordings; "unclear": steady harmonic lines in the spectrogram, no formant motion, yet the
recogniser hears a word or two in each."""


def noises(seconds: float = 6.0, seed: int = 0) -> dict[str, np.ndarray]:
    """White and pink noise at speech level (16 kHz)."""
    n = round(seconds * 16_000)
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.normal(0, 1, n)) / np.sqrt(np.arange(n // 2 + 1) + 1)
    pink = np.fft.irfft(spectrum, n)
    return {"white noise": rng.normal(0, 0.1, n), "pink noise": 0.1 * pink / pink.std()}


def clips(material: Path, work: Path) -> list[tuple[str, str, np.ndarray]]:
    """(name, kind, float32 audio at 16 kHz) for every clip of the module docstring."""
    from articulation import fetch_material, utterances

    from talking_face.datamodules.media import load_audio

    out = []
    rng = np.random.default_rng(1)
    for utt in utterances(fetch_material(material), work):
        out.append((utt.name, "speech", utt.audio))
        for snr in (10, 0):
            noise = rng.normal(0, 1, utt.audio.size)
            noise *= np.sqrt(np.mean(utt.audio**2) / np.mean(noise**2) / 10 ** (snr / 10))
            out.append((f"{utt.name} + noise {snr} dB", "speech", (utt.audio + noise).astype(np.float32)))
    for name, kind in GRADIO.items():
        out.append((name, kind, load_audio(files("gradio") / "media_assets" / "audio" / name, 16_000)))
    for name, audio in noises().items():
        out.append((name, "noise", audio.astype(np.float32)))
    return out


def measure(name: str, kind: str, audio: np.ndarray, work: Path) -> dict:
    import soundfile

    from talking_face.datamodules import speech_detection, timebase
    from talking_face.generation.speech_input import prepare_speech, voice_activity

    frames = timebase.num_frames_for(audio.size)
    with mock.patch.object(speech_detection, "speech_probability", lambda a, n: np.ones(n, np.float32)):
        loudness = voice_activity(audio, frames).mean()
    started = time.perf_counter()
    speech_detection.speech_probability(audio, frames)
    detector_rtf = (time.perf_counter() - started) / (audio.size / timebase.SAMPLE_RATE)
    wav = work / "clip.wav"
    soundfile.write(wav, audio, timebase.SAMPLE_RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        speech = prepare_speech(wav)
    path = "rest" if not speech.speaking else "recognised + audio" if speech.mode == "both" else "audio alone"
    return {
        "clip": name,
        "kind": kind,
        "seconds": audio.size / timebase.SAMPLE_RATE,
        "loudness": float(loudness),
        "detector": float(speech.voiced.mean()),
        "path": path,
        "detector_rtf": detector_rtf,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| clip | kind | s | mouth may move: loudness alone | with Silero VAD | whole clip |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['kind']} | {r['seconds']:.1f} | {r['loudness']:.2f} | {r['detector']:.2f} | "
            f"{r['path']} |"
        )
    for kind in ("speech", "music", "noise", "unclear"):
        chosen = [r for r in rows if r["kind"] == kind]
        if chosen:
            before = np.mean([r["loudness"] for r in chosen])
            after = np.mean([r["detector"] for r in chosen])
            rest = sum(r["path"] == "rest" for r in chosen)
            lines.append(f"| **all {kind}** ({len(chosen)}) | | | {before:.2f} | {after:.2f} | {rest} rest |")
    rtf = np.median([r["detector_rtf"] for r in rows])
    return "\n".join(lines) + f"\n\nSilero VAD: {rtf:.4f} s per second of audio (median, one thread).\n"


def main(argv: list[str] | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--material", type=Path, default=Path("outputs/material"))
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args(argv)
    work = args.out / "speech_detection"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, kind, audio in clips(args.material, work):
        rows.append(measure(name, kind, audio, work))
        print(table(rows[-1:]).splitlines()[2], flush=True)
    text = table(rows)
    (args.out / "speech_detection.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
