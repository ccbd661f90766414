"""A bring-your-own inpainting ONNX, served under retouch's canonical inpainting contract.

The model folder holds 1/model.onnx in whatever conventions it was exported with and
1/inpaint_spec.json describing them; retouch.inpaint_adapter converts IMAGE/MASK to the model's
inputs and its output back, so callers see the same IMAGE, MASK -> OUTPUT as inpaint_unet.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from retouch.errors import InvalidInput
from retouch.inpaint_adapter import SPEC_FILENAME, inpaint_with_spec, load_spec
from retouch.triton import input_array, model_parameters, respond_each


class SpecInpaintModel:
    def initialize(self, args):
        params = model_parameters(args)
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.spec = load_spec(os.path.join(version_dir, SPEC_FILENAME))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads", "2"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(version_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        name = json.loads(args["model_config"])["name"]
        pb_utils.Logger.log_info(f"{name}: serving with spec {json.dumps(self.spec.to_dict())}")

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.spec.output], feeds)[0]

    def _handle(self, request) -> list:
        image, mask = input_array(request, "IMAGE"), input_array(request, "MASK")
        if image.shape[0] != mask.shape[0] or image.shape[2:] != mask.shape[2:]:
            raise InvalidInput(f"IMAGE {image.shape} and MASK {mask.shape} differ in N, H or W")
        output = inpaint_with_spec(self._run, image, mask, self.spec)
        return [pb_utils.Tensor("OUTPUT", np.ascontiguousarray(output))]

    def execute(self, requests):
        # One request at a time: foreign models usually take a fixed batch of one anyway.
        return respond_each(requests, self._handle)
