"""festival as a subprocess (see ``datamodules.tts``)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talking_face.datamodules.tts.speech import (
    _RADIO_TO_ARPABET,
    Speech,
    Voice,
    _ascii_text,
    _speech_from_ends,
)

_FESTIVAL_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
_FESTIVAL_TIMEOUT_S = 120.0

_PHONE_SETS = {"radio": _RADIO_TO_ARPABET}


@dataclass(frozen=True)
class _FestivalVoice:
    name: str
    phone_set: str
    pitch_control: bool  # linear-regression F0 targets we can rescale (the HTS voice makes its own F0)


def _run_festival(script: str, workdir: Path, what: str) -> str:
    """Run a Scheme ``script`` with ``festival --batch`` in ``workdir``; its stdout, which must end "DONE"."""
    exe = shutil.which("festival")
    if exe is None:
        raise ValueError("festival is not installed (Debian: apt-get install festival)")
    path = workdir / "script.scm"
    path.write_text(script + '(format t "DONE\\n")\n', encoding="utf-8")
    # cwd: the HTS module writes scratch files into the working directory
    done = subprocess.run(
        [exe, "--batch", str(path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=_FESTIVAL_TIMEOUT_S,
    )
    if done.returncode != 0 or not done.stdout.rstrip().endswith("DONE"):
        raise RuntimeError(
            f"festival failed on {what} (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-600:]}"
        )
    return done.stdout


@functools.cache
def _festival_voice_info() -> dict[str, _FestivalVoice]:
    """Installed festival voices whose phone set we can map (one festival run, about 1 s, once)."""
    if shutil.which("festival") is None:
        return {}
    script = """(mapcar (lambda (v)
  (unwind-protect
    (begin
      (voice.select v)
      (format t "VOICE\\t%s\\t%l\\t%s\\t%l\\n" v (PhoneSet.description '(name))
              (Parameter.get 'Synth_Method) (assoc 'target_f0_mean int_lr_params)))
    (format t "BROKEN\\t%s\\n" v)))
  (voice.list))
"""
    with tempfile.TemporaryDirectory(prefix="festival-") as workdir:
        out = _run_festival(script, Path(workdir), "listing its voices")
    voices = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if fields[0] != "VOICE" or len(fields) != 5:
            continue
        match = re.search(r"\(name (\S+?)\)", fields[2])
        if match and match.group(1) in _PHONE_SETS:
            pitch = fields[3] != "HTS" and fields[4] not in ("nil", "()")
            voices[fields[1]] = _FestivalVoice(fields[1], match.group(1), pitch)
    return voices


def _festival_voices() -> list[str]:
    return sorted(_festival_voice_info())


def _festival_voice(voice: Voice) -> _FestivalVoice:
    info = _festival_voice_info().get(voice.name)
    if info is None:
        package = _FESTIVAL_PACKAGES.get(voice.name)
        hint = f" (Debian: apt-get install festival {package})" if package else ""
        raise ValueError(
            f"no festival voice {voice.name!r} on this machine{hint}; installed and usable: "
            f"{_festival_voices()}"
        )
    if not info.pitch_control and (voice.pitch != 1.0 or voice.pitch_range != 1.0):
        raise ValueError(f"festival voice {voice.name!r} makes its own F0; use pitch=1.0 and pitch_range=1.0")
    return info


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_synthesize(text: str, voice: Voice) -> Speech:
    info = _festival_voice(voice)
    text = _ascii_text(text, "festival")
    pitch = ""
    if voice.pitch != 1.0 or voice.pitch_range != 1.0:  # rescale the F0 targets' mean and spread
        pitch = f"""(set! int_lr_params (list
  (list 'target_f0_mean (* {voice.pitch} (cadr (assoc 'target_f0_mean int_lr_params))))
  (list 'target_f0_std (* {voice.pitch * voice.pitch_range} (cadr (assoc 'target_f0_std int_lr_params))))
  (assoc 'model_f0_mean int_lr_params) (assoc 'model_f0_std int_lr_params)))
"""
    with tempfile.TemporaryDirectory(prefix="festival-") as workdir:
        wav = Path(workdir) / "speech.wav"
        script = f"""(voice.select '{info.name})
(if (eq? (Parameter.get 'Synth_Method) 'HTS)
  (set! hts_engine_params (cons (list "-r" {voice.rate}) hts_engine_params))
  (let ((stretch (Parameter.get 'Duration_Stretch)))
    (Parameter.set 'Duration_Stretch (/ (if stretch stretch 1.0) {voice.rate}))))
{pitch}(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))
(utt.save.wave utt {_scheme_string(str(wav))} 'riff)
(mapcar (lambda (s) (format t "SEG\\t%s\\t%f\\n" (item.name s) (item.feat s "end")))
  (utt.relation.items utt 'Segment))
(mapcar (lambda (w) (format t "WORD\\t%s\\t%f\\t%f\\n" (item.name w) (item.feat w "word_start")
  (item.feat w "word_end"))) (utt.relation.items utt 'Word))
"""
        out = _run_festival(script, Path(workdir), f"{text!r} with voice {voice.name!r}")
        audio, sample_rate = _read_wav(wav)
    rows = [line.split("\t") for line in out.splitlines()]
    ends = [(row[1], float(row[2])) for row in rows if row[0] == "SEG" and len(row) == 3]
    words = [(row[1], float(row[2]), float(row[3])) for row in rows if row[0] == "WORD" and len(row) == 4]
    table = _PHONE_SETS[info.phone_set]
    return _speech_from_ends(audio, sample_rate, ends, words, table, "festival", f"{text!r} ({voice.name})")


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """float32 [N] in [-1, 1] and the rate of a 16-bit mono RIFF file."""
    with wave.open(str(path), "rb") as file:
        if file.getsampwidth() != 2 or file.getnchannels() != 1:
            raise RuntimeError(f"festival wrote {path} as other than 16-bit mono")
        data = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
        return data.astype(np.float32) / 32768.0, file.getframerate()
