"""The built-in synthetic corpus: GRID sentences spoken by real TTS voices, on real animated faces.

Written in GRID's layout, so the same reader and preprocessing run on it as on the real corpus:

    <root>/sN/video/<id>.mpg        360x288, 25 fps, MPEG-1 with the speech muxed in
    <root>/sN/audio/<id>.wav        the speech at the voice's native sample rate
    <root>/sN/align/<id>.align      word timings, GRID format (1/25000 s)
    <root>/sN/phonemes/<id>.json    the TTS engine's own phoneme timings
    <root>/sN/landmarks/<id>.npy    ground-truth 68 landmarks [T, 68, 2] in video pixels
    <root>/speakers.json            who each speaker is: photo, voice and articulation style

Each speaker pairs a face (a real photo shipped in a package, possibly mirrored) with a voice (engine,
rate, pitch) and an articulation style drawn from the seed (mouth scale, coarticulation, anticipation,
idiosyncratic visemes), so no phoneme -> landmark lookup table reproduces the mouths. The same seed
writes the same corpus; a rerun skips utterances whose video already exists (the video is written last,
atomically).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from talking_face.datamodules import timebase
from talking_face.datamodules.atomic import atomic_path, write_json
from talking_face.datamodules.corpora.utterance import write_grid_align

GRID_GRAMMAR: tuple[tuple[str, ...], ...] = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("abcdefghijklmnopqrstuvxyz"),  # GRID has no "w"
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)
_DIGITS = {word: str(i) for i, word in enumerate(GRID_GRAMMAR[4])}


def grid_sentence(rng: np.random.Generator) -> tuple[str, str]:
    """A random GRID sentence and its GRID-style id, e.g. ("bin blue at f two now", "bbaf2n")."""
    words = [slot[rng.integers(len(slot))] for slot in GRID_GRAMMAR]
    command, colour, preposition, letter, digit, adverb = words
    return " ".join(words), f"{command[0]}{colour[0]}{preposition[0]}{letter}{_DIGITS[digit]}{adverb[0]}"


@dataclass(frozen=True)
class SpeakerSpec:
    """One synthetic speaker: a face, a voice and a way of articulating."""

    name: str
    photo: str
    mirrored: bool
    voice: object  # talking_face.datamodules.tts.Voice
    style: object  # talking_face.datamodules.synthetic.visemes.SpeakerStyle


def make_speakers(count: int, seed: int = 0) -> list[SpeakerSpec]:
    """``count`` speakers cycling through faces (photos x mirror) and voices, styles drawn from ``seed``.

    Faces and voices advance together, so consecutive speakers differ in both.
    """
    from talking_face.datamodules.faces.photos import packaged_photos
    from talking_face.datamodules.synthetic.visemes import SpeakerStyle
    from talking_face.datamodules.tts import default_voices

    faces = [(photo.name, mirrored) for mirrored in (False, True) for photo in packaged_photos()]
    voices = default_voices()
    rng = np.random.default_rng(seed)
    return [
        SpeakerSpec(f"s{i + 1}", *faces[i % len(faces)], voices[i % len(voices)], SpeakerStyle.sample(rng))
        for i in range(count)
    ]


def synthesize_corpus(
    out: str | Path = "outputs/corpus",
    speakers: int = 4,
    utterances: int = 10,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write the built-in corpus: ``speakers`` x ``utterances`` GRID sentences, deterministic in ``seed``.

    Args:
        out: the corpus root (GRID layout).
        speakers: number of speakers (faces x voices x styles).
        utterances: sentences per speaker.
        seed: everything random (sentences, styles, head motion, blinks) follows from it.
        progress: show a progress bar.
    """
    from talking_face.datamodules.faces.detector import make_detector
    from talking_face.datamodules.faces.photos import load_photo, packaged_photos
    from talking_face.datamodules.media import write_video
    from talking_face.datamodules.synthetic.face_animator import FaceAnimator

    out = Path(out)
    specs = make_speakers(speakers, seed)
    write_json(out / "speakers.json", [_describe(spec) for spec in specs])
    photos = {photo.name: photo for photo in packaged_photos()}
    detector = make_detector("dlib")
    jobs = [(spec, u) for spec, u in itertools.product(specs, range(utterances))]
    animators: dict[str, FaceAnimator] = {}
    for spec, index in tqdm(jobs, desc="synth", unit="utt", disable=not progress):
        rng = np.random.default_rng([seed, int(spec.name[1:]), index])
        text, utterance_id = grid_sentence(rng)
        utterance_id = f"{utterance_id}{index:03d}"  # unique even when two draws give the same sentence
        folder = out / spec.name
        video_path = folder / "video" / f"{utterance_id}.mpg"
        if video_path.exists():
            continue
        if spec.name not in animators:
            image = load_photo(photos[spec.photo], mirrored=spec.mirrored)
            faces = detector.detect(image)
            if not faces:
                raise RuntimeError(f"no face found in packaged photo {spec.photo} (mirrored={spec.mirrored})")
            animators[spec.name] = FaceAnimator(image, faces[0].landmarks)
        speech = _speak(text, spec.voice)
        num_frames = timebase.num_frames_for(round(speech.duration * timebase.SAMPLE_RATE))
        animation = animators[spec.name].render(speech.phonemes, num_frames, spec.style, rng)
        _write_utterance(folder, utterance_id, speech, animation.landmarks)
        write_video(video_path, animation.frames, timebase.FPS, _resample(speech), timebase.SAMPLE_RATE)
    if progress:
        tqdm.write(f"built-in corpus: {speakers} speakers x {utterances} utterances in {out} (seed {seed})")
    return out


def _speak(text: str, voice):
    """Synthesise a GRID sentence; espeak reads a lone letter "a" as the article, so it is told "ay"."""
    from dataclasses import replace

    from talking_face.datamodules.segments import Segment
    from talking_face.datamodules.tts import synthesize

    words = text.split()
    if voice.engine != "espeak" or words[3] != "a":
        return synthesize(text, voice)
    speech = synthesize(" ".join([*words[:3], "ay", *words[4:]]), voice)
    relabelled = [Segment("a", w.start, w.end) if w.label == "ay" else w for w in speech.words]
    return replace(speech, words=relabelled)


def _resample(speech) -> np.ndarray:
    import librosa

    return librosa.resample(speech.audio, orig_sr=speech.sample_rate, target_sr=timebase.SAMPLE_RATE)


def _write_utterance(folder: Path, utterance_id: str, speech, landmarks: np.ndarray) -> None:
    """Everything but the video, each file atomic."""
    import soundfile

    for sub in ("audio", "align", "phonemes", "landmarks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "audio" / f"{utterance_id}.wav") as tmp:
        soundfile.write(tmp, speech.audio, speech.sample_rate)
    with atomic_path(folder / "align" / f"{utterance_id}.align") as tmp:
        write_grid_align(tmp, speech.words)
    write_json(folder / "phonemes" / f"{utterance_id}.json", [s.to_dict() for s in speech.phonemes])
    with atomic_path(folder / "landmarks" / f"{utterance_id}.npy") as tmp:
        np.save(tmp, landmarks.astype(np.float32))


def _describe(spec: SpeakerSpec) -> dict:
    return json.loads(json.dumps(asdict(spec), default=str))
