"""Speaker embeddings: who is speaking, robust to the phone line."""

from voicefake.speaker.model import SpeakerEncoder, SpeakerEncoderConfig

__all__ = ["SpeakerEncoder", "SpeakerEncoderConfig"]
