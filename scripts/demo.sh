#!/usr/bin/env bash
# The main job: narrate the bundled sample clip with the detector policy (no model download), then score
# the narration against the hand-made event labels. Outputs land in runs/demo/.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
setup_apt espeak-ng
setup_venv "screen"
cd "$REPO"
agentkit narrate samples/one-by-one-person-detection.mp4 --out runs/demo --force --tts "$@"
agentkit eval narration runs/demo/decisions.jsonl --labels configs/labels/one-by-one-person-detection.json --json runs/demo/eval.json
echo "outputs: runs/demo (annotated.mp4, narration.srt, narration.vtt, narration.wav, decisions.jsonl, metrics.json, eval.json)"
