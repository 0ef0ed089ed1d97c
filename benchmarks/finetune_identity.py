"""Personalising Face2Vid to a face it never saw: PSNR / SSIM / LMD on held-out utterances, before and after.

    python benchmarks/finetune_identity.py [--checkpoint CKPT] [--cache outputs/shipped/cache]
        [--sources photo clip other_photo] [--steps 50 100 200] [--batch_size 4] [--lr 1e-4] [--sentences 4]
        [--clip_utterances 8] [--eval_utterances 6] [--mirror_utterances 3] [--eval_frames 0]
        [--her s2 s8] [--mirror s5 s11] [--out outputs/benchmarks]

Grace Hopper is held out of the shipped checkpoints' training: in the built-in corpus (12 speakers, seed 0)
speakers s2 and s8 are her photo, s5 and s11 her photo mirrored. Starting from the checkpoint (default: the
shipped one), Face2Vid is personalised to her with the package's own functions (``finetune.face_videos`` +
``finetune.train_on``, what ``talking-face finetune`` runs), from each source:

- ``photo``: her packaged photo (matplotlib's ``grace_hopper.jpg``), animated saying ``--sentences`` TTS
  sentences by the corpus' warping engine: none of the evaluated frames, nor their speech, is seen;
- ``clip``: one video of her, the first ``--clip_utterances`` utterances of s2 from the built-in corpus'
  videos (the cache records' sources) joined into one mp4, decoded, tracked and cropped by ``face_videos``:
  the evaluated utterances of s2 are the others;
- ``other_photo``, a control: the same budget on another face (the astronaut's photo, a training identity),
  animated in the same way. What finetuning on her gains beyond this is personalisation; what this gains
  too is only more training of an unfinished checkpoint.

Each is scored after every budget in ``--steps`` (one run, continued) on whole held-out utterances
generated autoregressively from the driving landmarks and a reference frame of the same speaker
(``lightning_modules.face2vid_evaluation``: the middle frame of another utterance), exactly as the module's
test split scores: her (the last ``--eval_utterances`` of s2 by name, the first of s8) and, as a control, her
mirror image (``--mirror_utterances`` each of s5 and s11: an appearance no finetuning saw). Beside them:
the checkpoint before finetuning, copying the reference frame, and the real video (the metrics' noise floor).

Writes the markdown to stdout and to ``<out>/finetune_identity.md``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

COLUMNS = {  # key -> (header, scale, format)
    "psnr": ("PSNR dB ↑", 1.0, "{:.2f}"),
    "psnr_face": ("PSNR face ↑", 1.0, "{:.2f}"),
    "psnr_mouth": ("PSNR mouth ↑", 1.0, "{:.2f}"),
    "ssim": ("SSIM ↑", 1.0, "{:.3f}"),
    "lmd": ("LMD px ↓", 1.0, "{:.2f}"),
    "face_found": ("face found %", 100.0, "{:.0f}"),
    "flicker": ("flicker ×1000 (0 = real)", 1000.0, "{:+.3f}"),
}
SOURCES = {"photo": "her photo", "clip": "a clip of her", "other_photo": "another face (control)"}
"""Finetuning sources and their names in the tables."""
HER, MIRROR = ("s2", "s8"), ("s5", "s11")
"""Her speakers in the shipped cache (the clip is cut from the first) and her mirror image's."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="Face2Vid checkpoint (default: the shipped one)")
    parser.add_argument("--cache", type=Path, default=Path("outputs/shipped/cache"))
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200], help="budgets scored")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--clip_length", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--sentences", type=int, default=4, help="photo: TTS sentences animated")
    parser.add_argument("--clip_utterances", type=int, default=8, help="clip: utterances of s2 joined")
    parser.add_argument("--eval_utterances", type=int, default=6, help="of s2 and of s8 each")
    parser.add_argument("--mirror_utterances", type=int, default=3, help="of s5 and of s11 each; 0: none")
    parser.add_argument("--eval_frames", type=int, default=0, help="first frames of each utterance, 0: all")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--her", nargs="+", default=list(HER), help="her speakers; the clip: the first's")
    parser.add_argument("--mirror", nargs="*", default=list(MIRROR), help="her mirror image's speakers")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    return parser.parse_args(argv)


def split_records(args: argparse.Namespace) -> tuple[list, dict, list]:
    """(her first speaker's utterances for the clip, {group: evaluated records}, pool of references):
    disjoint by name."""
    from talking_face.datamodules.cache import load_manifest

    pool = load_manifest(args.cache)
    by_speaker: dict[str, list] = {}
    for record in sorted(pool, key=lambda r: r.utterance):
        by_speaker.setdefault(record.speaker, []).append(record)
    her, mirror = args.her, args.mirror
    missing = {*her, *mirror} - set(by_speaker)
    if missing:
        raise SystemExit(f"{args.cache}: no speakers {sorted(missing)}: is it the shipped 12-speaker cache?")
    clip = by_speaker[her[0]][: args.clip_utterances]
    evaluated = {s: by_speaker[s][: args.mirror_utterances] for s in mirror}
    evaluated |= {s: by_speaker[s][: args.eval_utterances] for s in her[1:]}
    evaluated[her[0]] = by_speaker[her[0]][args.clip_utterances :][-args.eval_utterances :]
    names = {f"her ({', '.join(her)})": her, f"her mirror image ({', '.join(mirror)}), control": mirror}
    groups = {name: [r for s in speakers for r in evaluated[s]] for name, speakers in names.items()}
    return clip, {name: records for name, records in groups.items() if records}, pool


def join_clip(records: list, path: Path) -> Path:
    """One mp4 of the corpus videos of ``records`` (25 fps, their own resolution), as a user's clip."""
    from talking_face.datamodules.media import iter_video_frames, write_video

    frames = (frame for r in records for frame in iter_video_frames(r.meta["sources"]["video"]))
    return write_video(path, frames)


def _cell(value: float, scale: float, form: str) -> str:
    return "–" if math.isnan(value) else form.format(value * scale)


def table(rows: dict[str, dict[str, float]]) -> str:
    header = ["model", *(h for h, _, _ in COLUMNS.values())]
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    for name, scores in rows.items():
        cells = [_cell(scores[key], scale, form) for key, (_, scale, form) in COLUMNS.items()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.set_num_threads(args.threads)

    from talking_face.datamodules.faces.photos import packaged_photos
    from talking_face.generation.checkpoints import load_stage, shipped_checkpoint
    from talking_face.generation.finetune import face_videos, own_previous_reached, train_on
    from talking_face.lightning_modules.face2vid_evaluation import (
        copy_reference,
        evaluation_videos,
        generate_with,
        real_frames,
        score_videos,
    )

    for name in ("lightning.pytorch", "lightning.fabric"):  # after lightning's import, which sets them
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(isinstance.treespec|LeafSpec).*")
    started, load = time.perf_counter(), os.getloadavg()[0]
    checkpoint = args.checkpoint or shipped_checkpoint("face2vid")
    base = load_stage(checkpoint, "face2vid")
    size, own_previous = int(base.hparams.image_size), own_previous_reached(base, checkpoint)
    clip_records, groups, pool = split_records(args)
    videos = {
        name: evaluation_videos(records, pool, size, args.eval_frames or None)
        for name, records in groups.items()
    }
    scores: dict[str, dict[str, dict]] = {name: {} for name in videos}

    def score(row: str, make) -> None:
        for name, group in videos.items():
            scores[name][row] = score_videos(group, make)
        print(f"scored {row} ({time.perf_counter() - started:.0f} s)", flush=True)

    score("copy the reference frame", copy_reference)
    score("real video (metric noise floor)", real_frames)
    score("before: the checkpoint as given", generate_with(base))

    notes = []
    photos = {p.name: p.file() for p in packaged_photos()}
    with tempfile.TemporaryDirectory(prefix="finetune-identity-") as scratch:
        for source in args.sources:
            made = time.perf_counter()
            if source == "clip":
                clip = join_clip(clip_records, Path(scratch) / f"grace_{args.her[0]}.mp4")
                data = face_videos(clip, size)
                what = f"one clip of {len(clip_records)} utterances of {args.her[0]}"
            else:
                name = "grace_hopper" if source == "photo" else "astronaut"
                data = face_videos(photos[name], size, sentences=args.sentences, seed=args.seed)
                what = f"the {name} photo, {args.sentences} animated TTS sentences"
            frames = sum(v.num_frames for v in data)
            notes.append(f"{source}: {what}: {len(data)} videos, {frames} frames, made in "
                         f"{time.perf_counter() - made:.0f} s")  # fmt: skip
            module, work, seconds = load_stage(checkpoint, "face2vid"), Path(scratch) / source, 0.0
            for steps in sorted(args.steps):
                trained = time.perf_counter()
                module = train_on(
                    module, data, steps, args.batch_size, args.clip_length, args.lr, own_previous,
                    work_dir=work, save_every=max(args.steps), seed=args.seed, progress=False,
                ).lightning_module  # fmt: skip
                seconds += time.perf_counter() - trained
                notes.append(f"{source}: {steps} steps in {seconds:.0f} s ({seconds / steps:.1f} s/step)")
                score(f"{steps} steps on {SOURCES[source]}", generate_with(module.eval()))

    setup = (
        f"Checkpoint `{checkpoint}` ({size} px, generator channels {base.hparams.channels}). Finetuning: "
        f"batch {args.batch_size} clips of {args.clip_length} frames, Adam lr {args.lr} (constant), previous "
        f"frames the generator's own at rate {own_previous:.2f}, seed {args.seed}, torch threads "
        f"{args.threads}. "
        + "; ".join(notes)
        + f". Evaluated: {'whole utterances' if not args.eval_frames else f'first {args.eval_frames} frames'}"
        ", autoregressive from a "
        "reference frame of the same speaker (middle of another utterance); "
        + "; ".join(
            f"{name}: {len(vs)} utterances, {sum(len(v.frames) for v in vs)} frames"
            for name, vs in videos.items()
        )  # fmt: skip
        + f". Load average at start {load:.1f} on {os.cpu_count()} cores."
    )
    legend = (
        f"PSNR / SSIM over the whole {size}-px crop; PSNR face / mouth: pooled inside the jaw-brow polygon / "
        "the mouth box. LMD: dlib's mouth on the generated frames vs the driving mouth, pixels of the crop "
        "(the real video's row is the detector's own noise). Flicker: frame-difference energy of generated "
        "minus real."
    )
    report = "\n\n".join(
        [
            "## Finetuning Face2Vid to a held-out identity (Grace Hopper)",
            setup,
            legend,
            *(f"### {name}\n\n" + table(rows) for name, rows in scores.items()),
            f"Total benchmark time: {time.perf_counter() - started:.0f} s.",
        ]
    )
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune_identity.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
