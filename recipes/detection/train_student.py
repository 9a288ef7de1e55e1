"""Trains the detector's artefact encoder, a student of Whisper tiny.en's encoder.

    python recipes/detection/prepare_student.py --channel-copies 3 --out runs/detection/student.pt
    python recipes/detection/train_student.py --config recipes/detection/configs/student.yaml \
        --run runs/detection/student data.cache=runs/detection/student.pt

Multi-GPU: torchrun --nproc_per_node=N recipes/detection/train_student.py --config configs/student_full.yaml ...

The student is a content encoder that keeps the band levels (``model.normalize_bands: false``),
so this is the content encoder's trainer (recipes/conversion/train.py, the same sections and
options) under the detection recipe's name. Re-running the same command resumes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "conversion" / "train.py"
_spec = importlib.util.spec_from_file_location("_conversion_train", _path)
assert _spec is not None and _spec.loader is not None
_trainer = importlib.util.module_from_spec(_spec)
sys.modules["_conversion_train"] = _trainer  # its dataclasses look their module up here
_spec.loader.exec_module(_trainer)

SECTIONS = _trainer.SECTIONS

if __name__ == "__main__":
    _trainer.run_recipe(_trainer.main)
