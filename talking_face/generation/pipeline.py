"""The product: speech and/or text + a face photo or clip -> a lip-synced video (CLI, notebook and demo).

    pipeline = TalkingFacePipeline.from_checkpoints()          # the shipped checkpoints by default
    pipeline.write("out.mp4", face="me.jpg", text="Hello there")
    result = pipeline(face="me.jpg", audio="hello.wav")        # frames + audio in memory (short inputs)

Steps (``prepare`` then ``render``):

1. speech (``speech_input``): audio at the pipeline's rate, phoneme timings (given, recognised or the TTS'),
   voice activity (none at all where no speech was found: the mouth rests);
2. face (``face_input``): full frames, tracked landmarks, a similarity crop per frame (the preprocessing's);
3. stage 1 predicts the mouth in the face-normalised frame from the person's neutral mouth; it is retargeted
   to the person's mouth, its lips meet on p, b and m where the phones are known, it is eased to rest in
   pauses, and put into the face (``motion``): a photo gets gentle head motion and blinks, a clip keeps its
   own motion (looped back and forth, or cut, to the speech) and its own frame rate: stage 1 speaks at 25
   fps and its mouth is read at the clip's frame times;
4. Face2Vid renders the crops autoregressively (``rollout``), chunk by chunk with its previous frames carried
   across the chunk borders (chunked = one go, bounded memory); each output frame is the source (the photo,
   or the clip frame under it) warped at its own resolution to the driving landmarks, with Face2Vid's pixels
   only inside the lips (``full_resolution``; ``renderer="paste"`` pastes the whole crop back instead,
   ``paste_back``); frames of a clip where no face was found pass through unchanged;
5. ``write`` streams the frames into an H.264 + AAC mp4 with the speech, atomically; the video has exactly
   as many frames as the speech covers (the last partial frame included).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from talking_face.datamodules import timebase
from talking_face.generation.checks import check_output
from talking_face.generation.face_input import FaceTrack, load_face
from talking_face.generation.options import GenerationOptions
from talking_face.generation.speech_input import SpeechInput, prepare_speech

if TYPE_CHECKING:
    from talking_face.lightning_modules.landmark_inference import MouthPredictor
    from talking_face.lightning_modules.rollout import FrameRollout

__all__ = ["Plan", "RenderedChunk", "Result", "TalkingFacePipeline", "pingpong_indices"]


def pingpong_indices(num_frames: int, available: int) -> np.ndarray:
    """Which of ``available`` clip frames plays at each of ``num_frames`` output frames: the clip runs
    forward, then backward, and so on (no jump at the loop point); a longer clip is cut."""
    t = np.arange(num_frames)
    if available <= 1:
        return np.zeros(num_frames, np.int64)
    period = 2 * available - 2
    phase = t % period
    return np.where(phase < available, phase, period - phase).astype(np.int64)


@dataclass
class Plan:
    """Everything decided before rendering, in the crop pixels of ``size``-px crops.

    T output frames at ``fps`` (a clip's own rate, 25 for a photo); the speech is at the models' rate
    (``timebase.FPS``) and ``speech_frames`` [T] is its frame under each output frame.
    ``frame_index`` [T] the face frame under each output frame; ``transforms`` [T, 2, 3] frame -> crop;
    ``driving`` [T, 68, 2] the landmarks Face2Vid draws; ``own`` [T, 68, 2] the face's own landmarks there;
    ``mouth`` [T, 20, 2] the retargeted mouth before resting in pauses (``speech.voiced``);
    ``predicted`` [speech.num_frames, 20, 2] stage 1's own mouth at the models' rate, face-normalised
    (``faces.alignment.face_normalise``), before it is retargeted onto the face and its lips shut on p/b/m;
    ``reference_crop`` [S, S, 3] uint8 and ``reference_landmarks`` [68, 2] the appearance Face2Vid copies;
    ``options`` the knobs it was made with (``GenerationOptions``: the renderer, chunks, ...).
    """

    speech: SpeechInput
    face: FaceTrack
    size: int
    fps: float
    speech_frames: np.ndarray
    frame_index: np.ndarray
    transforms: np.ndarray
    driving: np.ndarray
    own: np.ndarray
    mouth: np.ndarray
    predicted: np.ndarray
    reference_crop: np.ndarray
    reference_landmarks: np.ndarray
    options: GenerationOptions

    @property
    def num_frames(self) -> int:
        return len(self.driving)

    @property
    def voiced(self) -> np.ndarray:
        """Bool [T]: where someone speaks (elsewhere the mouth rests)."""
        return self.speech.voiced[self.speech_frames]


@dataclass
class RenderedChunk:
    """Frames [start, start + n): ``crops`` [n, S, S, 3] and full ``frames`` [n, H, W, 3], uint8."""

    start: int
    crops: np.ndarray
    frames: np.ndarray


@dataclass
class Result:
    """A whole generated video in memory: ``frames`` [T, H, W, 3] uint8, mono ``audio`` at ``sample_rate``."""

    frames: np.ndarray
    crops: np.ndarray
    audio: np.ndarray
    sample_rate: int
    fps: float
    plan: Plan


class TalkingFacePipeline:
    """Stage 1's networks (``MouthPredictor``) + stage 2's generator over time (``FrameRollout``) + everything
    around them.

    Build with ``from_checkpoints`` (shipped checkpoints by default), or from trained modules:
    ``TalkingFacePipeline(landmark_module.predictor(), face2vid_module.frame_rollout())``. The knobs of each
    video are keyword arguments of ``prepare``, ``write`` and ``__call__`` (``GenerationOptions``).

    The option ``max_temporal_mask`` caps M, the share of each frame taken from the warped previous frame:
    at inference every previous frame is the model's own, and each bilinear warp blurs a little more. Lower
    is sharper, higher smoother, 1 = as trained (what the cap bought is in ``benchmarks/README.md``).
    """

    def __init__(
        self, mouth: MouthPredictor, rollout: FrameRollout, device: str | torch.device = "cpu"
    ) -> None:  # noqa: E501
        self.device = torch.device(device)
        self.mouth = mouth.to(self.device)
        self.rollout = rollout
        rollout.generator.to(self.device).eval()

    @classmethod
    def from_checkpoints(
        cls,
        landmarks: str | Path | None = None,
        face2vid: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> TalkingFacePipeline:
        """Load both stages' networks (None: the shipped checkpoints); errors name the file."""
        from talking_face.generation.checkpoints import (
            load_frame_rollout,
            load_mouth_predictor,
            shipped_checkpoint,
        )

        mouth = load_mouth_predictor(landmarks or shipped_checkpoint("landmarks"), device)
        rollout = load_frame_rollout(face2vid or shipped_checkpoint("face2vid"), device)
        return cls(mouth, rollout, device)

    @property
    def size(self) -> int:
        """Side of the face crops Face2Vid makes (128 or 256 px)."""
        return self.rollout.size

    # --- planning -------------------------------------------------------------------------------------

    def prepare(
        self,
        face: str | Path,
        audio: str | Path | None = None,
        text: str | None = None,
        *,
        progress: bool = False,
        **options,
    ) -> Plan:
        """Speech, face and the driving landmarks of every frame (no pixels generated yet).

        Args:
            face: a photo (any size; EXIF orientation respected) or a clip (any frame rate and resolution).
            audio: speech in any format ffmpeg reads (wav, mp3, flac, m4a, a video's sound), any rate.
            text: what is said; alone, the project's TTS speaks it; with audio, it is aligned to it.
            progress: say each step on stderr.
            options: the knobs of ``GenerationOptions`` by name, each with its default there.
        """
        from talking_face.datamodules.faces.alignment import (
            estimate_crop_transform,
            smooth_transforms,
            transform_points,
            warp_to_crop,
        )
        from talking_face.datamodules.faces.motion import photo_motion
        from talking_face.datamodules.preprocess import PreprocessConfig
        from talking_face.generation.motion import replace_mouth, rest_in_silence

        knobs = GenerationOptions(**options)
        if progress:
            _status("speaking the text" if audio is None else "reading the speech")
        speech = prepare_speech(audio, text, knobs.voice, recognise=knobs.recognise)
        if progress:
            _status(f"the mouth follows: {speech.path}", ellipsis=False)
            _status(f"finding the face in {face}")
        seconds = len(speech.audio) / timebase.SAMPLE_RATE
        track = load_face(
            face, seconds, knobs.face_index, knobs.smoothing, knobs.max_side, knobs.fps, progress=progress
        )
        fps, size = track.fps, self.size
        num_frames = timebase.num_frames_at(seconds, fps)
        if progress:
            _status(f"the video: {num_frames} frames at {fps:g} fps", ellipsis=False)
        transforms = estimate_crop_transform(track.landmarks, size)
        if track.kind == "video":  # as in training, over as long at the clip's rate
            window = timebase.window_at(PreprocessConfig.crop_smoothing, fps)
            transforms = smooth_transforms(transforms, window)
        own_all = transform_points(track.landmarks, transforms).astype(np.float32)
        index = pingpong_indices(num_frames, len(track))
        reference = self._reference_index(own_all, track.found)
        neutral = self._neutral_mouth(own_all, track.found)
        predicted, mouth = self._predict_mouth(speech, neutral, knobs.mouth_scale)
        speaking = rest_in_silence(mouth, neutral, speech.voiced)
        if fps != timebase.FPS:  # stage 1 speaks at the models' rate; the video plays at its own
            mouth, speaking = (timebase.resample_frames(m, num_frames, fps) for m in (mouth, speaking))
        own = own_all[index]
        driving = replace_mouth(own, speaking, neutral)
        if track.kind == "photo":
            driving = photo_motion(driving, own_all[0], knobs.head_motion, knobs.blinks, knobs.seed, fps)
        reference_crop = warp_to_crop(track.frames[reference], transforms[reference], size)
        return Plan(
            speech=speech,
            face=track,
            size=size,
            fps=fps,
            speech_frames=timebase.frames_under(num_frames, fps, speech.num_frames),
            frame_index=index,
            transforms=transforms[index],
            driving=driving,
            own=own,
            mouth=mouth,
            predicted=predicted,
            reference_crop=reference_crop,
            reference_landmarks=own_all[reference],
            options=knobs,
        )

    @staticmethod
    def _neutral_mouth(own: np.ndarray, found: np.ndarray) -> np.ndarray:
        from talking_face.datamodules.faces.mouth import mouth_points, neutral_mouth

        return neutral_mouth(mouth_points(own[found] if found.any() else own))

    @staticmethod
    def _reference_index(own: np.ndarray, found: np.ndarray) -> int:
        """The found frame with the most closed mouth: the appearance Face2Vid starts from."""
        from talking_face.datamodules.faces.mouth import mouth_opening, mouth_points

        opening = np.where(found, mouth_opening(mouth_points(own)), np.inf)
        return int(np.argmin(opening))

    def _predict_mouth(
        self, speech: SpeechInput, neutral: np.ndarray, mouth_scale: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stage 1's own mouth (``Plan.predicted``) and that mouth retargeted onto the face whose resting
        mouth is ``neutral`` (crop px), its lips shut wherever the phones say p, b or m."""
        from talking_face.datamodules.audio_features import log_mel
        from talking_face.datamodules.faces.alignment import face_normalise
        from talking_face.datamodules.faces.mouth import mouth_opening
        from talking_face.generation.motion import close_on_bilabials, retarget_mouth
        from talking_face.generation.mouth_calibration import closed_gap, closed_mouth

        size = self.size
        neutral = closed_mouth(neutral, closed_gap(size))  # an open smile still closes
        reference = face_normalise(neutral, size).astype(np.float32)
        features = torch.from_numpy(log_mel(speech.audio, speech.num_frames))[None]
        ids = None if speech.phoneme_ids is None else torch.from_numpy(speech.phoneme_ids)[None]
        prediction = self.mouth.predict(
            mouth_reference=torch.from_numpy(reference)[None], audio_features=features, phoneme_ids=ids
        )
        predicted = prediction.mouth[0].float().cpu().numpy()
        mouth = retarget_mouth(predicted, reference, neutral, size, mouth_scale)
        if speech.phoneme_ids is None:  # the sound alone: no phones to say where the lips must meet
            return predicted, mouth
        return predicted, close_on_bilabials(mouth, speech.phoneme_ids, float(mouth_opening(neutral)))

    # --- rendering ------------------------------------------------------------------------------------

    def render(self, plan: Plan, progress: bool = False) -> Iterator[RenderedChunk]:
        """Generate the video chunk by chunk (memory bounded by ``chunk_frames``), as ``renderer`` says:
        ``full`` warps the source at its own resolution and takes only the mouth's inside from Face2Vid
        (``full_resolution``); ``paste`` pastes Face2Vid's whole crop back (``paste_back``). Face2Vid makes
        the next frames in a background thread while these are composed (``ahead``)."""
        from contextlib import closing

        from tqdm.auto import tqdm

        from talking_face.generation.ahead import ahead

        bar = tqdm(total=plan.num_frames, desc="generate", unit="frame", disable=not progress)
        with closing(ahead(self._made(plan), depth=plan.options.chunk_frames)) as made, bar:
            for start in range(0, plan.num_frames, plan.options.chunk_frames):
                stop = min(start + plan.options.chunk_frames, plan.num_frames)
                crops = np.empty((stop - start, plan.size, plan.size, 3), np.uint8)
                frames = np.empty((stop - start, *plan.face.frames[0].shape), np.uint8)
                for t, crop, out in zip(range(start, stop), crops, frames, strict=True):
                    crop[:], drawn = next(made)
                    source = np.asarray(plan.face.frames[plan.frame_index[t]])
                    if plan.face.found[plan.frame_index[t]]:
                        self._compose(plan, t, source, crop, drawn, out)
                    else:
                        out[:] = source  # no face here: the frame passes through
                    bar.update()
                yield RenderedChunk(start, crops, frames)

    @torch.no_grad()
    def _made(self, plan: Plan) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Face2Vid's frame and hallucinated image of each output frame, uint8 [S, S, 3] each, made
        autoregressively chunk by chunk (its previous frames carried across chunk borders)."""
        reference = torch.from_numpy(plan.reference_crop).permute(2, 0, 1).float().div(255)
        rollout = self.rollout.capped(plan.options.max_temporal_mask).start(
            reference[None], torch.from_numpy(plan.reference_landmarks)[None]
        )
        for start in range(0, plan.num_frames, plan.options.chunk_frames):
            landmarks = torch.from_numpy(plan.driving[start : start + plan.options.chunk_frames])
            for out in rollout.run(landmarks.to(self.device)[None]):
                yield tuple(
                    image[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
                    for image in (out.frame, out.hallucinated)
                )

    @staticmethod
    def _compose(
        plan: Plan, t: int, source: np.ndarray, crop: np.ndarray, drawn: np.ndarray, out: np.ndarray
    ) -> None:
        """Output frame ``t``, written into ``out``, from its source frame and Face2Vid's frame ``crop`` or,
        at full resolution, its hallucinated image ``drawn`` (H: what no frame shows, the mouth's inside), as
        ``renderer`` says.

        Why H and not the frame inside the lips: the shipped checkpoint's reference mask is about 1 there too
        (0.9997 on Grace Hopper's open mouth), so its frame fills the mouth with the reference's lips
        stretched open, while H draws the cavity and the teeth."""
        if plan.options.renderer == "paste":
            from talking_face.generation.paste_back import face_mask, paste_face

            mask = face_mask([plan.driving[t], plan.own[t]], plan.size)
            out[:] = paste_face(source, crop, plan.transforms[t], mask)
            return
        from talking_face.generation.full_resolution import (
            mouth_interior,
            newly_visible,
            render_frame,
            warp_field,
        )

        field = warp_field(plan.driving[t], plan.own[t], plan.size)
        inside, lips = mouth_interior(plan.driving[t], plan.size)
        inside = newly_visible(inside, plan.own[t], field)
        render_frame(source, plan.transforms[t], field, drawn, inside, lips, out)

    # --- the whole job --------------------------------------------------------------------------------

    def __call__(
        self,
        face: str | Path,
        audio: str | Path | None = None,
        text: str | None = None,
        *,
        progress: bool = False,
        **options,
    ) -> Result:
        """Generate a (short) video in memory; ``options`` as in ``prepare``."""
        plan = self.prepare(face, audio, text, progress=progress, **options)
        chunks = list(self.render(plan, progress))
        frames = np.concatenate([c.frames for c in chunks])
        crops = np.concatenate([c.crops for c in chunks])
        return Result(frames, crops, plan.speech.audio, timebase.SAMPLE_RATE, plan.fps, plan)

    def write(
        self,
        out: str | Path,
        face: str | Path,
        audio: str | Path | None = None,
        text: str | None = None,
        *,
        progress: bool = False,
        **options,
    ) -> Path:
        """Generate and stream to ``out`` (mp4, H.264 + AAC, atomic); ``options`` as in ``prepare``."""
        from talking_face.datamodules.media import write_video

        out = check_output(out, {"face": face, "audio": audio})
        plan = self.prepare(face, audio, text, progress=progress, **options)
        frames = (frame for chunk in self.render(plan, progress) for frame in chunk.frames)
        try:  # the user's own audio goes in as it came; the TTS's at the pipeline's rate
            speech = plan.speech.audio
            knobs = plan.options
            return write_video(
                out, _even_sized(frames), plan.fps, speech, audio_file=audio, crf=knobs.crf,
                preset=knobs.preset,
            )  # fmt: skip
        finally:
            plan.face.close()


def _status(message: str, ellipsis: bool = True) -> None:
    """One line on stderr for a step that shows no progress bar of its own (or a fact about the run)."""
    import sys

    print(f"{message}{'...' if ellipsis else ''}", file=sys.stderr, flush=True)


def _even_sized(frames) -> Iterator[np.ndarray]:
    """H.264 in yuv420p needs even sides: an odd side gets one replicated row or column."""
    for frame in frames:
        height, width = frame.shape[:2]
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        yield frame
