#!/usr/bin/env bash
# textdir-request.sh — prints an Open Inference Protocol v2 request for the
# textdir model: one synthetic 3x48x192 image (dark text-like stripes on a
# light ground, values in [-1, 1] as the model expects).
#
#   scripts/textdir-request.sh | curl -s localhost:8000/v2/models/textdir/infer -d @-
awk 'BEGIN {
  printf "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,3,48,192],\"data\":["
  n = 0
  for (c = 0; c < 3; c++)
    for (y = 0; y < 48; y++)
      for (x = 0; x < 192; x++) {
        v = (y > 14 && y < 34 && (x % 12) < 7) ? -0.8 : 0.9
        printf "%s%s", (n++ ? "," : ""), v
      }
  printf "]}]}\n"
}'
