"""decode_mask: encoded mask bytes -> HxW uint8, under the same pixel limit as images."""

import triton_python_backend_utils as pb_utils

from retouch.codecs import DEFAULT_MAX_PIXELS, decode_mask
from retouch.triton import input_bytes, model_parameters, respond_each


class TritonPythonModel:
    def initialize(self, args):
        self.max_pixels = int(model_parameters(args).get("max_pixels", DEFAULT_MAX_PIXELS))

    def execute(self, requests):
        return respond_each(requests, self.decode)

    def decode(self, request):
        return [pb_utils.Tensor("MASK", decode_mask(input_bytes(request, "MASK") or b"", self.max_pixels))]
