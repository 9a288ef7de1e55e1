"""Text clean-up and sentence splitting for text to speech."""

from __future__ import annotations

import re

MAX_CHARS = 5000
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_CLAUSE_BREAK = re.compile(r"(?<=[,])\s+")
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "etc.", "e.g.", "i.e.", "inc.", "ltd.", "jr.", "sr.", "no."}


def _sentences(text: str) -> list[str]:
    """Splits after . ! ? ; : followed by a space, except after common abbreviations."""
    merged: list[str] = []
    for piece in _SENTENCE_END.split(text):
        if merged and merged[-1].split(" ")[-1].lower() in _ABBREVIATIONS:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


def clean_text(text: str) -> str:
    """Collapses whitespace; raises ValueError for empty or over-long text."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    text = " ".join(text.split())
    if not any(ch.isalnum() for ch in text):
        raise ValueError("the text has no words to speak; give at least one word")
    if len(text) > MAX_CHARS:
        raise ValueError(f"the text has {len(text)} characters; the limit is {MAX_CHARS} per call (split it)")
    return text


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Sentences of ``text``; a sentence over ``max_chars`` is split at commas, then at spaces."""
    pieces: list[str] = []
    for sentence in _sentences(clean_text(text)):
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        current = ""
        for part in _CLAUSE_BREAK.split(sentence):
            for word in part.split(" ") if len(part) > max_chars else [part]:
                if current and len(current) + 1 + len(word) > max_chars:
                    pieces.append(current)
                    current = word
                else:
                    current = f"{current} {word}".strip()
        if current:
            pieces.append(current)
    return [p for p in pieces if any(ch.isalnum() for ch in p)]
