"""decode_image: encoded bytes (or raw pixels) -> RGB pixels, under a pixel limit, and beside
them what 8-bit RGB loses (FIDELITY: alpha, 16-bit values; METADATA: ICC profile, EXIF) for
encode_image. Starts the request's report."""

from retouch.codecs import DEFAULT_MAX_PIXELS, decode_request
from retouch.triton import bytes_tensor, input_bytes, json_tensor, model_parameters, respond_each, timed

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.max_pixels = int(model_parameters(args).get("max_pixels", DEFAULT_MAX_PIXELS))

    def execute(self, requests):
        return respond_each(requests, self.decode)

    def decode(self, request):
        report = {}
        with timed(report, "decode"):
            raw = pb_utils.get_input_tensor_by_name(request, "RAW_PIXELS")
            decoded = decode_request(input_bytes(request, "IMAGE"), None if raw is None else raw.as_numpy(),
                                     self.max_pixels)
        report["input"] = decoded.info()
        return [pb_utils.Tensor("PIXELS", decoded.rgb), pb_utils.Tensor("FIDELITY", decoded.fidelity()),
                bytes_tensor("METADATA", decoded.metadata.to_bytes()), json_tensor("REPORT", report)]
