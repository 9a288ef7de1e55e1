"""Flite (CMU's small statistical-parametric synthesiser) as an optional text-to-speech front end.

Flite is not a Python package: it is the ``flite`` program of the Debian/Ubuntu package of the
same name (``apt-get install flite``), whose built-in English voices need no download. Its
speech is more natural than espeak-ng's formant synthesis, and what the conversion decoder was
trained on (natural speech) is closer to it, so clones from it keep more words (measured in
docs/benchmarks/cloning.md). ``voicefake.api.clone`` uses it when asked (``engine="flite"``)
and, by default (``engine="auto"``), for English text when the program is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from voicefake.audio.io import load_audio

DEFAULT_VOICE = "rms"
SAMPLE_RATE = 16000
# Per voice, the ``rate`` at which flite's own pace (duration stretch 1) matches espeak-ng's
# pace at the same ``rate``, so that one rate means one pace for both engines (measured on the
# cloning benchmark's four sentences: espeak-ng at 150 says 179 words a minute, silences included).
PACE = {"rms": 137.0, "slt": 150.0, "awb": 161.0, "kal16": 168.0, "kal": 166.0}


class FliteError(RuntimeError):
    """flite is missing or refused the input."""


def available() -> bool:
    """Is the ``flite`` program on the PATH?"""
    return shutil.which("flite") is not None


def require() -> None:
    """Raises :class:`FliteError` with what to do when the ``flite`` program is missing."""
    if not available():
        raise FliteError("the flite engine needs the flite program: apt-get install flite "
                         "(or use the espeak-ng engine)")


def speak(text: str, voice: str = DEFAULT_VOICE, rate: int = 150) -> tuple[np.ndarray, int]:
    """Renders ``text`` with flite: ``(float32 waveform, 16000)``.

    Args:
        text: English text (one or more sentences).
        voice: a built-in flite voice: rms, slt, awb, kal16 or kal.
        rate: speaking rate in words per minute (80-450), set through flite's duration stretch.
    """
    require()
    if voice not in PACE:
        raise FliteError(f"flite has no built-in voice {voice!r} (choose one of {', '.join(PACE)})")
    if not 80 <= rate <= 450:
        raise FliteError(f"rate must be 80-450 words per minute (got {rate})")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "speech.wav"
        done = subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={PACE[voice] / rate:.3f}",
                               "-t", text, "-o", str(out)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not out.exists():
            raise FliteError(f"flite failed on the text: {done.stderr.strip()[-300:]}")
        return load_audio(out, SAMPLE_RATE), SAMPLE_RATE
