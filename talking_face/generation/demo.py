"""``talking-face demo``: a small local web app over ``TalkingFacePipeline`` (Gradio).

Upload a face photo or clip, type text and/or upload speech, pick a voice and the motion knobs, watch the
video. It is the same pipeline as ``talking-face generate``, so the same inputs work and the same clear
errors come back (shown in the page). It stays on this machine: Gradio's analytics are off, no public link
unless ``share`` is asked for, nothing is fetched. Gradio is imported only when the app is built.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gradio as gr

    from talking_face.generation.pipeline import TalkingFacePipeline

__all__ = ["build_app", "demo"]

EXAMPLE_TEXT = "Bin blue at F two now."
"""The sentence offered beside each packaged photo (a line of the built-in corpus' grammar)."""


def _voice_choices() -> list[tuple[str, str]]:
    """(label, value) of the default TTS voices; the value is the voice's slug, which ``find_voice`` takes."""
    from talking_face.datamodules.tts import default_voices

    return [
        (f"{voice.name} ({voice.engine}, rate {voice.rate:g}, pitch {voice.pitch:g})", voice.slug)
        for voice in default_voices()
    ]


def _project_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """The warnings about the user's inputs (several faces, words spelled by g2p, text not matching the
    speech), not the libraries' own."""
    from talking_face.errors import InputWarning

    return [str(note.message) for note in caught if issubclass(note.category, InputWarning)]


def build_app(pipeline: TalkingFacePipeline) -> gr.Blocks:
    """The demo page over ``pipeline`` (not launched). Its one API endpoint, ``/generate``, takes
    ``photo, clip, speech, text, voice, head_motion, blinks, mouth_scale`` and returns the mp4."""
    import tempfile

    import gradio as gr

    from talking_face.datamodules.faces.photos import packaged_photos
    from talking_face.datamodules.media import MediaError
    from talking_face.generation.options import GenerationOptions

    results = tempfile.TemporaryDirectory(prefix="talking-face-demo-")  # removed when the app goes

    def generate(
        photo: str | None,
        clip: str | None,
        speech: str | None,
        text: str | None,
        voice: str,
        head_motion: float,
        blinks: float,
        mouth_scale: float,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio reads the default)
    ) -> str:
        import uuid

        if photo and clip:
            raise gr.Error("Give a face photo or a face video, not both: clear one of them.")
        face = photo or clip
        if not face:
            raise gr.Error("Upload a face photo or a face video first.")
        if speech and not (text or "").strip():
            text = None  # speech alone; an empty box with nothing else is the pipeline's error to give
        out = Path(results.name) / f"{uuid.uuid4().hex}.mp4"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pipeline.write(
                    out, face, speech, text, voice=voice, head_motion=head_motion, blinks=blinks,
                    mouth_scale=mouth_scale, progress=True,
                )  # fmt: skip
            except (ValueError, OSError, MediaError) as error:  # bad input: its message, not a traceback
                raise gr.Error(str(error), print_exception=False) from error
        for note in _project_notes(caught):
            gr.Warning(note)
        return str(out)

    voices = _voice_choices()
    examples = [[str(packaged.file()), EXAMPLE_TEXT] for packaged in packaged_photos()]
    with gr.Blocks(title="talking-face", analytics_enabled=False) as app:
        gr.Markdown(
            "# talking-face\nA face photo or video + text and/or speech → a lip-synced video, on this "
            "machine. Text alone is spoken by the built-in voices; text with speech is aligned to it."
        )
        with gr.Row():
            with gr.Column():
                with gr.Tab("Photo"):
                    photo = gr.Image(label="Face photo", type="filepath", image_mode=None)
                with gr.Tab("Video"):
                    clip = gr.Video(label="Face video (its mouth is replaced)", sources=["upload"])
                text = gr.Textbox(label="Text", placeholder="What the face says", lines=2)
                speech = gr.Audio(label="Speech (optional)", type="filepath")
                voice = gr.Dropdown(
                    voices,
                    value=voices[0][1],
                    allow_custom_value=True,  # any voice `generate --voice` takes (en-us+m3, ...)
                    label="Voice (for text without speech)",
                )
                head_motion = gr.Slider(
                    0,
                    3,
                    value=GenerationOptions.head_motion,
                    step=0.1,
                    label="Head motion (photo; 0 = still)",
                )
                blinks = gr.Slider(
                    0, 1, value=GenerationOptions.blinks, step=0.05, label="Blinks per second (photo)"
                )
                mouth_scale = gr.Slider(
                    0, 2, value=GenerationOptions.mouth_scale, step=0.05, label="Mouth motion scale"
                )
                button = gr.Button("Generate", variant="primary")
            with gr.Column():
                video = gr.Video(label="Result", autoplay=True)
        gr.Examples(
            examples, inputs=[photo, text], label="Packaged photos (Grace Hopper was never trained on)"
        )
        button.click(
            generate,
            [photo, clip, speech, text, voice, head_motion, blinks, mouth_scale],
            video,
            api_name="generate",
            concurrency_limit=1,  # one pipeline: one video at a time, the others queue
        )
    return app


def demo(
    host: str = "127.0.0.1",
    port: int = 7860,
    landmarks_checkpoint: str | None = None,
    face2vid_checkpoint: str | None = None,
    device: str = "cpu",
    share: bool = False,
    open_browser: bool = False,
) -> None:
    """Serve the talking-face web app at http://HOST:PORT until Ctrl+C.

    Args:
        host: address to listen on (127.0.0.1: this machine only; 0.0.0.0: the local network too).
        port: port to listen on.
        landmarks_checkpoint: stage 1 checkpoint (default: the one shipped with the package).
        face2vid_checkpoint: stage 2 checkpoint (default: the one shipped with the package).
        device: cpu, cuda, cuda:1, ...
        share: also publish a temporary public gradio.live link (traffic goes through Gradio's servers).
        open_browser: open the page in the default web browser.
    """
    from talking_face.generation.pipeline import TalkingFacePipeline

    pipeline = TalkingFacePipeline.from_checkpoints(landmarks_checkpoint, face2vid_checkpoint, device)
    app = build_app(pipeline)
    # show_error: an unexpected failure shows its message in the page too (the app is the user's own)
    app.launch(server_name=host, server_port=port, share=share, inbrowser=open_browser, show_error=True)
