"""An exported model served inside the Python backend, on the CPU runtime chosen for it.

The tritonserver wheel we run on CPU has no onnxruntime backend, so every ONNX model in
model_repository/ uses this one class (its model.py just re-exports it). The runtime is chosen in
retouch/runtimes.py: ncnn for the upscalers (their weights' own runtime, ~2x faster here), onnxruntime
for the rest; config parameter "runtime" (auto|ncnn|onnxruntime) and "intra_op_threads" (the runtime's
thread count) tune it. On the GPU deployment the same model.onnx is served by Triton's
onnxruntime/TensorRT backend instead (configs/gpu.pbtxt).

Requests that the dynamic batcher hands over together are concatenated along the batch axis (per
input shape, since tiles of a non-default size cannot share a batch) and run in one session call.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
import triton_python_backend_utils as pb_utils

from retouch.runtimes import load_runner
from retouch.triton import model_parameters


class OnnxRuntimeModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = model_parameters(args)
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.runtime, self.run = load_runner(
            version_dir, params.get("runtime", "auto"), int(params.get("intra_op_threads", "2"))
        )
        pb_utils.Logger.log_info(f"{args['model_name']}: CPU runtime {self.runtime}")
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        batch = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs] for r in requests]
        groups = defaultdict(list)  # same shapes -> one session call
        for i, arrays in enumerate(batch):
            groups[tuple(a.shape[1:] for a in arrays)].append(i)
        results = [None] * len(requests)
        for members in groups.values():
            feeds = {n: np.concatenate([batch[i][k] for i in members]) for k, n in enumerate(self.inputs)}
            outs = self.run(feeds, self.outputs)
            offset = 0
            for i in members:
                size = batch[i][0].shape[0]
                results[i] = [o[offset : offset + size] for o in outs]
                offset += size
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(o)) for n, o in zip(self.outputs, r)]
            )
            for r in results
        ]
