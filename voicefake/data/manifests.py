"""Manifests: the CSV file lists that every dataset in voicefake is read from.

The columns are those of the shared data's ``manifest.csv``: ``path`` (relative to the
manifest's root), ``speaker``, ``label`` (``real``/``fake``), ``system`` (``human`` or the
generator), ``transcript``, ``media``, ``sample_rate``, ``channels``, ``duration_s``,
``folder``, ``license``, ``notes``. Only ``path`` is required; the rest default to empty.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

DATA_ENV = "VOICEFAKE_DATA"


@dataclass(frozen=True)
class ManifestRow:
    """One media file."""

    path: str
    speaker: str = ""
    label: str = ""
    system: str = ""
    transcript: str = ""
    media: str = "audio"
    sample_rate: int = 0
    channels: int = 0
    duration_s: float = 0.0
    folder: str = ""
    license: str = ""
    notes: str = ""

    @property
    def is_fake(self) -> bool:
        """True for synthetic speech."""
        return self.label == "fake"

    @property
    def corpus(self) -> str:
        """The corpus (recording chain) of the recording: the first ``-`` part of the speaker name
        (``librispeech-1188`` -> ``librispeech``). A fake made from a recording by copy-synthesis
        or cloning keeps that recording's speaker, so it belongs to the same corpus."""
        return self.speaker.split("-", 1)[0]

    @property
    def tags(self) -> dict[str, str]:
        """The ``key=value`` items of ``notes`` (``split=train;channel=clean`` ->
        ``{"split": "train", "channel": "clean"}``); items without ``=`` are left out."""
        return dict(item.split("=", 1) for item in self.notes.split(";") if "=" in item)


COLUMNS = tuple(f.name for f in fields(ManifestRow))


def data_root(required: bool = True) -> Path | None:
    """The shared data folder from ``$VOICEFAKE_DATA``.

    Raises:
        FileNotFoundError: when ``required`` and the variable is unset or not a folder.
    """
    value = os.environ.get(DATA_ENV, "")
    if value and Path(value).is_dir():
        return Path(value)
    if required:
        raise FileNotFoundError(
            f"${DATA_ENV} is {'unset' if not value else repr(value) + ', not a folder'}; "
            "point it at the shared data folder (e.g. export VOICEFAKE_DATA=../shared/data)"
        )
    return None


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Reads a manifest CSV; unknown columns are an error, missing ones take defaults."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        unknown = sorted(set(reader.fieldnames or ()) - set(COLUMNS))
        if unknown:
            raise ValueError(f"{path}: unknown manifest column(s) {unknown}; allowed: {list(COLUMNS)}")
        if "path" not in (reader.fieldnames or ()):
            raise ValueError(f"{path}: a manifest needs a 'path' column")
        return [_row(raw, path, reader.line_num) for raw in reader]


def _row(raw: dict[str | None, Any], path: Path, line: int) -> ManifestRow:
    # csv.DictReader files surplus fields under None and fills missing ones with None
    if None in raw or None in raw.values():
        raise ValueError(f"{path}:{line}: the row does not have one field per column")
    if not raw.get("path"):
        raise ValueError(f"{path}:{line}: empty 'path'")
    try:
        return ManifestRow(
            **{str(k): v for k, v in raw.items() if k not in ("sample_rate", "channels", "duration_s")},
            sample_rate=int(raw.get("sample_rate") or 0),
            channels=int(raw.get("channels") or 0),
            duration_s=float(raw.get("duration_s") or 0.0),
        )
    except ValueError as err:
        raise ValueError(f"{path}:{line}: bad number in manifest row ({err})") from err


def write_manifest(rows: Iterable[ManifestRow], path: str | os.PathLike[str]) -> Path:
    """Writes rows as a manifest CSV (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
    os.replace(tmp, path)
    return path


def select(rows: Iterable[ManifestRow], predicate: Callable[[ManifestRow], bool]) -> list[ManifestRow]:
    """Rows for which ``predicate`` is true."""
    return [r for r in rows if predicate(r)]


def speaker_disjoint_split(
    rows: list[ManifestRow], dev_fraction: float, seed: int = 0
) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """Splits rows so that no speaker appears on both sides.

    Returns:
        (train, dev); about ``dev_fraction`` of the speakers go to dev.
    """
    speakers = sorted({r.speaker for r in rows})
    rng = random.Random(seed)
    rng.shuffle(speakers)
    n_dev = max(1, round(dev_fraction * len(speakers))) if speakers and dev_fraction > 0 else 0
    dev_speakers = set(speakers[:n_dev])
    return [r for r in rows if r.speaker not in dev_speakers], [r for r in rows if r.speaker in dev_speakers]
