"""Bad input to `talking-face generate`: a clear error (or warning) naming the file and the problem.

Faces (none, several, too small, not an image or a video), speech (empty text, words outside the dictionary,
silent, zero-length or unreadable audio, text that does not match the speech) and checkpoints (wrong stage,
not a checkpoint, a newer format, weights of neither stage). The output path and a failure mid-write are in
``test_generation.py``, beside a pipeline.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from generation_media import (
    OTHER_SENTENCE,
    SENTENCE,
    framed,
    photo_file,
    save_checkpoint,
    spoken,
    write_clip,
    write_speech,
)

from talking_face.datamodules.media import MediaError
from talking_face.errors import UsageError
from talking_face.generation.checkpoints import (
    FORMAT_VERSION,
    CheckpointError,
    export_checkpoint,
    load_frame_rollout,
    load_mouth_predictor,
    load_stage,
    shipped_checkpoint,
)
from talking_face.generation.face_input import FaceError, load_face
from talking_face.generation.speech_input import find_voice, prepare_speech


def _save_image(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


# --- faces --------------------------------------------------------------------------------------------------


def test_no_face_in_the_image(tmp_path):
    import skimage.data

    path = _save_image(tmp_path / "coffee.png", skimage.data.coffee())
    with pytest.raises(FaceError, match=r"coffee\.png: no face found"):
        load_face(path, 10)


def test_no_face_in_the_clip(tmp_path):
    grey = np.full_like(framed(), 90)
    clip = write_clip(tmp_path / "empty.mp4", 12, fps=25, faceless=dict.fromkeys(range(12), grey))
    with pytest.raises(FaceError, match=r"empty\.mp4: no face found"):
        load_face(clip, 12)


def test_several_faces_take_the_largest_with_a_warning_and_face_index_picks(tmp_path):
    import cv2

    small = cv2.resize(framed("astronaut"), (270, 216), interpolation=cv2.INTER_AREA)  # its face 3/4 as wide
    small = np.pad(small, ((36, 36), (0, 0), (0, 0)), mode="edge")
    path = _save_image(tmp_path / "two.png", np.concatenate([small, framed()], axis=1))  # Grace on the right
    with pytest.warns(UserWarning, match=r"two\.png: 2 faces found, animating the largest"):
        largest = load_face(path, 1)
    assert largest.landmarks[0, :, 0].min() > small.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice is not warned about
        other = load_face(path, 1, face_index=1)
    assert other.landmarks[0, :, 0].max() < small.shape[1]
    with pytest.raises(FaceError, match=r"two\.png: face_index 2 is out of range: 2 face\(s\) found"):
        load_face(path, 1, face_index=2)


def test_a_face_too_small(tmp_path):
    import cv2

    image = np.asarray(framed())
    tiny = cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)  # a face ~35 px wide
    path = _save_image(tmp_path / "far.png", tiny)
    with pytest.raises(FaceError, match=r"far\.png: the face is too small \(\d+ px wide"):
        load_face(path, 1)


@pytest.mark.parametrize("name", ["notes.jpg", "notes.mp4"])
def test_a_file_that_is_not_an_image_or_a_video(tmp_path, name):
    path = tmp_path / name
    path.write_text("this is a shopping list, not a face\n")
    with pytest.raises(MediaError, match=rf"{name}: not an image or a video"):
        load_face(path, 1)
    with pytest.raises(MediaError, match=r"nowhere\.png: no such file"):
        load_face(tmp_path / "nowhere.png", 1)


# --- speech -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_or_whitespace_text(text):
    with pytest.raises(ValueError, match="the text is empty"):
        prepare_speech(text=text)


def test_nothing_to_say():
    with pytest.raises(ValueError, match="nothing to say"):
        prepare_speech()


def test_words_outside_the_dictionary_are_spelled_warned_and_noted():
    with pytest.warns(UserWarning, match="zorbleflax"):
        speech = prepare_speech(text="bin zorbleflax now")
    assert speech.mode == "text" and any("zorbleflax" in note for note in speech.notes)
    assert speech.phoneme_ids is not None and len(speech.phoneme_ids) == speech.num_frames


def test_unknown_voice_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown voice 'nobody'; try one of"):
        find_voice("nobody")


@pytest.mark.parametrize(
    ("name", "write", "problem"),
    [
        (
            "silent.wav",
            lambda p: soundfile.write(p, np.zeros(16_000, np.float32), 16_000),
            "the speech is silent",
        ),
        ("empty.wav", lambda p: soundfile.write(p, np.zeros(0, np.float32), 16_000), "zero-length audio"),
        ("broken.wav", lambda p: p.write_bytes(b"RIFF\x00\x00not a wave at all"), "audio cannot be decoded"),
        ("missing.wav", lambda p: None, "no such file"),
    ],
)
def test_unusable_audio_names_the_file(tmp_path, name, write, problem):
    path = tmp_path / name
    write(path)
    with pytest.raises(MediaError, match=rf"{name}: (.* )?{problem}"):
        prepare_speech(path)


def test_text_that_does_not_match_the_speech_warns_and_falls_back_to_audio(tmp_path):
    audio = write_speech(tmp_path / "said.wav", spoken(SENTENCE))
    matching = prepare_speech(audio, SENTENCE)
    assert matching.mode == "both" and matching.phoneme_ids is not None and not matching.notes
    with pytest.warns(UserWarning, match=r"said\.wav: the text does not match the speech"):
        other = prepare_speech(audio, OTHER_SENTENCE)
    assert other.mode == "audio" and other.phoneme_ids is None
    assert other.num_frames == matching.num_frames and "does not match" in other.notes[-1]


def test_text_only_frames_cover_every_resampled_sample(monkeypatch):
    """A 32 kHz voice (festival's HTS) speaking 1280 k + 1 samples: 16 kHz speech of 640 k + 1 samples (the
    resampler rounds up) needs k + 1 frames, though the engine's duration rounds to 640 k samples."""
    from talking_face.datamodules import tts
    from talking_face.datamodules.segments import Segment

    samples = 1280 * 30 + 1
    fake = tts.Speech(np.full(samples, 0.1, np.float32), 32_000, [Segment("B", 0.0, samples / 32_000)], [])
    monkeypatch.setattr(tts, "synthesize", lambda text, voice: fake)
    speech = prepare_speech(text="bin")
    assert speech.audio.size == 640 * 30 + 1
    assert speech.num_frames == 31 == len(speech.phoneme_ids)


# --- checkpoints --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face2vid_checkpoint(tiny_face2vid, tmp_path_factory) -> Path:
    return save_checkpoint(tiny_face2vid(seed=0), tmp_path_factory.mktemp("checkpoints") / "face2vid.ckpt")


def test_each_stage_loads_and_the_wrong_stage_is_refused(face2vid_checkpoint):
    landmarks = shipped_checkpoint("landmarks")
    assert type(load_stage(landmarks, "landmarks")).__name__ == "LandmarkModule"
    assert type(load_stage(face2vid_checkpoint, "face2vid")).__name__ == "Face2VidModule"
    with pytest.raises(CheckpointError, match=r"landmarks\.ckpt: is a landmarks checkpoint, but a face2vid"):
        load_stage(landmarks, "face2vid")
    with pytest.raises(CheckpointError, match=r"face2vid\.ckpt: is a face2vid checkpoint, but a landmarks"):
        load_stage(face2vid_checkpoint, "landmarks")


def test_inference_loads_only_the_networks_and_they_are_the_modules(face2vid_checkpoint):
    """``generate`` loads networks, not GAN modules: the same weights, none of the critics."""
    landmarks = shipped_checkpoint("landmarks")
    mouth, module = load_mouth_predictor(landmarks), load_stage(landmarks, "landmarks")
    reference = torch.zeros(1, 20, 2)
    audio = torch.randn(1, 4 * 30, 80)
    expected = module.predict(mouth_reference=reference, audio_features=audio).mouth
    torch.testing.assert_close(mouth.predict(mouth_reference=reference, audio_features=audio).mouth, expected)
    rollout, face2vid = load_frame_rollout(face2vid_checkpoint), load_stage(face2vid_checkpoint, "face2vid")
    assert rollout.generator.state_dict().keys() == face2vid.generator.state_dict().keys()
    for name, value in rollout.generator.state_dict().items():
        assert torch.equal(value, face2vid.generator.state_dict()[name]), name
    hp = face2vid.hparams
    assert (rollout.size, rollout.sketch_sigma) == (hp.image_size, hp.sketch_sigma)
    with pytest.raises(CheckpointError, match=r"face2vid\.ckpt: is a face2vid checkpoint, but a landmarks"):
        load_mouth_predictor(face2vid_checkpoint)
    with pytest.raises(CheckpointError, match=r"landmarks\.ckpt: is a landmarks checkpoint, but a face2vid"):
        load_frame_rollout(landmarks)


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    text = tmp_path / "readme.ckpt"
    text.write_text("not weights\n")
    with pytest.raises(CheckpointError, match=r"readme\.ckpt: not a PyTorch checkpoint"):
        load_stage(text, "face2vid")
    plain = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), plain)
    with pytest.raises(CheckpointError, match=r"tensor\.ckpt: not a Lightning checkpoint"):
        load_stage(plain, "face2vid")
    with pytest.raises(CheckpointError, match=r"absent\.ckpt: no such checkpoint file"):
        load_stage(tmp_path / "absent.ckpt", "face2vid")


def test_weights_of_neither_stage(tmp_path):
    path = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": {"backbone.weight": torch.zeros(2)}, "hyper_parameters": {}}, path)
    with pytest.raises(CheckpointError, match=r"classifier\.ckpt: holds the weights of neither stage"):
        load_stage(path, "landmarks")


def test_a_newer_format_is_refused_and_an_export_loads(face2vid_checkpoint, tmp_path):
    exported = export_checkpoint(face2vid_checkpoint, tmp_path / "shipped.ckpt", card={"data": "none"})
    assert torch.load(exported, weights_only=False)["talking_face"]["stage"] == "face2vid"
    model = load_stage(exported, "face2vid")
    original = load_stage(face2vid_checkpoint, "face2vid")
    for (name, value), expected in zip(
        model.state_dict().items(), original.state_dict().values(), strict=True
    ):
        assert torch.equal(value, expected), name
    checkpoint = torch.load(exported, weights_only=False)
    checkpoint["talking_face"]["format_version"] = FORMAT_VERSION + 1
    future = tmp_path / "future.ckpt"
    torch.save(checkpoint, future)
    with pytest.raises(
        CheckpointError, match=rf"future\.ckpt: checkpoint format {FORMAT_VERSION + 1} is newer"
    ):
        load_stage(future, "face2vid")


def test_generate_refuses_a_size_its_checkpoint_does_not_make(face2vid_checkpoint, tmp_path):
    from talking_face.generation.generate import generate

    with pytest.raises(
        UsageError, match="--size: 256 asked for, but the Face2Vid checkpoint makes 64-px crops"
    ):
        generate(
            str(photo_file()),
            str(tmp_path / "out.mp4"),
            text=SENTENCE,
            face2vid_checkpoint=str(face2vid_checkpoint),
            size=256,
        )
    assert list(tmp_path.iterdir()) == []


def test_audio_that_ends_early_is_warned_about_and_used(tmp_path):
    import subprocess

    import imageio_ffmpeg

    from talking_face.datamodules.media import load_audio
    from talking_face.errors import InputWarning

    whole = tmp_path / "speech.mp3"
    wav = write_speech(tmp_path / "speech.wav", spoken())
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(wav), str(whole)], check=True)
    data = whole.read_bytes()
    half = len(data) // 2
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[:half] + bytes(300) + data[half + 300 : len(data) * 7 // 10])  # damaged, then cut
    with pytest.warns(InputWarning, match=r"cut\.mp3: the audio is damaged or ends early"):
        audio = load_audio(cut)
    assert 0 < audio.size < load_audio(whole).size
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole file decodes without a word
        load_audio(whole)


def test_a_clip_too_large_for_the_disk_is_refused_before_decoding(tmp_path, monkeypatch):
    """Its frames are stored on disk while it plays: a full disk must be a clear message, not a crash."""
    import shutil

    clip = write_clip(tmp_path / "clip.mp4", 12, fps=25)
    need = 12 * framed().nbytes  # every frame of the clip, as decoded
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=need // 2))
    refused = r"clip\.mp4: 0\.5 s at 25 fps and 360x288 needs .* GB free: give --max_side or --fps"
    with pytest.raises(MediaError, match=refused):
        load_face(clip, 10.0)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=2 * need))
    assert len(load_face(clip, 10.0)) == 12


def test_a_clip_whose_stated_frame_rate_is_unusable_plays_at_25_fps(tmp_path, monkeypatch):
    """A variable-rate stream can state its timebase (1000, 90000) as its rate: it would take forever."""
    from dataclasses import replace

    from talking_face.datamodules import media

    clip = write_clip(tmp_path / "clip.mp4", 12, fps=30)
    probe = media.probe_video
    monkeypatch.setattr(media, "probe_video", lambda path: replace(probe(path), fps=90000.0))
    with pytest.warns(UserWarning, match=r"clip\.mp4: its frame rate reads 90000 fps; playing it at 25 fps"):
        track = load_face(clip, 1.0, fps=None)  # its own rate, as generate asks
    assert track.fps == 25 and len(track) == 10  # 0.4 s of clip at 25 fps
    monkeypatch.undo()
    assert load_face(clip, 1.0, fps=None).fps == 30
