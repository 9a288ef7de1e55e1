"""Lip-sync: measure audio-video offset and sync confidence, align new speech to a face.

:mod:`voicefake.lipsync.mouth` tracks the lips (Haar face box + dlib landmarks),
:mod:`voicefake.lipsync.sync` measures (no training), :mod:`voicefake.lipsync.align` aligns
(global shift + clamped DTW + WSOLA). Public entry points are ``voicefake.api.sync_offset``
and ``voicefake.api.align``.
"""
