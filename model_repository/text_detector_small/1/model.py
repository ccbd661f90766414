"""Serves 1/model.onnx with onnxruntime; see retouch/triton/onnx_model.py."""

from retouch.triton.onnx_model import OnnxRuntimeModel as TritonPythonModel  # noqa: F401
