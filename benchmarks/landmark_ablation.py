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
audio = the recording alone (``recognise="off"``); text = the true transcript alone (the TTS speaks it);
audio + text = the recording + its true transcript (forced alignment). Real speech has no ground-truth video,
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
from pathlib import Path

import numpy as np
import torch

from talking_face.datamodules.cache import CachedUtterance

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
    "audio": "audio (the recording)",
    "text": "text (the transcript, spoken by the TTS)",
    "both": "audio + text (the recording + its transcript, forced aligner)",
}
"""The modes on real speech (``articulation.py``'s names), each served by the variants of ``SUPPORTED``."""
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
