"""Serves 1/model.onnx through the conventions in 1/inpaint_spec.json; see retouch/triton/spec_inpaint_model.py."""

from retouch.triton.spec_inpaint_model import SpecInpaintModel as TritonPythonModel  # noqa: F401
