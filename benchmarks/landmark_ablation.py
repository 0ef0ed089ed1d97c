"""The paper's claim, measured: does audio + text beat audio only and text only on mouth landmarks?

    python benchmarks/landmark_ablation.py [--cache DIR] [--speakers 6 --utterances 16] [--epochs 60]
        [--seeds 0 1 2] [--configs landmarks.yaml] [--out outputs/benchmarks]
        [--real_speech outputs/material [--real_faces grace_hopper astronaut luispedro]]

Without ``--cache`` it synthesises the built-in corpus and preprocesses it under
``<out>/landmark_ablation/`` (both resumable, so a second run reuses them). Then, for every seed, it
trains four models side by side through the package's CLI (``cli_main`` with ``--configs``, the same
epochs, batches, model size and seed; only the modality-dropout probabilities differ):

- ``audio only``:  ``audio_only_prob=1`` (the text encoder never sees data);
- ``text only``:   ``text_only_prob=1``;
- ``audio + text, no dropout``: both probabilities 0 (the paper's multimodal model);
- ``multimodal (shipped)``: the config's modality dropout, one checkpoint for every mode.

Each model is evaluated (``lightning_modules.landmark_evaluation``) on whole held-out utterances of the
training speakers (the DataModule's ``val`` and ``test`` splits: validation is never used for selection
here) and on held-out speakers, in every mode it supports, with honest inputs: audio = log-mel only;
text = g2p phonemes placed by the duration predictor (stretched to the true length); audio + text =
log-mel + phonemes placed on the audio by the pocketsphinx forced aligner. Rows fed the corpus' own TTS
timings are printed apart as oracles. Numbers are mean ± std over seeds (same data split every seed).

With ``--real_speech FOLDER`` each model also speaks the 11 real utterances of ``articulation.py`` (the
pocketsphinx 5.1.1 sdist's LibriVox, cards and goforward recordings, unpacked under FOLDER), through the
product's pipeline on the packaged photos ``--real_faces``, in each of its modes that real speech allows:
audio = the recording alone (``recognise="off"``); text = the true transcript alone (the TTS speaks it and
the network gets its phone timings only); text as ``generate --text`` does it (the TTS's audio + its phone
timings: an audio + text input, so served by the models that take both); audio + text = the recording + its
true transcript (forced alignment). Real speech has no ground-truth video,
so LMD cannot be measured there: the driving landmarks are scored with ``generation.articulation`` against
the reference phones (forced alignment of the true transcript; the TTS's own timings in text mode), as
``articulation.py`` does, and so is the network's own mouth before the pipeline shuts the lips on p, b and m
by rule (which it does wherever phones are known, so that the driving bilabial ratio of the text and
audio + text modes is partly the rule's).

Finally it times inference on CPU for a 3-second clip (a held-out sentence padded with silence) in each
mode, with 1 and 2 torch threads: model only, and end to end (log-mel, g2p, forced aligner included).

Writes the markdown to stdout and to ``<out>/landmark_ablation.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talking_face.datamodules.cache import CachedUtterance
from talking_face.lightning_modules.landmark_inference import LandmarkPrediction, MouthPredictor

VARIANTS: dict[str, dict[str, float | None]] = {
    "audio only": {"audio_only_prob": 1.0, "text_only_prob": 0.0},
    "text only": {"audio_only_prob": 0.0, "text_only_prob": 1.0},
    "audio + text, no dropout": {"audio_only_prob": 0.0, "text_only_prob": 0.0},
    "multimodal (shipped)": {},  # the config's modality dropout
}
"""Model name -> modality-dropout overrides of the config."""

SUPPORTED = {
    "audio only": ("audio",),
    "text only": ("text", "text_oracle"),
    "audio + text, no dropout": ("both", "both_durations", "both_oracle"),
    "multimodal (shipped)": ("audio", "text", "both", "both_durations", "text_oracle", "both_oracle"),
}
"""Modes each model is trained to serve."""

MODE_LABELS = {
    "audio": "audio",
    "text": "text (duration predictor)",
    "both": "audio + text (forced aligner)",
    "both_durations": "audio + text (duration predictor on the audio's length)",
    "text_oracle": "ORACLE text (the TTS's own timings)",
    "both_oracle": "ORACLE audio + text (the TTS's own timings)",
}
REAL_MODES = {
    "audio": ("audio", "audio (the recording)"),
    "text": ("text", "text (the transcript; the network gets the TTS's phone timings only)"),
    "text_heard": ("both", "text as `generate --text` does it (the TTS's audio + its phone timings)"),
    "both": ("both", "audio + text (the recording + its transcript, forced aligner)"),
}
"""Mode on real speech -> (the ``SUPPORTED`` mode that serves it, label). ``articulation.py`` prepares the
speech of each (``text_heard`` is its ``text``); in ``text`` the network is not given the TTS's audio."""
REAL_MEASURES = {
    "driving": "the driving landmarks (what Face2Vid is told to draw)",
    "network": "the network's own mouth (before the pipeline's p/b/m rule and rest in pauses)",
}
SPLITS = {"held-out utterances": ("val", "test"), "held-out speakers": ("test_speakers",)}
SPEED_SECONDS = 3.0


def build_cache(out: Path, speakers: int, utterances: int) -> Path:
    """Synthesise and preprocess the built-in corpus under ``out`` (both skip what is already done)."""
    from talking_face.datamodules.preprocess import preprocess_corpus
    from talking_face.datamodules.synthetic.corpus import synthesize_corpus

    corpus = synthesize_corpus(out / "corpus", speakers, utterances, progress=False)
    preprocess_corpus(corpus, out / "cache", workers=2, progress=False)
    return out / "cache"


def cli_args(args: argparse.Namespace, variant: str, seed: int, root: Path) -> list[str]:
    """The ``fit`` arguments of one run: the config plus the shared budget and the variant's dropout."""
    overrides = {
        "seed_everything": seed,
        "data.cache_dir": args.cache,
        "data.num_workers": 0,
        "data.batch_size": args.batch_size,
        "data.test_speakers": args.test_speakers,
        "data.val_utterances": args.held_out_fraction,
        "data.test_utterances": args.held_out_fraction,
        "data.seed": 0,
        "trainer.max_epochs": args.epochs,
        "trainer.accelerator": "cpu",
        "trainer.devices": 1,
        "trainer.logger": "false",
        "trainer.enable_checkpointing": "false",
        "trainer.callbacks": "[]",
        "trainer.limit_val_batches": 0,
        "trainer.num_sanity_val_steps": 0,
        "trainer.enable_progress_bar": "false",
        "trainer.enable_model_summary": "false",
        "trainer.default_root_dir": root / f"{_slug(variant)}_seed{seed}",
    }
    overrides |= {f"model.init_args.{name}": value for name, value in VARIANTS[variant].items()}
    configs = [arg for config in args.configs for arg in ("-c", config)]
    return [*configs, *(f"--{key}={value}" for key, value in overrides.items())]


def _slug(name: str) -> str:
    return "_".join("".join(c if c.isalnum() else " " for c in name).split())


def train(args: argparse.Namespace, variant: str, seed: int, root: Path):
    """Fit one variant through the package's CLI; returns (module, datamodule, seconds)."""
    from talking_face.cli import cli_main

    cli = cli_main(cli_args(args, variant, seed, root), run=False)
    started = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    return cli.model.eval(), cli.datamodule, time.perf_counter() - started


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_speed(module, record: CachedUtterance, threads: Iterable[int]) -> list[list[str]]:
    """Frames/s of each mode on a 3 s clip: model only and end to end; the real-time factor end to end."""
    from talking_face.datamodules import timebase
    from talking_face.datamodules.audio_features import fit_to_frames, log_mel
    from talking_face.datamodules.phonemes import phoneme_id
    from talking_face.lightning_modules.text_timing import text_phonemes, timing_from_audio

    frames = round(SPEED_SECONDS * timebase.FPS)
    audio = fit_to_frames(np.asarray(record.array("audio")), frames)
    text = record.meta["text"]
    reference = torch.from_numpy(np.asarray(_reference(record)))[None]
    lengths = torch.tensor([frames])

    def features() -> torch.Tensor:
        return torch.from_numpy(log_mel(audio, frames))[None]

    def tokens() -> torch.Tensor:
        return torch.tensor([[phoneme_id(p) for p in text_phonemes(text)]])

    def aligned() -> torch.Tensor:
        return torch.from_numpy(timing_from_audio(audio, timebase.SAMPLE_RATE, text).frame_ids())[None]

    mel, ids, placed = features(), tokens(), aligned()  # also warms up g2p, librosa and the aligner
    model = {
        "audio": lambda: module.predict(mouth_reference=reference, audio_features=mel),
        "text": lambda: module.predict(mouth_reference=reference, phoneme_tokens=ids, lengths=lengths),
        "both": lambda: module.predict(mouth_reference=reference, audio_features=mel, phoneme_ids=placed),
    }
    inputs = {
        "audio": _median_seconds(features, 5),
        "text": _median_seconds(tokens, 5),
        "both": _median_seconds(features, 5) + _median_seconds(aligned, 3),
    }
    previous = torch.get_num_threads()
    rows = []
    try:
        for count in threads:
            torch.set_num_threads(count)
            for mode, call in model.items():
                call()
                seconds = _median_seconds(call, 20)
                total = seconds + inputs[mode]
                rows.append(
                    [
                        MODE_LABELS[mode],
                        str(count),
                        f"{frames / seconds:,.0f}",
                        f"{frames / total:,.0f}",
                        f"{total / SPEED_SECONDS:.3f}",
                    ]
                )
    finally:
        torch.set_num_threads(previous)
    return rows


def real_speech(folder: Path, faces: list[str], work: Path) -> tuple[list, dict[str, Path]]:
    """``articulation.py``'s real utterances (from ``folder``) and the packaged photos named ``faces``."""
    from articulation import fetch_material, utterances

    from talking_face.datamodules.faces.photos import packaged_photos

    photos = {photo.name: photo.file() for photo in packaged_photos()}
    unknown = sorted(set(faces) - set(photos))
    if unknown:
        raise SystemExit(f"--real_faces: no packaged photo {', '.join(unknown)} (there are {sorted(photos)})")
    utts = utterances(fetch_material(folder), work / "real_speech_wavs")
    return utts, {face: photos[face] for face in faces}


@dataclass(frozen=True)
class PhonesOnly:
    """A ``MouthPredictor`` that keeps the audio from the network: text alone, even where the pipeline passes
    the TTS's audio along with its phones (a model trained without audio cannot use it)."""

    predictor: MouthPredictor

    def to(self, device: str | torch.device) -> PhonesOnly:
        return PhonesOnly(self.predictor.to(device))

    def predict(self, *, audio_features: torch.Tensor | None = None, **inputs) -> LandmarkPrediction:
        return self.predictor.predict(**inputs)


def real_modes(variant: str) -> list[str]:
    """The real-speech modes ``variant`` is trained to serve."""
    return [mode for mode, (served_by, _) in REAL_MODES.items() if served_by in SUPPORTED[variant]]


def score_real_speech(
    predictor: MouthPredictor,
    modes: Iterable[str],
    rollout,
    utts: list,
    faces: dict[str, Path],
    references: dict,
) -> dict:
    """scores[mode, face, measure] = ``articulation`` pooled over the real utterances, for the pipeline driven
    by ``predictor`` in each of ``modes``; ``references`` caches the forced alignment of the true
    transcripts (the same for every model)."""
    from articulation import driving_gap, prepare, scored_phones

    from talking_face.generation.articulation import articulation
    from talking_face.generation.pipeline import TalkingFacePipeline

    scores = {}
    for mode in modes:
        pipeline = TalkingFacePipeline(PhonesOnly(predictor) if mode == "text" else predictor, rollout)
        spoken = "text" if mode.startswith("text") else mode
        for face, photo in faces.items():
            gaps: dict[str, list[np.ndarray]] = {measure: [] for measure in REAL_MEASURES}
            phones: list[str] = []
            for utt in utts:
                plan = prepare(pipeline, photo, utt, spoken)[0]
                phones += scored_phones(plan, utt, spoken == "text", references)
                gaps["driving"].append(driving_gap(plan))
                gaps["network"].append(network_gap(plan))
            for measure, parts in gaps.items():
                scores[mode, face, measure] = articulation(np.concatenate(parts), phones)
    return scores


def network_gap(plan) -> np.ndarray:
    """Lip gap [T] of stage 1's own mouth (``Plan.predicted``, face-normalised as ``driving_gap``): before the
    pipeline retargets it, shuts the lips on known p, b and m and rests it in pauses."""
    from talking_face.datamodules.faces.mouth import mouth_opening

    return mouth_opening(plan.predicted.astype(np.float64))[plan.speech_frames]


def _reference(record: CachedUtterance) -> np.ndarray:
    from talking_face.datamodules.datasets import LandmarkSequenceDataset

    return LandmarkSequenceDataset([record])[0]["mouth_reference"].numpy()


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def quality_tables(results: dict, seeds: list[int]) -> str:
    """results[variant][seed][split][mode] = {"lmd", "velocity"} -> the honest table and the oracle table."""

    def row(label: str, variant: str, mode: str) -> list[str]:
        cells = [label]
        for split in SPLITS:
            for kind in ("lmd", "velocity"):
                cells.append(_cell([results[variant][s][split][mode][kind] for s in seeds]))
        return cells

    header = ["model", "input at test time"]
    header += [f"{split}: {kind}" for split in SPLITS for kind in ("LMD px", "velocity err px/frame")]
    first = next(iter(VARIANTS))
    honest = [
        ["baseline", "neutral (closed) mouth", *row("", first, "reference")[1:]],
        [
            "baseline",
            "mean mouth (training mean displacement)",
            *row("", "multimodal (shipped)", "mean_mouth")[1:],
        ],
    ]
    oracle = []
    for variant, modes in SUPPORTED.items():
        for mode in modes:
            target = oracle if mode.endswith("oracle") else honest
            target.append([variant, *row(MODE_LABELS[mode], variant, mode)])
    return (
        "### Honest inputs\n\n"
        + _table(header, honest)
        + "\n\n### Oracle rows (NOT results: text placed with the corpus' own TTS timings, which drive "
        + "its mouths)\n\n"
        + _table(header, oracle)
    )


def real_speech_tables(scores: dict[str, list[dict]], faces: list[str]) -> str:
    """scores[model] = one ``score_real_speech`` result per seed -> a table per measure: rows model x mode,
    columns bilabial ratio and openness corr per face (mean ± std over seeds)."""
    header = ["model", "input on real speech"]
    header += [f"{face}: {name}" for face in faces for name in ("bilabial ratio", "openness corr")]
    tables = []
    for measure, label in REAL_MEASURES.items():
        rows = []
        for model, runs in scores.items():
            for mode in REAL_MODES:
                if (mode, faces[0], measure) not in runs[0]:
                    continue
                cells = [model, REAL_MODES[mode][1]]
                for face in faces:
                    for key in ("bilabial_ratio", "openness_corr"):
                        cells.append(_cell([run[mode, face, measure][key] for run in runs]))
                rows.append(cells)
        tables.append(f"Measured on {label}:\n\n" + _table(header, rows))
    return "\n\n".join(tables)


def real_speech_section(scores: dict[str, list[dict]], utts: list, faces: list[str]) -> str:
    """The real-speech tables with what they measure."""
    seconds = sum(utt.audio.size for utt in utts) / 16_000
    return (
        f"### Real speech: articulation ({len(utts)} utterances of `articulation.py`, {seconds:.1f} s; "
        "no ground-truth video, so no LMD)\n\n"
        "Each model drives the product's pipeline (`head_motion=0, blinks=0`) on the packaged photo(s) "
        f"{', '.join(faces)}. Reference phones: forced alignment of the true transcript on the recording "
        "(in the text modes, the TTS's own timings). Text modes: the network gets the TTS's phone timings "
        "alone, or, as `generate --text` does, with the TTS's audio too (an audio + text input). Bilabial "
        "ratio = median lip gap on P/B/M frames / on open vowels (goal <= 0.4, lower is better); openness "
        "corr = correlation of the lip gap with each phone's typical opening (goal >= 0.5, higher is "
        "better); pooled over the utterances. `shipped checkpoint` is the packaged stage 1 (its own recipe "
        "and budget), for scale. Wherever phones are known (text, audio + text) the pipeline shuts the "
        "lips on p, b and m by rule, so the driving landmarks' bilabial ratio there is partly the rule's; "
        "the second table is the network's own "
        "mouth.\n\n" + real_speech_tables(scores, faces)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="a preprocessed cache to reuse (default: build one)")
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--utterances", type=int, default=16)
    parser.add_argument("--configs", nargs="+", default=["landmarks.yaml"], help="composed in order")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test_speakers", type=int, default=2)
    parser.add_argument("--held_out_fraction", type=float, default=0.125, help="val and test, per speaker")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while training")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    parser.add_argument(
        "--real_speech", type=Path, help="also score every model on articulation.py's real utterances, kept "
        "in this folder (outputs/material: fetched there once if missing); default: off",
    )  # fmt: skip
    parser.add_argument("--real_faces", nargs="+", default=["grace_hopper"], help="packaged photos")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(args parameter is intended|isinstance.treespec).*")
    torch.set_num_threads(args.threads)

    from talking_face.lightning_modules.landmark_evaluation import evaluate_records, text_inputs

    work = args.out / "landmark_ablation"
    started = time.perf_counter()
    if args.cache is None:
        args.cache = build_cache(work, args.speakers, args.utterances)
    load = os.getloadavg()[0]
    if args.real_speech is not None:
        from talking_face.generation.checkpoints import (
            load_frame_rollout,
            load_mouth_predictor,
            shipped_checkpoint,
        )

        utts, faces = real_speech(args.real_speech, args.real_faces, work)
        # the pipeline needs a Face2Vid: only its crop size is used here, nothing is rendered
        rollout = load_frame_rollout(shipped_checkpoint("face2vid"))
        references: dict[str, tuple[list[str], float]] = {}
        real = {"shipped checkpoint": [], **{variant: [] for variant in VARIANTS}}
        real["shipped checkpoint"].append(
            score_real_speech(
                load_mouth_predictor(shipped_checkpoint("landmarks")),
                REAL_MODES,
                rollout,
                utts,
                faces,
                references,
            )
        )

    results: dict = {variant: {} for variant in VARIANTS}
    train_seconds: dict = {variant: [] for variant in VARIANTS}
    records = inputs = speed_model = None
    for seed in args.seeds:
        for variant in VARIANTS:
            module, datamodule, seconds = train(args, variant, seed, work / "runs")
            train_seconds[variant].append(seconds)
            if records is None:  # the split is the same every run: align its text once
                splits = datamodule.splits
                records = {name: [r for s in parts for r in splits[s]] for name, parts in SPLITS.items()}
                aligning = time.perf_counter()
                inputs = {name: [text_inputs(r) for r in rs] for name, rs in records.items()}
                align_seconds = time.perf_counter() - aligning
                train_records = len(splits["train"])
            modes = {*SUPPORTED[variant], "reference", "mean_mouth"}
            results[variant][seed] = {
                name: evaluate_records(module, records[name], inputs[name], modes) for name in SPLITS
            }
            print(f"seed {seed} {variant}: trained in {seconds:.0f} s", flush=True)
            if args.real_speech is not None:
                scoring = time.perf_counter()
                real[variant].append(
                    score_real_speech(
                        module.predictor(), real_modes(variant), rollout, utts, faces, references
                    )
                )
                print(
                    f"seed {seed} {variant}: real speech in {time.perf_counter() - scoring:.0f} s", flush=True
                )
            if variant == "multimodal (shipped)" and speed_model is None:
                speed_model = module

    speed = measure_speed(speed_model, records["held-out utterances"][0], (1, 2))
    aligner_stats = _aligner_stats(records, inputs)
    steps = speed_model.trainer.global_step if speed_model.trainer else "?"
    report = "\n\n".join(
        [
            "## Stage 1 ablation: audio, text, audio + text (built-in corpus)",
            f"Cache `{args.cache}`: {train_records} training utterances; held-out utterances of training "
            f"speakers: {len(records['held-out utterances'])}; held-out speakers: "
            f"{sorted({r.speaker for r in records['held-out speakers']})} "
            f"({len(records['held-out speakers'])} utterances). Configs `{' + '.join(args.configs)}`, "
            f"{args.epochs} epochs, batch {args.batch_size} ({steps} steps), seeds {args.seeds} "
            "(mean ± std over seeds; one data split). "
            f"Training time per model: "
            + ", ".join(f"{v} {statistics.mean(s):.0f} s" for v, s in train_seconds.items())
            + f". Load average at start {load:.1f} on {os.cpu_count()} cores.",
            "LMD: mean distance of the 20 mouth landmarks to the truth, in pixels of the "
            f"{records['held-out utterances'][0].meta['crop_size']}-px face crop; velocity error: the "
            "same on frame-to-frame motion. Lower is better.",
            quality_tables(results, args.seeds),
            *([] if args.real_speech is None else [real_speech_section(real, utts, list(faces))]),
            aligner_stats + f" Aligning all evaluation utterances once took {align_seconds:.0f} s.",
            "### Inference speed on CPU (3 s clip = 75 frames, one held-out sentence padded with silence)\n\n"
            + _table(
                ["mode", "torch threads", "frames/s (model)", "frames/s (end to end)", "real-time factor"],
                speed,
            )
            + "\n\nEnd to end adds the inputs' preparation: log-mel (audio), g2p (text), log-mel + "
            "pocketsphinx forced alignment (audio + text). Real-time factor = end-to-end seconds / 3 s "
            "(below 1 is faster than real time).",
            f"Total benchmark time: {time.perf_counter() - started:.0f} s.",
        ]
    )
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "landmark_ablation.md").write_text(report + "\n")


def _aligner_stats(records: dict, inputs: dict) -> str:
    """How well the forced aligner recovers the TTS's timings (a diagnostic of the audio + text rows)."""
    agree, scores, failed = [], [], 0
    for name in records:
        for record, x in zip(records[name], inputs[name], strict=True):
            if x.aligned_ids is None:
                failed += 1
                continue
            agree.append(float((x.aligned_ids == np.asarray(record.array("phoneme_ids"))).mean()))
            scores.append(x.align_score)
    return (
        f"Forced aligner on the evaluation utterances: the same phoneme as the TTS's own timing in "
        f"{100 * np.mean(agree):.1f}% of frames (min {100 * min(agree):.0f}%), mean confidence "
        f"{np.mean(scores):.2f}, {failed} failures (audio only used there)."
    )


if __name__ == "__main__":
    main()
