"""The watermark payload: toolkit id, model id and generation date in 24 bits, plus CRC-8."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

EPOCH = dt.date(2025, 1, 1)
TOOLKIT_ID = 1  # voicefake
MODEL_IDS: dict[str, int] = {"unknown": 0, "vocoder": 1, "synthesis": 2, "conversion": 3,
                             "scenario": 4, "user": 5}


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, init 0) of ``data``."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@dataclass(frozen=True)
class Payload:
    """What a mark says: who made the clip, with which model, and when.

    Attributes:
        toolkit_id: 4 bits (1 = voicefake).
        model_id: 8 bits (see :data:`MODEL_IDS`).
        day: 12 bits, days since 2025-01-01 modulo 4096 (a generation date; ~11 years).
    """

    toolkit_id: int = TOOLKIT_ID
    model_id: int = 0
    day: int = 0

    def __post_init__(self) -> None:
        for name, value, bits in (("toolkit_id", self.toolkit_id, 4), ("model_id", self.model_id, 8),
                                  ("day", self.day, 12)):
            if not 0 <= value < 2**bits:
                raise ValueError(f"Payload.{name} must be in [0, {2**bits - 1}], got {value!r}")

    @classmethod
    def today(cls, model: str | int = "unknown", date: dt.date | None = None) -> Payload:
        """A payload for ``model`` (a :data:`MODEL_IDS` name or an id, or a bundled model's
        ``name@version``, whose family is the part before the first hyphen: ``conversion-ref@0.1.0``
        is a ``conversion``) dated ``date`` (today)."""
        model_id = model if isinstance(model, int) else MODEL_IDS.get(model.split("@")[0].split("-")[0], 0)
        day = ((date or dt.date.today()) - EPOCH).days % 4096
        return cls(TOOLKIT_ID, model_id, day)

    @property
    def date(self) -> dt.date:
        """The generation date (the first date in or after 2025 with this day number)."""
        return EPOCH + dt.timedelta(days=self.day)

    def to_bytes(self) -> bytes:
        """4 bytes: 24 data bits (toolkit, model, day) then their CRC-8."""
        value = (self.toolkit_id << 20) | (self.model_id << 12) | self.day
        data = value.to_bytes(3, "big")
        return data + bytes([crc8(data)])

    @classmethod
    def from_bytes(cls, data: bytes) -> Payload | None:
        """Inverse of :meth:`to_bytes`; None when the CRC does not match."""
        if len(data) != 4 or crc8(data[:3]) != data[3]:
            return None
        value = int.from_bytes(data[:3], "big")
        return cls(value >> 20, (value >> 12) & 0xFF, value & 0xFFF)

    def hex(self) -> str:
        """The 4 coded bytes as 8 hex digits (as written in file metadata)."""
        return self.to_bytes().hex()
