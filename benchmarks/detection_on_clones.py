"""Does the bundled detector catch voicefake's own cloning output (a generator it never saw)?

Converts the 8 VCTK benchmark sources into 5 unseen LibriSpeech test-other targets (30 s
references, default blend) and speaks one text-to-speech line per target (45 clones), then runs
``api.detect`` on them and on the 8 real sources; prints mean p_fake and how many are flagged
at the detector's calibrated threshold.

    VOICEFAKE_DATA=../shared/data python benchmarks/detection_on_clones.py [--checkpoint DIR]
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.cloning import TEXTS, sources, targets
from voicefake import api
from voicefake.data.manifests import data_root


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="detection", help="detector (default: the bundled one)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    root = data_root()
    assert root is not None
    srcs = sources(root)
    real = [api.detect(s["wav"], args.checkpoint) for s in srcs]
    fake = []
    for target in targets(root, 30)[:5]:
        profile = api.voice_profile(target["reference"])
        fake += [api.detect(api.convert(s["wav"], profile)[0], args.checkpoint) for s in srcs]
        fake.append(api.detect(api.clone(TEXTS[0], profile)[0], args.checkpoint))
    print(f"threshold {real[0].threshold}")
    for name, reports in (("real sources", real), ("voicefake clones", fake)):
        flagged = sum(r.label == "fake" for r in reports)
        print(f"{name}: n {len(reports)}, mean p_fake {np.mean([r.p_fake for r in reports]):.3f}, "
              f"flagged {flagged} ({100 * flagged / len(reports):.0f} %)")


if __name__ == "__main__":
    main()
