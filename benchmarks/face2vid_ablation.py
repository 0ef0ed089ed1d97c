"""The paper's claims for stage 2, measured: does temporal flow smooth the video, does attention sharpen it?

    python benchmarks/face2vid_ablation.py [--cache DIR] [--speakers 6 --utterances 16] [--steps 400]
        [--image_size 64] [--seeds 0] [--configs face2vid.yaml face2vid_tiny.yaml] [--out outputs/benchmarks]
        [--variants NAME ...] [--use_reference_warp config|true|false] [--report face2vid_ablation]

Without ``--cache`` it synthesises the built-in corpus and preprocesses it under
``<out>/face2vid_ablation/`` (both resumable). Then, for every seed, it trains four Face2Vid models side by
side through the package's CLI (``cli_main`` with ``--config``: the same steps, batches, image size, widths,
schedule and seed; only the two switches differ):

- ``full``: ``use_flow`` and ``use_attention`` (the paper's model);
- ``no temporal flow``: each frame made independently from its landmarks and the reference (the paper's
  baseline for temporal dependency);
- ``no attention``: no self-attention in the generator nor the image critic;
- ``neither``.

The reference-warp appearance path and the landmark priors stay as the config sets them in all four
(``--use_reference_warp false`` switches the reference warp off for every model: the paper's setting, where
appearance is drawn, not warped). Every model is scored on whole held-out utterances
(``lightning_modules.face2vid_evaluation``), generated AUTOREGRESSIVELY from the driving landmarks and a
reference photo with ``rollout.generate_video``, exactly as at inference: held-out utterances of
training speakers (the DataModule's ``val`` and ``test`` splits; never used for selection) and held-out
speakers. Beside them: copying the reference photo, and the real video itself (the floor of the classical
flow's and the detector's own noise). Then it prints the flow / no-flow ratio of the temporal warping error
(the issue aims at <= 0.7x) and what the models learned to use (mask means, attention gates).

Writes the markdown to stdout and to ``<out>/<report>.md``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time
import warnings
from pathlib import Path

import torch

VARIANTS: dict[str, dict[str, bool]] = {
    "full (flow + attention)": {"use_flow": True, "use_attention": True},
    "no temporal flow": {"use_flow": False, "use_attention": True},
    "no attention": {"use_flow": True, "use_attention": False},
    "neither": {"use_flow": False, "use_attention": False},
}
"""Model name -> switch overrides of the config."""

FLOW_PAIRS = (("full (flow + attention)", "no temporal flow"), ("no attention", "neither"))
"""(with flow, without flow) pairs that differ only in ``use_flow``."""
ATTENTION_PAIRS = (("full (flow + attention)", "no attention"), ("no temporal flow", "neither"))
"""(with attention, without) pairs that differ only in ``use_attention``."""

BASELINES = {"copy the reference photo": "copy", "real video (metric noise floor)": "real"}
SPLITS = {"held-out utterances": ("val", "test"), "held-out speakers": ("test_speakers",)}
COLUMNS = {  # key -> (header, scale, format); higher-is-better columns first
    "psnr": ("PSNR dB ↑", 1.0, "{:.2f}"),
    "psnr_face": ("PSNR face ↑", 1.0, "{:.2f}"),
    "psnr_mouth": ("PSNR mouth ↑", 1.0, "{:.2f}"),
    "ssim": ("SSIM ↑", 1.0, "{:.3f}"),
    "warp_error": ("temporal warp err ×100 ↓", 100.0, "{:.3f}"),
    "flicker": ("flicker ×1000 (0 = real)", 1000.0, "{:+.3f}"),
    "lmd": ("LMD px ↓", 1.0, "{:.3f}"),
    "face_found": ("face found %", 100.0, "{:.0f}"),
}


def build_cache(out: Path, speakers: int, utterances: int) -> Path:
    """Synthesise and preprocess the built-in corpus under ``out`` (both skip what is already done)."""
    from talking_face.datamodules.preprocess import preprocess_corpus
    from talking_face.datamodules.synthetic.corpus import synthesize_corpus

    corpus = synthesize_corpus(out / "corpus", speakers, utterances, progress=False)
    preprocess_corpus(corpus, out / "cache", workers=2, progress=False)
    return out / "cache"


def cli_args(args: argparse.Namespace, variant: str, seed: int, root: Path) -> list[str]:
    """The ``fit`` arguments of one run: the config, the shared budget and the variant's switches."""
    overrides = {
        "seed_everything": seed,
        "model.init_args.seed": seed,
        "model.init_args.image_size": args.image_size,
        "data.cache_dir": args.cache,
        "data.num_workers": 0,
        "data.batch_size": args.batch_size,
        "data.test_speakers": args.test_speakers,
        "data.val_utterances": args.held_out_fraction,
        "data.test_utterances": args.held_out_fraction,
        "data.seed": 0,
        "trainer.max_steps": 2 * args.steps,  # Lightning counts the generator's and the critics' steps
        "trainer.max_epochs": -1,
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
    switches = dict(VARIANTS[variant])
    if args.use_reference_warp != "config":
        switches["use_reference_warp"] = args.use_reference_warp == "true"
    overrides |= {f"model.init_args.{name}": str(value).lower() for name, value in switches.items()}
    configs = [arg for config in args.configs for arg in ("-c", config)]
    return [*configs, *(f"--{key}={value}" for key, value in overrides.items())]


def _slug(name: str) -> str:
    return "_".join("".join(c if c.isalnum() else " " for c in name).split())


def train(args: argparse.Namespace, variant: str, seed: int, root: Path):
    """Fit one variant through the package's CLI; returns (module in eval mode, datamodule, seconds)."""
    from talking_face.cli import cli_main

    cli = cli_main(cli_args(args, variant, seed, root), run=False)
    started = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    return cli.model.eval(), cli.datamodule, time.perf_counter() - started


@torch.no_grad()
def diagnostics(module, video) -> str:
    """What a trained model uses, on one video: the mean temporal mask M (share of the warped previous
    frame), the mean reference mask Mr, the mean |flow| (px) and the attention gates of the generator."""
    rollout = module.frame_rollout().start(video.reference[None], video.reference_landmarks[None])
    out = rollout.unroll(video.landmarks[None])
    parts = []
    if out.mask is not None:
        parts.append(f"M {out.mask.mean():.2f}, |F| {out.flow.norm(dim=2).mean():.2f} px")
    if out.reference_mask is not None:
        parts.append(
            f"Mr {out.reference_mask.mean():.2f}, |Fr| {out.reference_flow.norm(dim=2).mean():.2f} px"
        )
    gates = [f"{float(m.gate):+.3f}" for name, m in module.generator.named_modules() if hasattr(m, "gate")]
    if gates:
        parts.append("attention gate " + ", ".join(gates))
    return "; ".join(parts) or "no masks, no attention"


def _cell(values: list[float], scale: float, form: str) -> str:
    values = [v * scale for v in values]
    if any(math.isinf(v) for v in values):
        return "∞"
    if any(math.isnan(v) for v in values):
        return "–"
    if len(values) == 1:
        return form.format(values[0])
    return f"{form.format(statistics.mean(values))} ± {statistics.stdev(values):.3f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def quality_table(scores: dict, variants: list[str], split: str, seeds: list[int]) -> str:
    """scores[name][seed][split][metric] -> one markdown table for one split (models, then baselines)."""
    rows = []
    for name in [*variants, *BASELINES]:
        per_seed = scores[name]
        seeds_here = seeds if name in VARIANTS else seeds[:1]  # baselines do not depend on the seed
        row = [name]
        for key, (_, scale, form) in COLUMNS.items():
            row.append(_cell([per_seed[s][split][key] for s in seeds_here], scale, form))
        rows.append(row)
    return _table(["model", *(header for header, _, _ in COLUMNS.values())], rows)


def ratio_lines(scores: dict, variants: list[str], seeds: list[int]) -> str:
    """The paper's two claims as numbers, for the pairs that differ in one switch and were both trained:
    flow / no-flow temporal warp error (beside the real video's), attention - no attention PSNR and SSIM."""

    def mean(name: str, split: str, key: str) -> float:
        return statistics.mean(
            scores[name][s][split][key] for s in (seeds if name in VARIANTS else seeds[:1])
        )

    lines = []
    for split in SPLITS:
        real = mean("real video (metric noise floor)", split, "warp_error")
        flow = [
            f"{a} / {b} = **{mean(a, split, 'warp_error') / mean(b, split, 'warp_error'):.2f}×**"
            for a, b in FLOW_PAIRS
            if a in variants and b in variants
        ]
        attention = [
            f"{a} − {b} = {mean(a, split, 'psnr') - mean(b, split, 'psnr'):+.2f} dB PSNR, "
            f"{mean(a, split, 'ssim') - mean(b, split, 'ssim'):+.3f} SSIM"
            for a, b in ATTENTION_PAIRS
            if a in variants and b in variants
        ]
        if flow:
            lines.append(
                f"- {split}: temporal warp error, flow / no flow: {', '.join(flow)} (aim ≤ 0.7×; the real "
                f"video itself: {100 * real:.3f} ×100)."
            )
        if attention:
            lines.append(f"- {split}: attention: {', '.join(attention)}.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="a preprocessed cache to reuse (default: build one)")
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--utterances", type=int, default=16)
    parser.add_argument(
        "--configs", nargs="+", default=["face2vid.yaml", "face2vid_tiny.yaml"], help="composed in order"
    )
    parser.add_argument("--steps", type=int, default=400, help="training batches per model")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--use_reference_warp", choices=["config", "true", "false"], default="config", help="for every model"
    )
    parser.add_argument("--test_speakers", type=int, default=2)
    parser.add_argument("--held_out_fraction", type=float, default=0.125, help="val and test, per speaker")
    parser.add_argument(
        "--eval_utterances", type=int, default=8, help="per split, spread over speakers; 0: all"
    )
    parser.add_argument("--eval_frames", type=int, default=50, help="first frames of each utterance, 0: all")
    parser.add_argument("--no_lmd", action="store_true", help="skip the (slow) detector LMD")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    parser.add_argument("--report", default="face2vid_ablation", help="name of the markdown file under --out")
    return parser.parse_args(argv)


def held_out_videos(args: argparse.Namespace, splits: dict) -> dict:
    """The evaluated utterances of each split (spread over its speakers), with references and real flow."""
    from talking_face.datamodules.cache import load_manifest
    from talking_face.lightning_modules.face2vid_evaluation import evaluation_videos

    pool = load_manifest(args.cache)
    videos = {}
    for split, parts in SPLITS.items():
        records = sorted((r for part in parts for r in splits[part]), key=lambda r: (r.speaker, r.utterance))
        if args.eval_utterances:
            records = _spread(records, args.eval_utterances)
        videos[split] = evaluation_videos(records, pool, args.image_size, args.eval_frames or None)
    return videos


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(args parameter is intended|isinstance.treespec|LeafSpec).*")
    torch.set_num_threads(args.threads)

    from talking_face.lightning_modules.face2vid_evaluation import (
        copy_reference,
        generate_with,
        real_frames,
        score_videos,
    )

    work = args.out / "face2vid_ablation"
    started = time.perf_counter()
    if args.cache is None:
        args.cache = build_cache(work, args.speakers, args.utterances)
    load = os.getloadavg()[0]
    lmd = not args.no_lmd

    scores: dict = {name: {} for name in [*args.variants, *BASELINES]}
    train_seconds: dict = {variant: [] for variant in args.variants}
    notes: dict = {variant: [] for variant in args.variants}
    videos = None
    for seed in args.seeds:
        for variant in args.variants:
            module, datamodule, seconds = train(args, variant, seed, work / f"runs_{args.report}")
            train_seconds[variant].append(seconds)
            if videos is None:  # the split is the same every run: load the videos and their real flow once
                videos = held_out_videos(args, datamodule.splits)
                train_records, hp = len(datamodule.splits["train"]), module.hparams
                for name, baseline in BASELINES.items():
                    make = copy_reference if baseline == "copy" else real_frames
                    scores[name][seed] = {
                        split: score_videos(vs, make, lmd=lmd) for split, vs in videos.items()
                    }
            scores[variant][seed] = {
                split: score_videos(vs, generate_with(module), lmd=lmd) for split, vs in videos.items()
            }
            notes[variant].append(diagnostics(module, videos["held-out speakers"][0]))
            steps = module.trainer.global_step // 2  # two optimisers step per batch
            print(
                f"seed {seed} {variant}: {steps} steps in {seconds:.0f} s; {notes[variant][-1]}", flush=True
            )

    fps = {
        variant: statistics.mean(
            1.0 / scores[variant][s][split]["seconds_per_frame"] for s in args.seeds for split in SPLITS
        )
        for variant in args.variants
    }
    speakers = sorted({v.name.split("/")[0] for v in videos["held-out speakers"]})
    budget = (
        f"Budget per model: {args.steps} steps of batch {args.batch_size} x {hp.image_size}-px clips of "
        f"{datamodule.hparams.clip_length} frames, configs `{' + '.join(args.configs)}` "
        f"(generator channels {hp.channels}, "
        f"{hp.bottleneck_blocks} bottleneck block(s), critics {hp.discriminator_channels} channels x "
        f"{hp.discriminator_layers} layers, reference warp **{'on' if hp.use_reference_warp else 'off'}**, "
        f"landmark priors {'on' if hp.use_landmark_prior else 'off'}, "
        f"own previous frames from step {hp.own_previous_start} to {hp.own_previous_end}), seeds "
        f"{args.seeds}, torch threads {args.threads}. Cache `{args.cache}`: {train_records} training "
        f"utterances. Scored on {len(videos['held-out utterances'])} held-out utterances of training "
        f"speakers and {len(videos['held-out speakers'])} of held-out speakers {speakers}, first "
        f"{args.eval_frames or 'all'} frames each, generated autoregressively (`generate_video`) from "
        "the driving landmarks and a reference photo (middle frame of another utterance of the speaker). "
        "Training time per model: "
        + ", ".join(f"{v} {statistics.mean(s):.0f} s" for v, s in train_seconds.items())
        + f"; generation at {hp.image_size} px, {args.threads} thread(s): "
        + ", ".join(f"{v} {f:.0f} frames/s" for v, f in fps.items())
        + f". Load average at start {load:.1f} on {os.cpu_count()} cores."
    )
    legend = (
        f"PSNR / SSIM over the whole {hp.image_size}-px crop; PSNR face / mouth: pooled inside the jaw-brow "
        "polygon / the mouth box. Temporal warp error: mean |gen_t − warp(gen_t−1, real flow)| on pixels "
        "where the real video's DIS flow is forward-backward consistent (a still video scores low: read it "
        "with flicker). Flicker: frame-difference energy of generated minus real (0: changes as much as the "
        "real video; < 0: stiller). LMD: dlib's mouth on the generated frames vs the driving mouth, pixels "
        "of a 128-px crop whatever the crop size (metrics.mouth_distance)."
    )
    report = "\n\n".join(
        [
            "## Stage 2 ablation: temporal flow and attention (built-in corpus)",
            budget,
            legend,
            *(
                f"### {split}\n\n" + quality_table(scores, args.variants, split, args.seeds)
                for split in SPLITS
            ),
            "### The paper's claims\n\n" + ratio_lines(scores, args.variants, args.seeds),
            "### What each model learned to use (one held-out-speaker video)\n\n"
            + "\n".join(f"- {v}: " + " | ".join(n) for v, n in notes.items())
            + "\n\nM: the temporal mask (weight of the warped previous frame), Mr: the reference mask "
            "(weight of the warped reference in the appearance); attention gates start at 0 (identity).",
            f"Total benchmark time: {time.perf_counter() - started:.0f} s.",
        ]
    )
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.report}.md").write_text(report + "\n")


def _spread(records: list, count: int) -> list:
    """``count`` records spread evenly over a list sorted by speaker (every speaker gets its share)."""
    if len(records) <= count:
        return records
    return (
        [records[round(i * (len(records) - 1) / (count - 1))] for i in range(count)]
        if count > 1
        else records[:1]
    )


if __name__ == "__main__":
    main()
