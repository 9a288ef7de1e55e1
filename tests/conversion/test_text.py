"""Text front end: sentence splitting, espeak-ng rendering, and the WER metric."""

from __future__ import annotations

import numpy as np
import pytest

from voicefake.metrics import (
    normalize_words,
    spell_number,
    spell_numbers,
    word_error_rate,
    word_errors,
)
from voicefake.synthesis import flite
from voicefake.synthesis.espeak import EspeakError, speak
from voicefake.synthesis.text import MAX_CHARS, clean_text, split_sentences


def test_sentences_split_at_ends_not_at_abbreviations() -> None:
    assert split_sentences("Hello there.  This is Mr. Smith! Wire it today?") == [
        "Hello there.", "This is Mr. Smith!", "Wire it today?"]


def test_long_sentences_are_cut_at_commas_within_the_limit() -> None:
    pieces = split_sentences("alpha beta, " * 40, max_chars=60)
    assert len(pieces) > 1 and all(len(p) <= 60 for p in pieces)
    assert " ".join(pieces).split() == ("alpha beta, " * 40).split()


@pytest.mark.parametrize("bad, message", [("", "no words"), ("  ...  ", "no words"),
                                          ("a" * (MAX_CHARS + 1), "limit")])
def test_bad_text_is_one_clear_error(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clean_text(bad)


def test_espeak_speaks_in_process() -> None:
    short, rate = speak("Yes.")
    long, _ = speak("Please wire forty thousand dollars to the new supplier today.")
    assert rate == 22050
    assert np.abs(long).max() > 0.1 and np.isfinite(long).all()
    assert len(long) > 3 * len(short)  # longer text, longer speech


def test_espeak_unknown_voice_is_an_error() -> None:
    with pytest.raises(EspeakError, match="no voice"):
        speak("hello", voice="xx-not-a-voice")


needs_flite = pytest.mark.skipif(not flite.available(), reason="the flite program is not installed (apt-get install flite)")


@needs_flite
def test_flite_speaks_and_rate_sets_the_pace() -> None:
    text = "Please wire forty thousand dollars to the new supplier today."
    normal, rate = flite.speak(text)
    slow, _ = flite.speak(text, rate=100)
    assert rate == 16000 and np.abs(normal).max() > 0.05 and np.isfinite(normal).all()
    assert 2.0 < len(normal) / rate < 6.0
    assert 1.3 < len(slow) / len(normal) < 1.7  # 150 -> 100 words a minute: 1.5x longer


@needs_flite
@pytest.mark.parametrize("kwargs, message", [({"voice": "nobody"}, "no built-in voice"), ({"rate": 20}, "80-450")])
def test_flite_bad_settings_are_one_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(flite.FliteError, match=message):
        flite.speak("hello", **kwargs)


def test_flite_missing_program_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flite.shutil, "which", lambda name: None)
    with pytest.raises(flite.FliteError, match="apt-get install flite"):
        flite.speak("hello")


def test_word_error_rate() -> None:
    assert normalize_words("It's 40 dollars, OK?") == ["its", "forty", "dollars", "ok"]
    assert word_errors("the cat sat", "the cat sat") == (0, 3)
    assert word_errors("the cat sat", "the bat sat down") == (2, 3)
    assert word_error_rate(["a b", "c d e"], ["a b", "c e"]) == pytest.approx(1 / 5)
    with pytest.raises(ValueError):
        word_error_rate(["a"], [])


@pytest.mark.parametrize(("n", "words"), [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (105, "one hundred five"),
    (40000, "forty thousand"), (1_250_300, "one million two hundred fifty thousand three hundred"),
    (2_000_000_001, "two billion one"),
])
def test_spell_number(n: int, words: str) -> None:
    assert " ".join(spell_number(n)) == words


def test_numbers_count_as_words_in_the_wer() -> None:
    # an ASR writes digits and signs where a script spells the words out; neither is an error
    assert spell_numbers("wire $40,000 by the 21st, 3.5% more") == (
        "wire forty thousand dollars by the twenty first, three point five percent more")
    assert word_errors("I need you to wire forty thousand dollars today",
                       "I need you to wire $40,000 today.") == (0, 9)
    assert word_errors("the twelfth of may", "the 12th of May") == (0, 4)
    assert word_errors("forty dollars", "$14") == (1, 2)  # a wrong number is still wrong
    with pytest.raises(ValueError):
        spell_number(-1)
