#!/usr/bin/env bash
# Leave-one-generator-out folds: one detector per held-out generator family, trained from
# scratch with the bundled model's recipe but shorter (STEPS). Then: python benchmarks/detection.py.
#   PYTHON=.venv/bin/python [LOGO_DIR=runs/detection/logo] [EXTRA="train.p_splice=0.3"] \
#       bash recipes/detection/logo.sh [STEPS] [FAMILY ...]
# LOGO_HOLD=corpus: leave-one-chain-out folds instead, one per corpus named (librispeech vctk ...: its reals
# and every fake made from them left out; then python benchmarks/detection.py --chain-folds LOGO_DIR).
set -euo pipefail
steps=${1:-160}
shift || true
hold=${LOGO_HOLD:-family}
families=${*:-nsf gan-vocoder world griffin-lim voicefake-vocoder voicefake-clone formant-diphone festival-flite-pico}
for family in $families; do
  # shellcheck disable=SC2086  # EXTRA holds several overrides
  nice -n 5 "${PYTHON:-python}" recipes/detection/train.py --config recipes/detection/configs/bundled.yaml \
    --run "${LOGO_DIR:-runs/detection/logo}/$family" "data.exclude_$hold=$family" \
    "loop.max_steps=$steps" "train.total_steps=$steps" "loop.eval_every=$steps" "loop.checkpoint_every=$steps" \
    ${EXTRA:-}
done
