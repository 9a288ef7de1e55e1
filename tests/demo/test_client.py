"""API-level tests of each demo tab through gradio_client against a live local server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.demo.server import running_demo

pytestmark = pytest.mark.data
REAL = "librispeech_resemblyzer/test-other/1688/1688-142285-0003.flac"
SAME = "librispeech_resemblyzer/test-other/1688/1688-142285-0005.flac"
OTHER = "librispeech_resemblyzer/test-other/3005/3005-163389-0001.flac"


def test_tabs_through_gradio_client(data_root: Path, tmp_path: Path) -> None:
    client_module = pytest.importorskip("gradio_client")
    corrupt = tmp_path / "broken.mp3"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with running_demo(tmp_path) as url:
        client = client_module.Client(url, verbose=False)
        handle = client_module.handle_file
        result = client.predict([handle(str(data_root / REAL)), handle(str(corrupt))], 0.5, None,
                                api_name="/analyze")
        table = result[0]
        rows = {row[0]: row for row in table["data"]}
        assert rows["1688-142285-0003.flac"][1] in ("real", "fake")
        assert 0.0 <= float(rows["1688-142285-0003.flac"][2]) <= 1.0
        assert rows["broken.mp3"][1] == "error" and "broken.mp3" in rows["broken.mp3"][5]
        assert Path(result[5]).read_text().startswith("{")        # JSON report
        assert "<html" in Path(result[6]).read_text()                # printable HTML report

        same = client.predict([handle(str(data_root / REAL))], handle(str(data_root / SAME)),
                              api_name="/check_speaker")
        other = client.predict([handle(str(data_root / REAL))], handle(str(data_root / OTHER)),
                               api_name="/check_speaker")
        assert "same speaker" in same and "different speaker" in other

        wav = (0.1 * np.sin(2 * np.pi * 150 * np.arange(16000) / 16000)).astype(np.float32)
        sf.write(tmp_path / "tone.wav", wav, 16000)
        audio, label = client.predict(handle(str(tmp_path / "tone.wav")), api_name="/resynthesize")
        assert "SYNTHETIC" in label and Path(audio).exists()
