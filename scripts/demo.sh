#!/usr/bin/env bash
# Fresh machine -> register the bundled 3D sample pair from the command line and write the
# warped image, warped labels, field, ITK transform, metrics (JSON/CSV), a PNG QA report and
# outputs.json (the list of files written; a rerun into the same folder replaces only those).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
out="${1:-results/sample_brain3d}"
.venv/bin/napari-deepreg register \
  sample_data/brain3d_fixed.nii.gz sample_data/brain3d_moving.nii.gz \
  --fixed-labels sample_data/brain3d_fixed_labels.nii.gz \
  --moving-labels sample_data/brain3d_moving_labels.nii.gz \
  --method instance_opt --out "$out"
echo "results in $out (open $out/report.png)"
