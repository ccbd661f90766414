"""Per-input speed of each text detector the exporter offers, interleaved, at every bucket size
(docs/text.md compares PP-OCRv6 tiny, served, with the opt-in PP-OCRv6 small on this figure).

    .venv/bin/python scripts/bench_detectors.py [--rounds 5] [--threads 1 2]

The graphs are the pinned wheels' own (sha256-checked, export.text_detectors.SOURCES), run in
onnxruntime on a real photo preprocessed as text_detect sends it (one bucket-sized input). Prints
the median ms per input and each detector's ratio to the served one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import onnxruntime as ort
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the export package, run as a script

from export.text_detectors import SOURCES, source_path  # noqa: E402
from retouch.text import DEFAULT_BUCKETS, DETECTORS, preprocess, served_detector  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="timed runs per detector and size (one warm-up more)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="onnxruntime intra-op threads")
    ap.add_argument("--detectors", nargs="+", default=sorted(SOURCES), choices=sorted(SOURCES))
    args = ap.parse_args()
    served = served_detector(ROOT / "model_repository")
    names = sorted(set(args.detectors) | {served})
    for threads in args.threads:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sessions = {n: ort.InferenceSession(str(source_path(SOURCES[n])), options) for n in names}
        for size in DEFAULT_BUCKETS:
            photo = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_LINEAR)
            inputs = {n: {s.get_inputs()[0].name: preprocess(photo, DETECTORS[n])[None]} for n, s in sessions.items()}
            times = {n: [] for n in names}
            for _ in range(args.rounds + 1):  # interleaved, so drift on a shared machine hits all alike
                for n, session in sessions.items():
                    t0 = time.perf_counter()
                    session.run(None, inputs[n])
                    times[n].append(time.perf_counter() - t0)
            ms = {n: 1000 * statistics.median(t[1:]) for n, t in times.items()}
            cells = ", ".join(f"{n} {ms[n]:.0f} ms ({ms[n] / ms[served]:.2f}x)" for n in names)
            print(f"{threads} thread(s), {size}x{size}: {cells}; ratios to the served {served}", flush=True)


if __name__ == "__main__":
    main()
