"""decode_image: encoded bytes (or raw pixels) -> RGB pixels, under a pixel limit, and beside
them what 8-bit RGB loses (FIDELITY: alpha, 16-bit values; METADATA: ICC profile, EXIF) for
encode_image. Starts the request's report. A request it cannot decode gets empty outputs and a
report carrying the error, which the operation's own step raises (and counts): see
retouch.triton.read_report."""

import numpy as np
import triton_python_backend_utils as pb_utils

from retouch.codecs import NO_FIDELITY, NO_PIXELS, Metadata, decode_request
from retouch.triton import bytes_tensor, carried_error, input_bytes, json_tensor, respond_each, timed
from retouch.triton.step import deployment_parameters, positive_int

NO_METADATA = np.array([Metadata().to_bytes()], dtype=np.object_)


class TritonPythonModel:
    PARAMETERS = {"max_pixels": positive_int}

    def initialize(self, args):
        self.max_pixels = deployment_parameters(args, self.PARAMETERS)["max_pixels"]

    def execute(self, requests):
        return respond_each(
            requests,
            self.decode,
            carry=lambda outcome, message: carried_error(
                outcome, message, PIXELS=NO_PIXELS, FIDELITY=NO_FIDELITY, METADATA=NO_METADATA
            ),
        )

    def decode(self, request):
        report = {}
        with timed(report, "decode"):
            raw = pb_utils.get_input_tensor_by_name(request, "RAW_PIXELS")
            decoded = decode_request(
                input_bytes(request, "IMAGE"), None if raw is None else raw.as_numpy(), self.max_pixels
            )
        report["input"] = decoded.info()
        return [
            pb_utils.Tensor("PIXELS", decoded.rgb),
            pb_utils.Tensor("FIDELITY", decoded.fidelity()),
            bytes_tensor("METADATA", decoded.metadata.to_bytes()),
            json_tensor("REPORT", report),
        ]
