"""The detector's fine-tuning (export/train_text_detector.py): the shipped ONNX graph runs in torch
as onnxruntime runs it, its weights go back into the graph by name, labels are DBNet's shrunk line
rectangles, and training resumes bit for bit."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from skimage import data

from export import train_text_detector as trainer
from retouch.text import DETECTORS, preprocess


def window(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    return preprocess(np.ascontiguousarray(rgb[:size, :size]), DETECTORS["ppocrv6_tiny"])[None]


def test_onnx_graph_runs_in_torch_as_in_onnxruntime_and_its_weights_go_back_by_name():
    graph = trainer.source_graph()
    net = trainer.OnnxNet(graph)
    x = window(data.astronaut())
    want = ort.InferenceSession(graph.SerializeToString()).run(None, {"INPUT": x})[0]
    got = net(torch.from_numpy(x)).detach().numpy()
    assert got.shape == want.shape == (1, 1, 256, 256)
    assert np.abs(got - want).max() < 1e-4
    # A changed weight (the last layer's bias), written back into the graph by name, changes
    # onnxruntime's output the same way.
    bias = [n for n in graph.graph.node if n.op_type == "Add"][-1].input[1]
    assert net.tensor(bias).requires_grad
    with torch.no_grad():
        net.tensor(bias).add_(8.0)
    moved = trainer.with_weights(trainer.source_graph(), net.initializers())
    out = ort.InferenceSession(moved.SerializeToString()).run(None, {"INPUT": x})[0]
    assert np.abs(out - want).max() > 1e-3
    assert np.abs(out - net(torch.from_numpy(x)).detach().numpy()).max() < 1e-4


def test_weights_must_name_every_initializer_with_its_shape():
    weights = trainer.OnnxNet(trainer.source_graph()).initializers()
    name = next(iter(weights))
    with pytest.raises(ValueError, match="not the same set"):
        trainer.with_weights(trainer.source_graph(), {k: v for k, v in weights.items() if k != name})
    with pytest.raises(ValueError, match=name):
        trainer.with_weights(trainer.source_graph(), weights | {name: np.zeros((1, 2, 3), np.float32)})


def test_labels_are_the_line_rectangles_shrunk_as_dbnet_trains():
    quad = np.array([[10, 10], [110, 10], [110, 40], [10, 40]], np.float32)  # 100 x 30
    kernel = trainer.shrunk(quad)
    offset = 100 * 30 * (1 - trainer.SHRINK_RATIO**2) / 260  # area * (1 - r^2) / perimeter
    x0, y0 = kernel.min(axis=0)
    x1, y1 = kernel.max(axis=0)
    assert (x0, y0) == pytest.approx((10 + offset, 10 + offset), abs=1)
    assert (x1, y1) == pytest.approx((110 - offset, 40 - offset), abs=1)
    assert trainer.shrunk(np.array([[0, 0], [1, 0], [1, 0.5], [0, 0.5]], np.float32)) is None


def test_training_resumes_exactly(tmp_path, monkeypatch):
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    monkeypatch.setattr(trainer, "detector_photos", lambda: photos)
    common = ["--batch", "1", "--lr", "1e-3"]
    trainer.main(common + ["--steps", "3", "--out", str(tmp_path / "once.pt")])
    trainer.main(common + ["--steps", "1", "--out", str(tmp_path / "half.pt")])
    trainer.main(common + ["--steps", "3", "--resume", str(tmp_path / "half.pt"), "--out", str(tmp_path / "twice.pt")])
    once, twice = (torch.load(tmp_path / n, weights_only=True) for n in ("once.pt", "twice.pt"))
    assert once["step"] == twice["step"] == 3
    start = trainer.OnnxNet(trainer.source_graph()).state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in once["model"].items())  # it did learn
    for name, value in once["model"].items():
        assert torch.equal(value, twice["model"][name]), name
    trainer.main(["--resume", str(tmp_path / "once.pt"), "--write-onnx", str(tmp_path / "candidate.onnx")])
    net = trainer.OnnxNet(trainer.source_graph())
    net.load_state_dict(once["model"])
    x = window(data.camera()[..., None].repeat(3, axis=2))
    written = ort.InferenceSession(str(tmp_path / "candidate.onnx")).run(None, {"INPUT": x})[0]
    assert np.abs(written - net(torch.from_numpy(x)).detach().numpy()).max() < 1e-4
