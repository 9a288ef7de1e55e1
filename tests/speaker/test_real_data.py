"""The bundled speaker model on real, unseen speakers (LibriSpeech test-other dev trials).

A shipped model that regresses fails here: the EER bound is the benchmark's measured EER on
these utterances plus a margin (docs/benchmarks/speaker.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from voicefake import api
from voicefake.data.manifests import read_manifest
from voicefake.metrics import compute_eer, pairwise_trials

# measured with the bundled model (speaker-16k session 8: spectral shape + WORLD voices, with its
# embedding centre and cohort) on exactly these trials (first 4 utterances of each of the 10
# speakers): cosine EER 1.94 %, mean cosine same 0.823 / different 0.099 (gap 0.72); scored as
# verify scores them (AS-norm against the model's cohort): 0.42 % (fractional: tied trials count
# half) (docs/benchmarks/speaker.md). The session-7 model measures 5.00 %, gap 0.67 and 3.26 %:
# it fails both EER bounds. 60 same-speaker trials: one error is 1.7 points, so each bound has
# a margin; the gap bound fails a model that lost its centre (0.28 for the session-7 weights).
MAX_EER = 0.035
MIN_GAP = 0.6
MAX_SCORED_EER = 0.02
UTTERANCES_PER_SPEAKER = 4


@pytest.mark.data
def test_same_speaker_trials_score_above_different_speaker_trials(data_root: Path) -> None:
    rows = [r for r in read_manifest(data_root / "manifest.csv") if "/test-other/" in r.path]
    picked: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: r.path):
        if len(picked.setdefault(row.speaker, [])) < UTTERANCES_PER_SPEAKER:
            picked[row.speaker].append(row)
    speakers = sorted(picked)
    assert len(speakers) == 10
    embs, groups = [], []
    for index, speaker in enumerate(speakers):
        for row in picked[speaker]:
            embs.append(api.embed(data_root / row.path))
            groups.append(index)
    scores, labels = pairwise_trials(torch.tensor(np.stack(embs)), groups)
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + MIN_GAP
    eer, _ = compute_eer(scores, labels)
    assert eer <= MAX_EER, f"speaker EER {eer:.3f} on dev trials exceeds {MAX_EER}"
    emb = torch.tensor(np.stack(embs))
    scored = api.load("speaker", kind="speaker").module.score(emb, emb).detach().numpy()
    i, j = np.triu_indices(len(groups), 1)
    scored_eer, _ = compute_eer(scored[i, j], labels)
    assert scored_eer <= MAX_SCORED_EER, f"verification-score EER {scored_eer:.3f} exceeds {MAX_SCORED_EER}"
