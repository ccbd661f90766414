"""decode_image: encoded bytes (or raw pixels) -> RGB pixels, under a pixel limit.
Starts the request's report. A request it cannot decode gets no pixels and a report carrying the
error, which the operation's own step raises (and counts): see retouch.triton.read_report."""

from retouch.codecs import DEFAULT_MAX_PIXELS, NO_PIXELS, decode_request
from retouch.triton import carried_error, input_bytes, json_tensor, model_parameters, respond_each, timed

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.max_pixels = int(model_parameters(args).get("max_pixels", DEFAULT_MAX_PIXELS))

    def execute(self, requests):
        return respond_each(requests, self.decode,
                            carry=lambda outcome, message: carried_error(outcome, message, PIXELS=NO_PIXELS))

    def decode(self, request):
        report = {}
        with timed(report, "decode"):
            raw = pb_utils.get_input_tensor_by_name(request, "RAW_PIXELS")
            decoded = decode_request(input_bytes(request, "IMAGE"), None if raw is None else raw.as_numpy(),
                                     self.max_pixels)
        report["input"] = decoded.info()
        return [pb_utils.Tensor("PIXELS", decoded.rgb), json_tensor("REPORT", report)]
