"""Full-resolution rendering against paste-back, on faces and speech the models never saw.

    OMP_NUM_THREADS=1 python benchmarks/full_resolution.py --material DIR [--out outputs/full_resolution]

Material (real, not in the repo, never in training):

- faces: matplotlib's Grace Hopper (held out of the shipped training) at its own 512x600 and scaled up to
  1080 and 2160 px high (1080p, 4K); ``face_recognition`` 1.3.0's sdist test photos of Obama (910x1137) and
  Biden (970x2204, the portrait that the 1024 cap shrank); a 1280x720, 30 fps clip of the Obama photo
  drifting a few pixels (dubbing);
- speech: LibriVox "Sense and Sensibility" utterance 0870 from the pocketsphinx 5.1.1 sdist (a real human
  reader, 16 kHz) with its transcript (audio + text: the forced aligner places the words).

``pip download --no-deps --no-binary :all: face_recognition pocketsphinx==5.1.1 -d DIR`` and unpack both
into ``--material``. Each case runs both renderers, ``paste`` (before: Face2Vid's 128-px crop pasted over the
face) and ``full`` (after: the source warped at its resolution, Face2Vid only inside the lips), each in a
fresh process (peak memory is that process's max RSS), with the shipped checkpoints and one thread.

Per case and renderer (frames are measured after H.264 encoding and decoding, as a user sees them):

- ``detail``: variance of the Laplacian in the face box (the source landmarks' box), output / source, the
  median over frames; ``ceiling``: the same for the source itself encoded the same way;
- ``before H.264``: the same detail ratio on the rendered frames before encoding;
- ``identity``: dlib's face-descriptor distance (``dlib_face_recognition_resnet_model_v1``) from the source
  under the frame (both found by the same detector), mean over every 5th frame (same person < 0.6; a
  re-encoded source gives ``id ceiling``);
- ``gap r``: Pearson correlation of dlib's inner-lip gap (62-66 over the outer eye corners 36-45) on the
  output with the driving landmarks' gap; ``open ratio``: mean output gap / mean driving gap on frames whose
  phoneme is an open vowel (AA AE AH AO AW AY EH);
- ``mouth flicker``: mean absolute grey change (0-255) inside the driving inner lips from one frame to the
  next, after moving the frame before with the driving mouth (``mouth_flicker``), before encoding; ``warp
  alone``: the same for the source warped to the same landmarks with no network pixels (a mouth that only
  moves as the landmarks say: what steady scores here);
- ``seam``: mean squared gradient (Sobel) of the output on a 5-px band along the outline of the pixels that
  changed, over the source's at the same pixels (every 10th frame, before encoding);
- ``faces``: share of decoded output frames where dlib finds a face, against the source frames;
- ``fps``: frames / seconds end to end of a plain ``pipeline.write`` (decode, detection and tracking, speech
  alignment, stage 1, render, H.264 encoding), run first in the case's fresh process with nothing measured
  during it (Face2Vid runs ahead in a thread, so measuring between frames would hide its time), one thread;
  ``render fps`` frames / the time that write spent inside ``render`` (what the encoder waited for);
  ``peak MB``: max RSS; ``file MB``: the video's size (H.264 at the writer's default quality, with AAC).

Writes ``<out>/full_resolution.md`` (the table), ``<out>/contact_sheet.png`` and the videos.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
from pathlib import Path

import numpy as np

OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH"}
UTTERANCE = "pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870"
FACES = "face_recognition-1.3.0/tests/test_images"


# --- material -----------------------------------------------------------------------------------------------


def _grace_hopper() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def _scaled(path: Path, height: int, out: Path) -> Path:
    import cv2
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    width = round(image.shape[1] * height / image.shape[0])
    Image.fromarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)).save(out)
    return out


def _clip(path: Path, out: Path, seconds: float = 7.0, fps: float = 30.0) -> Path:
    """A 1280x720 clip of the photo (720 px high, its edges stretched to the sides) drifting a little."""
    import cv2
    from PIL import Image

    from talking_face.datamodules.media import write_video

    image = np.asarray(Image.open(path).convert("RGB"))
    image = cv2.resize(
        image, (round(image.shape[1] * 720 / image.shape[0]), 720), interpolation=cv2.INTER_AREA
    )
    pad = 1280 - image.shape[1]
    image = cv2.copyMakeBorder(image, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REPLICATE)  # one face only

    def frames():
        for t in np.arange(round(seconds * fps)) / fps:
            shift = np.array(
                [[1, 0, 3 * np.sin(2 * np.pi * 0.5 * t)], [0, 1, 2 * np.cos(2 * np.pi * 0.35 * t)]]
            )
            yield cv2.warpAffine(
                image, shift, (1280, 720), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
            )

    return write_video(out, frames(), fps=fps)


def material(root: Path, out: Path) -> dict[str, Path]:
    hopper = _grace_hopper()
    faces = root / FACES
    return {
        "Grace Hopper 512x600": hopper,
        "Grace Hopper 1080p": _scaled(hopper, 1080, out / "hopper_1080.png"),
        "Grace Hopper 4K": _scaled(hopper, 2160, out / "hopper_2160.png"),
        "Obama 910x1137": faces / "obama.jpg",
        "Biden 970x2204": faces / "biden.jpg",
        "Obama clip 720p30": _clip(faces / "obama2.jpg", out / "obama_clip_720p30.mp4"),
    }


# --- measurements -------------------------------------------------------------------------------------------


class _Dlib:
    """dlib's HOG detector (on a copy of at most 1024 px), 68 points and face descriptors at full size."""

    def __init__(self) -> None:
        import dlib

        from talking_face.datamodules.faces.detector import dlib_model_path, make_detector
        from talking_face.generation.face_input import _detect_photo

        self.detector = make_detector("dlib", upsample=1)
        self._detect_photo = _detect_photo
        folder = dlib_model_path().parent
        self.encoder = dlib.face_recognition_model_v1(
            str(folder / "dlib_face_recognition_resnet_model_v1.dat")
        )
        self.predictor = dlib.shape_predictor(str(dlib_model_path()))

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        faces = self._detect_photo(image, self.detector)
        return None if not faces else faces[0].landmarks

    def descriptor(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        import dlib

        low, high = landmarks.min(0), landmarks.max(0)
        box = dlib.rectangle(*(int(v) for v in (low[0], low[1], high[0], high[1])))
        shape = self.predictor(np.ascontiguousarray(image), box)
        return np.asarray(self.encoder.compute_face_descriptor(np.ascontiguousarray(image), shape, 0))


def _gap(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[66] - points[62]) / np.linalg.norm(points[45] - points[36]))


def _even_sized(frames):
    """H.264 in yuv420p needs even sides: an odd side gets one replicated row or column (as the writer's)."""
    for frame in frames:
        height, width = frame.shape[:2]
        yield np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _laplacian(image: np.ndarray, box) -> float:
    import cv2

    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _gradient(image: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.Sobel(grey, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(grey, cv2.CV_32F, 0, 1) ** 2


def _seam(out: np.ndarray, source: np.ndarray) -> float | None:
    """Gradient energy of ``out`` over ``source``'s on a band along the outline of the changed pixels."""
    import cv2

    changed = (out != source).any(-1).astype(np.uint8)
    if not changed.any():
        return None
    changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    kernel = np.ones((5, 5), np.uint8)
    band = (cv2.dilate(changed, kernel) > 0) & ~(cv2.erode(changed, kernel) > 0)
    return float(_gradient(out)[band].mean() / max(_gradient(source)[band].mean(), 1e-6))


def _to_frame(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Crop points [N, 2] -> frame pixels, through the inverse of ``transform`` [2, 3] (frame -> crop)."""
    import cv2

    inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
    return np.asarray(points, np.float64) @ inverse[:, :2].T + inverse[:, 2]


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)


def mouth_flicker(
    previous: np.ndarray, frame: np.ndarray, mouth_before: np.ndarray, mouth_now: np.ndarray
) -> float | None:
    """How much the inside of the mouth changes from ``previous`` to ``frame`` beyond the mouth's own motion.

    ``previous`` is moved with the driving mouth (a thin-plate spline through the 20 mouth landmarks,
    ``mouth_now`` -> ``mouth_before``, [20, 2] frame pixels) onto ``frame``; the result is the mean absolute
    grey difference (0-255) inside the inner lips of ``mouth_now``. Pixels that move as the landmarks say
    score about 0 however far the mouth moves; pixels made anew each frame score their change. None where
    the mouth is closed (under 20 pixels inside the lips)."""
    import cv2
    from scipy.interpolate import RBFInterpolator

    inner = np.asarray(mouth_now, np.float64)[12:]
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(inner).astype(np.int32)], 1)
    rows, columns = np.nonzero(mask)
    if rows.size < 20:
        return None
    x0, y0 = columns.min(), rows.min()
    x1, y1 = columns.max() + 1, rows.max() + 1
    before, now = np.asarray(mouth_before, np.float64), np.asarray(mouth_now, np.float64)
    spline = RBFInterpolator(now, before - now, kernel="thin_plate_spline", smoothing=1e-3)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    reads = (points + spline(points)).astype(np.float32).reshape(y1 - y0, x1 - x0, 2)
    moved = cv2.remap(
        _grey(previous), reads[..., 0], reads[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    inside = mask[y0:y1, x0:x1] > 0
    return float(np.abs(_grey(frame)[y0:y1, x0:x1] - moved)[inside].mean())


def run_case(name: str, face: Path, renderer: str, root: Path, out: Path) -> dict:
    """One case with one renderer, in its own process: timings, metrics, the video and a few frames.

    The product's ``pipeline.write`` runs first, timed alone; then the case is rendered again (the same
    frames) and measured frame by frame; the metrics then stream the decoded video and the re-encoded source
    side by side."""
    import torch

    torch.set_num_threads(1)
    from generate_speed import Stopwatch

    from talking_face.datamodules.media import iter_video_frames, write_video
    from talking_face.datamodules.phonemes import VOCAB
    from talking_face.generation.full_resolution import render_frame, warp_field
    from talking_face.generation.pipeline import TalkingFacePipeline

    pipeline = TalkingFacePipeline.from_checkpoints()
    audio = root / f"{UTTERANCE}.wav"
    text = (root / f"{UTTERANCE}.txt").read_text().strip()
    slug = name.lower().replace(" ", "_")
    watch = Stopwatch()
    watch.wrap(TalkingFacePipeline, "render", "render", generator=True)
    start = time.perf_counter()
    video = pipeline.write(out / f"{slug}_{renderer}.mp4", face, audio, text, renderer=renderer)
    total = time.perf_counter() - start
    watch.close()
    plan = pipeline.prepare(face, audio, text, renderer=renderer)
    n = plan.num_frames
    driving = np.array([_gap(points) for points in plan.driving])
    sheet_at = int(np.argmax(driving))  # the most open driving mouth
    box = [
        tuple(int(v) for v in (*plan.face.landmarks[i].min(0), *(plan.face.landmarks[i].max(0) + 1)))
        for i in plan.frame_index
    ]
    raw: dict[str, list] = {"detail": [], "seam": [], "flicker": [], "steady": []}
    sheet: dict = {}
    mouths = [_to_frame(plan.driving[t, 48:68], plan.transforms[t]) for t in range(n)]
    previous = None  # (output, the warp alone) of the frame before
    for chunk in pipeline.render(plan):
        for offset, frame in enumerate(chunk.frames):
            t = chunk.start + offset
            source = np.asarray(plan.face.frames[plan.frame_index[t]])
            raw["detail"].append(_laplacian(frame, box[t]) / _laplacian(source, box[t]))
            if t % 10 == 0 and (seam := _seam(frame, source)) is not None:
                raw["seam"].append(seam)
            field = warp_field(plan.driving[t], plan.own[t], plan.size)
            steady = render_frame(source, plan.transforms[t], field)
            if previous is not None:
                flicker = mouth_flicker(previous[0], frame, mouths[t - 1], mouths[t])
                if flicker is not None:
                    raw["flicker"].append(flicker)
                    raw["steady"].append(mouth_flicker(previous[1], steady, mouths[t - 1], mouths[t]))
            previous = frame, steady
            if t == sheet_at:
                sheet.update(
                    source=source, frame=frame, mouth=plan.face.landmarks[plan.frame_index[t], 48:68]
                )
    row = {
        "case": name,
        "renderer": renderer,
        "size": f"{sheet['frame'].shape[1]}x{sheet['frame'].shape[0]}",
        "frames": n,
        "fps": n / total,
        "render_fps": n / watch.seconds["render"],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "file_mb": video.stat().st_size / 2**20,
        "detail_raw": float(np.median(raw["detail"])),
        "seam": float(np.median(raw["seam"])) if raw["seam"] else float("nan"),
        "flicker": float(np.mean(raw["flicker"])) if raw["flicker"] else float("nan"),
        "flicker_steady": float(np.mean(raw["steady"])) if raw["steady"] else float("nan"),
        "sheet": sheet,
    }
    sources = (np.asarray(plan.face.frames[i]) for i in plan.frame_index)
    reference = write_video(out / f"{slug}_{renderer}_source.mp4", _even_sized(sources), plan.fps)
    dlib = _Dlib()
    detail, ceiling, gaps, found_out, found_src, distances, id_ceiling = [], [], [], [], [], [], []
    own: dict[int, np.ndarray | None] = {}  # descriptor of each source frame, found the same way
    pairs = zip(iter_video_frames(video, None), iter_video_frames(reference, None), strict=True)
    for t, (made, encoded) in enumerate(pairs):
        source = np.asarray(plan.face.frames[plan.frame_index[t]])
        detail.append(_laplacian(made, box[t]) / _laplacian(source, box[t]))
        ceiling.append(_laplacian(encoded, box[t]) / _laplacian(source, box[t]))
        points, points_source = dlib.landmarks(made), dlib.landmarks(encoded)
        found_out.append(points is not None)
        found_src.append(points_source is not None)
        gaps.append(np.nan if points is None else _gap(points))
        index = int(plan.frame_index[t])
        if t % 5 == 0 and index not in own:
            found = dlib.landmarks(source)
            own[index] = None if found is None else dlib.descriptor(source, found)
        if t % 5 == 0 and points is not None and points_source is not None and own[index] is not None:
            distances.append(np.linalg.norm(dlib.descriptor(made, points) - own[index]))
            id_ceiling.append(np.linalg.norm(dlib.descriptor(encoded, points_source) - own[index]))
    gaps, have = np.array(gaps), np.array(found_out)
    row["detail"], row["ceiling"] = float(np.median(detail)), float(np.median(ceiling))
    row["faces"], row["faces_source"] = float(np.mean(found_out)), float(np.mean(found_src))
    row["gap_r"] = float(np.corrcoef(gaps[have], driving[have])[0, 1]) if have.sum() > 2 else float("nan")
    ids = plan.speech.phoneme_ids[plan.speech_frames]
    vowels = np.array([VOCAB[i].rstrip("012") in OPEN_VOWELS for i in ids]) & plan.voiced & have
    row["open_ratio"] = float(gaps[vowels].mean() / driving[vowels].mean()) if vowels.any() else float("nan")
    row["identity"] = float(np.mean(distances)) if distances else float("nan")
    row["id_ceiling"] = float(np.mean(id_ceiling)) if id_ceiling else float("nan")
    plan.face.close()
    return row


def _worker(args) -> dict:
    return run_case(*args)


# --- report -------------------------------------------------------------------------------------------------


def contact_sheet(rows: list[dict], path: Path, height: int = 360) -> None:
    """Per case: source, before (paste), after (full), each scaled to ``height`` px, then the mouth of each
    at the source's own resolution (a box 1.6x the mouth's width), enlarged to ``height`` px."""
    import cv2
    from PIL import Image

    lines = []
    for name in dict.fromkeys(r["case"] for r in rows):
        by = {r["renderer"]: r["sheet"] for r in rows if r["case"] == name}
        if set(by) != {"paste", "full"}:
            continue
        images = [by["full"]["source"], by["paste"]["frame"], by["full"]["frame"]]
        mouth = by["full"]["mouth"]
        centre, side = mouth.mean(0), 1.6 * np.ptp(mouth[:, 0])
        x0, y0 = (centre - side / 2).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        s = int(side)
        crops = [
            im[y0 : y0 + s, x0 : x0 + s]
            for im in (by["full"]["source"], by["paste"]["frame"], by["full"]["frame"])
        ]
        scaled = [
            cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height), interpolation=cv2.INTER_AREA)
            for im in images
        ]
        zoomed = [cv2.resize(c, (height, height), interpolation=cv2.INTER_NEAREST) for c in crops]
        line = np.concatenate(scaled + zoomed, axis=1)
        label = np.full((28, line.shape[1], 3), 255, np.uint8)
        cv2.putText(
            label,
            f"{name}: source | before (paste) | after (full) | mouth: source | before | after",
            (6, 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
        lines.append(np.concatenate([label, line]))
    if not lines:
        return
    width = max(line.shape[1] for line in lines)
    sheet = np.concatenate(
        [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    )
    Image.fromarray(sheet).save(path)


def table(rows: list[dict]) -> str:
    head = (
        "| case | renderer | output | detail (ceiling) | before H.264 | identity (ceiling) | gap r "
        "| open ratio | mouth flicker (warp alone) | seam | faces (source) | fps | render fps | peak MB "
        "| file MB |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['renderer']} | {r['size']} | {r['detail']:.2f} ({r['ceiling']:.2f}) | "
            f"{r['detail_raw']:.2f} | "
            f"{r['identity']:.3f} ({r['id_ceiling']:.3f}) | {r['gap_r']:.2f} | {r['open_ratio']:.2f} | "
            f"{r['flicker']:.1f} ({r['flicker_steady']:.1f}) | "
            f"{r['seam']:.2f} | {r['faces']:.2f} ({r['faces_source']:.2f}) | {r['fps']:.1f} | "
            f"{r['render_fps']:.1f} | {r['peak_mb']:.0f} | {r['file_mb']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--material", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("outputs/full_resolution"))
    parser.add_argument("--cases", nargs="*", default=None, help="names of cases to run (default: all)")
    parser.add_argument("--renderers", nargs="*", default=["paste", "full"], help="before and/or after")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = material(args.material, args.out)
    if args.cases:
        cases = {k: v for k, v in cases.items() if k in args.cases}
    jobs = [
        (name, face, renderer, args.material, args.out)
        for name, face in cases.items()
        for renderer in args.renderers
    ]
    context = multiprocessing.get_context("spawn")
    rows = []
    for job in jobs:
        with context.Pool(1) as pool:
            row = pool.apply(_worker, (job,))
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
    contact_sheet(rows, args.out / "contact_sheet.png")
    text = table(rows)
    (args.out / "full_resolution.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
