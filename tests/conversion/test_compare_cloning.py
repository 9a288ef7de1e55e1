"""benchmarks/compare_cloning.py: clip-by-clip comparison of two cloning benchmark reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

compare_cloning = pytest.importorskip("benchmarks.compare_cloning")

ROW = "convert_blend0.0_eq0.5_gv0.5_identity10"


def _report(similarities: list[float], heard: list[str], mfcc: list[float] | None = None) -> dict:
    clips = [{"text": "wire the money today", "heard": h, "similarity": s,
              "similarity_mfcc": (mfcc or similarities)[i], "pair": [f"target-{i // 2}", f"p22{i % 2}_023"]}
             for i, (s, h) in enumerate(zip(similarities, heard, strict=True))]
    return {"targets": 2, ROW: {"n": len(clips), "similarity_mean": sum(similarities) / len(similarities),
                                "wer": 0.0, "dnsmos_ovrl": 2.6, "transcripts": clips},
            "tts_flite_blend0.0_eq0.5_gv0.5_identity10": {"n": 1, "transcripts": [
                {"text": "hello", "heard": "hello", "similarity": 0.7, "similarity_mfcc": 0.3, "pair": None}]}}


def test_counts_the_clips_that_moved_by_each_judge_and_in_words() -> None:
    a = _report([0.70, 0.70, 0.70, 0.70], ["wire the money today"] * 4)
    b = _report([0.72, 0.71, 0.69, 0.75], ["wire the money today", "wire the honey today", "wire the money today",
                                           "wire the money today"], mfcc=[0.8, 0.6, 0.6, 0.6])
    a[ROW]["transcripts"][2]["heard"] = "fire a money"  # a lost words on clip 2 that b keeps
    result = compare_cloning.compare(a, b, [ROW])[ROW]
    assert result["n"] == 4
    assert result["similarity"]["share_higher"] == pytest.approx(0.75)
    assert result["similarity"]["mean_change"] == pytest.approx((0.02 + 0.01 - 0.01 + 0.05) / 4)
    assert result["similarity_mfcc"]["share_higher"] == pytest.approx(0.25)
    assert result["words"]["clips_fewer_lost"] == 1 and result["words"]["clips_more_lost"] == 1
    assert result["words"]["wer_a"] == pytest.approx(3 / 16) and result["words"]["wer_b"] == pytest.approx(1 / 16)
    # every row both hold, by default; the markdown names both runs and each row
    both = compare_cloning.compare(a, b)
    assert set(both) == {ROW, "tts_flite_blend0.0_eq0.5_gv0.5_identity10"}
    text = compare_cloning.to_markdown(both, "A.json", "B.json")
    assert "A = A.json" in text and f"| {ROW} | 4 |" in text and "(1 / 1)" in text


def test_refuses_rows_whose_clips_cannot_be_paired() -> None:
    a = _report([0.7, 0.7], ["wire the money today"] * 2)
    other = _report([0.7, 0.7], ["wire the money today"] * 2)
    other[ROW]["transcripts"][1]["pair"] = ["target-9", "p225_023"]
    with pytest.raises(ValueError, match="clip 1 differs"):
        compare_cloning.compare(a, other, [ROW])
    fewer = _report([0.7], ["wire the money today"])
    with pytest.raises(ValueError, match="2 clips against 1"):
        compare_cloning.compare(a, fewer, [ROW])
    with pytest.raises(ValueError, match="not in both reports"):
        compare_cloning.compare(a, a, ["finetuned_convert"])


def test_cli_prints_json_and_gives_one_error_for_a_file_that_is_no_report(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report([0.7, 0.7], ["wire the money today"] * 2)))
    b.write_text(json.dumps(_report([0.8, 0.6], ["wire the money today"] * 2)))
    compare_cloning.main([str(a), str(b), "--row", ROW, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out[ROW]["similarity"]["share_higher"] == pytest.approx(0.5)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SystemExit, match="broken.json: not JSON"):
        compare_cloning.main([str(a), str(broken)])
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(SystemExit, match="no benchmark rows"):
        compare_cloning.main([str(empty), str(a)])
    with pytest.raises(SystemExit, match="cannot be read"):
        compare_cloning.main([str(tmp_path), str(a)])  # a folder
    with pytest.raises(SystemExit, match="missing.json: no such file"):
        compare_cloning.main([str(tmp_path / "missing.json"), str(a)])
