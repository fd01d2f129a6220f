"""An independent check of `gendr eval`'s flicker and shimmer, in numpy.

    python scripts/temporal/temporal_reference.py DUMP_DIR REPORT_JSON

DUMP_DIR holds the frames `gendr eval --dump-temporal` wrote (reference_NNN,
bicubic_NNN, model_NNN, stabilized_NNN, 8-bit PNGs, the very pixels gendr
scored) and REPORT_JSON that run's `--json` report. Both scores are computed
here from the definitions, in float64, and must agree with gendr's:

- flicker = mean over pairs of consecutive frames of the mean over pixels of
  |(out_t - out_t-1) - (gt_t - gt_t-1)|, on BT.601 luma in 8-bit levels;
- shimmer = the same difference, pooled over every pixel of every pair where
  |gt_t - gt_t-1| < 2 levels, compared at 1e-4 of a level (a change of
  exactly 2 levels is then 2 in float32 and float64 alike).

Run it in the pinned venv of scripts/niqe/requirements.txt (`make
temporal-reference` makes the footage, runs gendr eval and this check).
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

STATIC_BELOW = 2.0
# gendr works in float32; a pixel whose reference change is within float
# noise of the 2-level bound may fall on either side, so agreement is asked
# to a thousandth, relative.
TOLERANCE = 1e-3


def luma(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114])


def frames(folder, name):
    paths = sorted(folder.glob(f"{name}_*.png"))
    return [luma(p) for p in paths]


def flicker(ours, truth):
    pairs = [np.abs((ours[t] - ours[t - 1]) - (truth[t] - truth[t - 1])).mean() for t in range(1, len(ours))]
    return float(np.mean(pairs))


def shimmer(ours, truth):
    total, count = 0.0, 0
    for t in range(1, len(ours)):
        change = truth[t] - truth[t - 1]
        static = np.round(np.abs(change) * 1e4) < STATIC_BELOW * 1e4
        total += np.abs((ours[t] - ours[t - 1]) - change)[static].sum()
        count += int(static.sum())
    return total / count


def main():
    folder, report_path = Path(sys.argv[1]), Path(sys.argv[2])
    report = json.loads(report_path.read_text())
    truth = frames(folder, "reference")
    assert len(truth) >= 2, f"{folder}: fewer than two reference frames"
    failures = []
    for name, key in [("bicubic", "bicubic"), ("model", "model"), ("stabilized", "stabilized")]:
        ours = frames(folder, name)
        assert len(ours) == len(truth), f"{name}: {len(ours)} frames, reference {len(truth)}"
        for score, ours_value in [("flicker", flicker(ours, truth)), ("shimmer", shimmer(ours, truth))]:
            gendr_value = report["temporal"][key][score]
            ok = abs(ours_value - gendr_value) <= TOLERANCE * max(abs(ours_value), 1e-9)
            print(f"{name:<11} {score}: numpy {ours_value:.6f}, gendr {gendr_value:.6f} {'ok' if ok else 'DIFFERS'}")
            if not ok:
                failures.append(f"{name} {score}")
    if failures:
        sys.exit(f"temporal reference: gendr differs from numpy on {', '.join(failures)}")
    print(f"temporal reference: flicker and shimmer agree over {len(truth)} frames")


if __name__ == "__main__":
    main()
