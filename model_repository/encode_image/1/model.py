"""encode_image: RGB pixels -> PNG/JPEG/WebP bytes (or raw pixels), in the format the last
pipeline step put in report["output"], with what decode_image set aside: alpha and 16-bit values
(FIDELITY: the input's, or the upscaled ones) and the ICC profile and EXIF (METADATA)."""

import triton_python_backend_utils as pb_utils

from retouch.codecs import Metadata, encode_result, unpack_fidelity
from retouch.settings import OutputSettings
from retouch.triton import bytes_tensor, input_array, input_bytes, read_report, report_tensor, respond_each, timed


class TritonPythonModel:
    def execute(self, requests):
        return respond_each(requests, self.encode)

    def encode(self, request):
        report = read_report(request)
        output = report.setdefault("output", OutputSettings().to_dict())
        pixels = input_array(request, "PIXELS")
        fidelity = pb_utils.get_input_tensor_by_name(request, "FIDELITY")
        deep, alpha = unpack_fidelity(None if fidelity is None else fidelity.as_numpy(), pixels.shape[:2])
        with timed(report, "encode"):
            data, raw, written = encode_result(
                pixels,
                output["format"],
                output["quality"],
                deep=deep,
                alpha=alpha,
                metadata=Metadata.from_bytes(input_bytes(request, "METADATA")),
                keep_metadata=output["keep_metadata"],
            )
        output.update(width=pixels.shape[1], height=pixels.shape[0], bytes=len(data) or raw.nbytes, **written)
        return [bytes_tensor("IMAGE", data), pb_utils.Tensor("RAW_PIXELS", raw), report_tensor(report)]
