"""Look at what a cache holds: totals per speaker, and three plots that show one utterance is in sync.

- ``plot_frame_strip``: aligned crops with their 68 landmarks (mouth 48-67 in another colour): is the
  face found, aligned and steady?
- ``plot_mel_with_phonemes``: the log-mel features with the phoneme segments on top: do the phonemes sit
  on the sounds they name?
- ``plot_mouth_vs_envelope``: mouth opening against the loudness of the audio, frame by frame: does the
  mouth open when there is sound? (Their correlation should be clearly positive.)

Each plot takes a ``CachedUtterance`` and an optional matplotlib Axes and returns the Figure. Figures
are built with ``matplotlib.figure.Figure`` (not pyplot), so nothing here needs a display or changes the
global backend, and a notebook shows a returned figure inline. ``inspect_cache`` is the command
``talking-face inspect``; the notebook ``notebooks/00_data.ipynb`` calls the same functions.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talking_face.datamodules import timebase
from talking_face.datamodules.audio_features import speech_envelope
from talking_face.datamodules.cache import CachedUtterance, load_manifest
from talking_face.datamodules.faces.landmark_scheme import MOUTH, NUM_LANDMARKS, OUTER_LIP
from talking_face.datamodules.faces.mouth import mouth_opening, mouth_points
from talking_face.errors import InputError, UsageError
from talking_face.shapes import check_shape

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "describe_batch",
    "describe_record",
    "format_summary",
    "inspect_cache",
    "lagged_correlation",
    "plot_clip",
    "plot_frame_strip",
    "plot_landmark_strip",
    "plot_mel_with_phonemes",
    "plot_mouth_vs_envelope",
    "plot_normalised_mouth",
    "plot_utterance",
    "summarize_cache",
]

FACE_COLOUR = "#00e5ff"
MOUTH_COLOUR = "#ff3d7f"
ENVELOPE_COLOUR = "#1f77b4"
_LANDMARK_LEGEND = f"{NUM_LANDMARKS} landmarks (mouth {MOUTH.start}-{MOUTH.stop - 1} in pink)"


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """The given Axes, or one on a new stand-alone Figure (no pyplot: no display, no global state)."""
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _strip_size(count: int) -> tuple[float, float]:
    """Figure size (inches) of a strip of ``count`` square images."""
    return (1.5 * count, 2.0)


def _title(record: CachedUtterance) -> str:
    return f"{record.speaker}/{record.utterance}: \u201c{record.meta.get('text', '')}\u201d"


# --- arrays ---------------------------------------------------------------------------------------


def describe_record(record: CachedUtterance) -> dict[str, str]:
    """Each array of a record -> ``"dtype [shape]"`` (read from the .npy headers; nothing is loaded)."""
    return {
        path.stem: f"{array.dtype} {list(array.shape)}"
        for path in sorted(record.path.glob("*.npy"))
        for array in [np.load(path, mmap_mode="r")]
    }


def describe_batch(batch: dict) -> dict[str, str]:
    """Each entry of a batch -> ``"dtype [shape]"`` for tensors and arrays, ``"list[str] of N"`` for lists."""
    return {
        key: f"{str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
        if hasattr(value, "shape")
        else f"list[{type(value[0]).__name__}] of {len(value)}"
        for key, value in batch.items()
    }


def lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 5) -> dict[int, float]:
    """Pearson correlation of ``a[t]`` with ``b[t + lag]`` for each lag in [-max_lag, max_lag] (frames).

    A positive best lag means ``b`` follows ``a``: the mouth opens before the sound it makes.
    Lags that leave fewer than 3 overlapping frames, or a constant overlap, are left out.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"expected two sequences [T] of one length, got {a.shape} and {b.shape}")
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[: len(a) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: len(b) + lag])
        if len(x) >= 3 and x.std() > 0 and y.std() > 0:
            out[lag] = float(np.corrcoef(x, y)[0, 1])
    return out


def _unit_range(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (a constant sequence becomes zeros)."""
    span = float(values.max() - values.min())
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


# --- plots ----------------------------------------------------------------------------------------


def plot_landmark_strip(
    images: np.ndarray, landmarks: np.ndarray, labels: Sequence[str] | None = None, ax: Axes | None = None
) -> Figure:
    """Square images [N, S, S, 3] (uint8, or float in [0, 1]) side by side with their landmarks [N, 68, 2].

    Landmarks are in each image's pixels (x right, y down, pixel centres); image i is drawn at x offset
    ``i * S``. Face points (0-47) and mouth points (48-67) are two scatter collections of ``N * 48`` and
    ``N * 20`` points (cyan and pink); ``labels`` become the x tick under each image.
    """
    images, landmarks = np.asarray(images), np.asarray(landmarks, np.float32)
    dims = check_shape(images, "N S S 3", "images")
    check_shape(landmarks, f"N {NUM_LANDMARKS} 2", "landmarks", dims)
    count, size = dims["N"], dims["S"]
    if count == 0:
        raise ValueError("no images to draw")
    ax = _axes(ax, _strip_size(count))
    ax.imshow(np.concatenate(list(images), axis=1))
    shifts = np.stack([np.arange(count) * size, np.zeros(count)], axis=-1).astype(np.float32)  # [N, 2]
    points = landmarks + shifts[:, None, :]
    face, mouth = points[:, : MOUTH.start].reshape(-1, 2), points[:, MOUTH.start :].reshape(-1, 2)
    dot = max(2.0, size / 40)
    ax.scatter(*face.T, s=dot, c=FACE_COLOUR, linewidths=0)
    ax.scatter(*mouth.T, s=dot, c=MOUTH_COLOUR, linewidths=0)
    ax.set_xticks((np.arange(count) + 0.5) * size - 0.5)
    ax.set_xticklabels(labels if labels is not None else [str(i) for i in range(count)], fontsize=7)
    ax.set_yticks([])
    ax.set_xlim(-0.5, count * size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    return ax.figure


def plot_frame_strip(record: CachedUtterance, count: int = 8, ax: Axes | None = None) -> Figure:
    """``count`` aligned crops evenly spread over the utterance, with their 68 landmarks (crop pixels).

    Is the face found, centred and steady? Ticks give each crop's frame index and time.
    """
    frames = record.array("frames")
    if len(frames) == 0 or count < 1:
        raise ValueError(f"{record.path}: nothing to show ({len(frames)} frames, count={count})")
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    labels = [f"frame {i}\n{i / timebase.FPS:.2f} s" for i in picks]
    ax = _axes(ax, _strip_size(len(picks)))
    plot_landmark_strip(frames[picks], record.array("landmarks")[picks], labels, ax)
    size = frames.shape[1]
    ax.set_title(f"{_title(record)}: aligned {size}x{size} crops, {_LANDMARK_LEGEND}", fontsize=9)
    return ax.figure


def plot_clip(batch: dict, index: int = 0, ax: Axes | None = None) -> Figure:
    """One stage-2 item of a ``face2vid`` batch: its reference frame, then the clip's frames, with landmarks.

    ``batch["frames"]`` float [B, L, 3, S, S] in [0, 1], ``landmarks`` [B, L, 68, 2] crop pixels,
    ``reference_frame`` [B, 3, S, S], ``reference_landmarks`` [B, 68, 2], ``start`` [B] (see datasets.py).
    """
    clip = np.asarray(batch["frames"][index]).transpose(0, 2, 3, 1)
    reference = np.asarray(batch["reference_frame"][index]).transpose(1, 2, 0)
    landmarks = np.concatenate(
        [np.asarray(batch["reference_landmarks"][index])[None], batch["landmarks"][index]]
    )
    start = int(batch["start"][index])
    labels = ["reference", *(f"frame {start + i}" for i in range(len(clip)))]
    ax = _axes(ax, _strip_size(len(labels)))
    plot_landmark_strip(np.concatenate([reference[None], clip]), landmarks, labels, ax)
    ax.set_title(
        f"stage-2 clip of {batch['speaker'][index]}/{batch['utterance'][index]} "
        f"({len(clip)} frames from {start}) after a reference frame of the same speaker; {_LANDMARK_LEGEND}",
        fontsize=9,
    )
    return ax.figure


def plot_mel_with_phonemes(record: CachedUtterance, ax: Axes | None = None) -> Figure:
    """The log-mel features [4T, 80] against time in seconds, one boundary line and label per phoneme.

    Feature step s is centred on ``s * HOP_LENGTH / SAMPLE_RATE`` seconds (10 ms steps, 4 per frame).
    A dashed line marks each phoneme's start (so there are as many lines as phonemes; the first sits
    at 0 s); its label is written at the middle of its segment, silences in grey.
    """
    features = np.asarray(record.array("audio_features"))
    step = timebase.HOP_LENGTH / timebase.SAMPLE_RATE
    ax = _axes(ax, (10.0, 3.0))
    ax.imshow(
        features.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
        extent=(-step / 2, (len(features) - 0.5) * step, -0.5, features.shape[1] - 0.5),
    )  # fmt: skip
    phonemes = record.phonemes
    for index, segment in enumerate(phonemes):
        ax.axvline(segment.start, color="white", linewidth=0.6, linestyle="--", alpha=0.8)
        silent = segment.label == "sil"
        ax.text(
            (segment.start + segment.end) / 2, features.shape[1] * (0.93 if index % 2 else 0.85),
            segment.label, ha="center", va="center", fontsize=7,
            color="0.75" if silent else "white", fontweight="normal" if silent else "bold",
        )  # fmt: skip
    ax.set_xlim(0, (len(features) - 0.5) * step)  # the last step is centred 5 ms before the end
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title(
        f"log-mel ({timebase.STEPS_PER_FRAME} steps of {step * 1000:.0f} ms per frame) "
        f"and {len(phonemes)} phoneme segments",
        fontsize=9,
    )
    return ax.figure


def plot_mouth_vs_envelope(record: CachedUtterance, ax: Axes | None = None) -> Figure:
    """Mouth opening (inner-lip gap, crop pixels) and audio RMS per frame, each scaled to [0, 1].

    Frames under a ``sil`` phoneme are shaded. The title gives their Pearson correlation at lag 0 and
    at the best lag within +-5 frames (positive: the sound follows the mouth).
    """
    num_frames = record.num_frames
    opening = mouth_opening(mouth_points(np.asarray(record.array("landmarks"), np.float32)))
    envelope = speech_envelope(record.array("audio"), num_frames)
    times = (np.arange(num_frames) + 0.5) / timebase.FPS
    ax = _axes(ax, (10.0, 2.5))
    for segment in record.phonemes:
        if segment.label == "sil":
            ax.axvspan(segment.start, segment.end, color="0.9", zorder=0)
    ax.plot(times, _unit_range(opening), color=MOUTH_COLOUR, label="mouth opening (inner lips)")
    ax.plot(times, _unit_range(envelope), color=ENVELOPE_COLOUR, label="audio RMS per frame")
    correlations = lagged_correlation(opening, envelope)
    at_zero = correlations.get(0, float("nan"))
    best = max(correlations, key=correlations.get) if correlations else 0
    best_text = f", best r = {correlations[best]:.2f} at lag {best:+d} frames" if correlations else ""
    ax.set_title(f"mouth opening vs audio envelope: r = {at_zero:.2f}{best_text}", fontsize=9)
    ax.set_xlim(0, num_frames / timebase.FPS)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("normalised")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    return ax.figure


def plot_normalised_mouth(batch: dict, index: int = 0, ax: Axes | None = None) -> Figure:
    """One stage-1 item of a ``landmarks`` batch: its mouth in the face-normalised frame.

    Draws every real frame's 20 points faintly, the resting mouth (``mouth_reference`` [B, 20, 2]) and the
    most open frame of ``mouth`` [B, T, 20, 2] as lip outlines. Units: the template's inter-ocular
    distance, origin at the template's mouth centre, y down (as in the crop), whatever the crop size.
    """
    length = int(batch["lengths"][index])
    mouth = np.asarray(batch["mouth"][index][:length], np.float32)
    reference = np.asarray(batch["mouth_reference"][index], np.float32)
    widest = int(np.argmax(mouth_opening(mouth)))
    ax = _axes(ax, (6.0, 3.2))
    ax.scatter(*mouth.reshape(-1, 2).T, s=2, c="0.8", linewidths=0, label=f"all {length} frames")
    _draw_lips(ax, reference, "k", "resting mouth")
    _draw_lips(ax, mouth[widest], MOUTH_COLOUR, f"most open (frame {widest})")
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.set_xlabel("x (inter-ocular units)")
    ax.set_ylabel("y (down)")
    ax.set_title(f"{batch['speaker'][index]}/{batch['utterance'][index]}: mouth, face-normalised", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    return ax.figure


def _draw_lips(ax: Axes, mouth: np.ndarray, colour: str, label: str) -> None:
    """Closed outlines of the outer lip (solid) and inner lip (dashed) of mouth points [20, 2]."""
    outer, inner = mouth[: len(OUTER_LIP)], mouth[len(OUTER_LIP) :]
    ax.plot(*np.vstack([outer, outer[:1]]).T, color=colour, label=label)
    ax.plot(*np.vstack([inner, inner[:1]]).T, color=colour, linestyle="--")


def plot_utterance(record: CachedUtterance, count: int = 8) -> Figure:
    """The three plots of one utterance stacked in one Figure (what ``inspect_cache`` writes)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12.0, 7.6), layout="constrained")
    strip, mel, mouth = figure.subplots(3, 1, height_ratios=[1.1, 1.3, 1.0])
    plot_frame_strip(record, count, ax=strip)
    plot_mel_with_phonemes(record, ax=mel)
    plot_mouth_vs_envelope(record, ax=mouth)
    return figure


# --- the cache as a whole -------------------------------------------------------------------------


def summarize_cache(cache_dir: str | Path) -> dict:
    """Totals of a cache: speakers, utterances, frames, hours, crop sizes, and what preprocessing skipped.

    ``skipped`` counts the entries of ``preprocess_report.json`` (the last preprocessing run) and is None
    when there is no report. ``per_speaker`` maps each speaker to {utterances, frames}.
    """
    records = load_manifest(cache_dir)
    per_speaker: dict[str, dict[str, int]] = {}
    for record in records:
        totals = per_speaker.setdefault(record.speaker, {"utterances": 0, "frames": 0})
        totals["utterances"] += 1
        totals["frames"] += record.num_frames
    frames = sum(t["frames"] for t in per_speaker.values())
    report_path = Path(cache_dir) / "preprocess_report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    return {
        "cache_dir": str(cache_dir),
        "speakers": len(per_speaker),
        "utterances": len(records),
        "frames": frames,
        "hours": frames / timebase.FPS / 3600,
        "crop_sizes": sorted(Counter(int(r.meta["crop_size"]) for r in records)),
        "skipped": None if report is None else len(report.get("skipped", [])),
        "per_speaker": dict(sorted(per_speaker.items())),
    }


def format_summary(summary: dict) -> str:
    """A plain-text table of ``summarize_cache``'s result (one row per speaker, then the totals)."""
    width = max([len("speaker"), len("total"), *map(len, summary["per_speaker"])])
    rows = [f"{'speaker':<{width}}  {'utterances':>10}  {'frames':>8}  {'seconds':>8}"]
    lines = [(name, t["utterances"], t["frames"]) for name, t in summary["per_speaker"].items()]
    lines.append(("total", summary["utterances"], summary["frames"]))
    rows += [
        f"{name:<{width}}  {count:>10}  {frames:>8}  {frames / timebase.FPS:>8.1f}"
        for name, count, frames in lines
    ]
    rows.insert(len(rows) - 1, "-" * len(rows[0]))
    skipped = "no report" if summary["skipped"] is None else summary["skipped"]
    rows.append(
        f"{summary['speakers']} speakers, {summary['hours']:.4f} h, crop size {summary['crop_sizes']}, "
        f"skipped in last preprocessing: {skipped}"
    )
    return "\n".join([f"cache {summary['cache_dir']}", *rows])


def _pick_record(cache_dir: str | Path, utterance: str | None) -> CachedUtterance:
    records = load_manifest(cache_dir)
    if not records:
        raise InputError(f"{cache_dir}: the manifest lists no records")
    if utterance is None:
        return records[0]
    for record in records:
        if utterance in (record.utterance, f"{record.speaker}/{record.utterance}"):
            return record
    raise UsageError(
        "utterance",
        f"{cache_dir}: no utterance {utterance!r} (e.g. {records[0].speaker}/{records[0].utterance})",
    )


def inspect_cache(
    cache_dir: str = "outputs/cache", out: str = "outputs/cache_overview.png", utterance: str | None = None
) -> dict:
    """Print a table of what a cache holds and write one PNG with the three plots of one utterance.

    Args:
        cache_dir: the preprocessed cache (``talking-face preprocess``).
        out: the PNG to write (its folder is created).
        utterance: which utterance to plot, ``<id>`` or ``<speaker>/<id>`` (default: the first).

    Returns:
        The summary of ``summarize_cache`` plus ``figure`` (the PNG's path) and ``utterance`` (the one shown).
    """
    summary = summarize_cache(cache_dir)
    print(format_summary(summary))
    record = _pick_record(cache_dir, utterance)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    plot_utterance(record).savefig(out_path, dpi=110)
    print(f"wrote {out_path} ({record.speaker}/{record.utterance})")
    return {**summary, "figure": str(out_path), "utterance": f"{record.speaker}/{record.utterance}"}
