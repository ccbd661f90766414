"""decode_image: encoded bytes -> RGB pixels, under a pixel limit. Starts the request's report."""

from retouch.codecs import DEFAULT_MAX_PIXELS, decode_image
from retouch.triton import input_bytes, json_tensor, model_parameters, respond_each, timed

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.max_pixels = int(model_parameters(args).get("max_pixels", DEFAULT_MAX_PIXELS))

    def execute(self, requests):
        return respond_each(requests, self.decode)

    def decode(self, request):
        report = {}
        with timed(report, "decode"):
            decoded = decode_image(input_bytes(request, "IMAGE") or b"", self.max_pixels)
        report["input"] = decoded.info()
        return [pb_utils.Tensor("PIXELS", decoded.rgb), json_tensor("REPORT", report)]
