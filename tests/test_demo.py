"""``talking-face demo``: the Gradio app launched on localhost and driven through ``gradio_client``, as a
browser would (uploads, the ``/generate`` endpoint, errors shown as messages)."""

from __future__ import annotations

import pytest

TEXT = "bin blue at f two now"
pytestmark = pytest.mark.slow  # a Gradio server and a generated video: about 20 s on 2 cores


@pytest.fixture(scope="module")
def app_client(tiny_face2vid, tmp_path_factory):
    """The demo over a tiny random Face2Vid and the shipped stage 1, served on 127.0.0.1, and a client."""
    from gradio_client import Client

    from talking_face.generation.checkpoints import load_mouth_predictor, shipped_checkpoint
    from talking_face.generation.demo import build_app
    from talking_face.generation.pipeline import TalkingFacePipeline

    face2vid = tiny_face2vid(seed=0)
    pipeline = TalkingFacePipeline(
        load_mouth_predictor(shipped_checkpoint("landmarks")),
        face2vid.frame_rollout(),
    )
    app = build_app(pipeline)
    app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        assert app.local_url.startswith("http://127.0.0.1:")
        assert app.share_url is None and not app.analytics_enabled, "nothing leaves this machine"
        downloads = tmp_path_factory.mktemp("downloads")
        yield Client(app.local_url, verbose=False, download_files=str(downloads), analytics_enabled=False)
    finally:
        app.close()


def _grace_hopper():
    from talking_face.datamodules.faces.photos import packaged_photos

    return next(photo.file() for photo in packaged_photos() if photo.name == "grace_hopper")


def _ask(client, *, photo=None, text=""):
    """Call ``/generate`` as the page does: a photo, the text, the first voice, the default knobs."""
    from gradio_client import handle_file

    from talking_face.datamodules.tts import default_voices

    return client.predict(
        photo=None if photo is None else handle_file(str(photo)),
        clip=None,
        speech=None,
        text=text,
        voice=default_voices()[0].slug,
        head_motion=1.0,
        blinks=0.3,
        mouth_scale=1.0,
        api_name="/generate",
    )


def test_text_and_a_photo_give_a_playable_video_as_long_as_the_speech(app_client):
    import cv2

    from talking_face.datamodules import timebase
    from talking_face.datamodules.media import probe_video, read_video
    from talking_face.datamodules.tts import default_voices
    from talking_face.generation.speech_input import prepare_speech

    path = _ask(app_client, photo=_grace_hopper(), text=TEXT)
    info = probe_video(path)
    height, width = cv2.imread(str(_grace_hopper())).shape[:2]
    assert (info.width, info.height, info.fps, info.has_audio) == (width, height, timebase.FPS, True)
    expected = prepare_speech(text=TEXT, voice=default_voices()[0].slug).num_frames / timebase.FPS
    assert abs(info.duration - expected) <= 1 / timebase.FPS, (info.duration, expected)
    assert len(read_video(path)) == round(expected * timebase.FPS)


def test_bad_input_comes_back_as_its_message(app_client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="text is empty"):
        _ask(app_client, photo=_grace_hopper(), text="")  # an untouched text box, no speech
    with pytest.raises(AppError, match="Upload a face"):
        _ask(app_client, text=TEXT)
