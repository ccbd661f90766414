"""Every config.pbtxt (CPU and GPU) parses into Triton's ModelConfig proto and is consistent."""

import functools
import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(
    [
        *ROOT.glob("model_repository/*/config.pbtxt"),
        *ROOT.glob("model_repository/*/configs/*.pbtxt"),
        *ROOT.glob("ensembles/*/config.pbtxt"),
    ]
)


def load(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_configs_exist():
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_parses_and_names_its_folder(path):
    config = load(path)
    folder = path.parent if path.name == "config.pbtxt" else path.parent.parent
    assert config.name == folder.name
    assert config.backend == "python" or config.platform in ("ensemble", "onnxruntime_onnx")
    if config.backend == "python":
        assert (folder / "1" / "model.py").exists()
    if config.max_batch_size:
        assert config.HasField("dynamic_batching")
        # Explicit batching fields: Triton's auto-complete would otherwise add a preferred batch
        # size equal to max_batch_size and make a lone request wait the full queue delay.
        assert config.dynamic_batching.max_queue_delay_microseconds > 0


@pytest.mark.parametrize("path", sorted(ROOT.glob("ensembles/*/config.pbtxt")), ids=lambda p: p.parent.name)
def test_ensemble_steps_are_wired(path):
    config = load(path)
    produced = {i.name for i in config.input}
    # An output named like an input would silently return the input.
    assert not produced & {o.name for o in config.output}
    models = {p.parent.name: load(p) for p in ROOT.glob("model_repository/*/config.pbtxt")}
    for step in config.ensemble_scheduling.step:
        assert step.model_name in models, f"{step.model_name} is not in model_repository/"
        model = models[step.model_name]
        assert set(step.input_map) <= {i.name for i in model.input}
        required = {i.name for i in model.input if not i.optional}
        assert required <= set(step.input_map), f"{step.model_name} misses {required - set(step.input_map)}"
        assert set(step.output_map) <= {o.name for o in model.output}
        assert set(step.input_map.values()) <= produced, f"{step.model_name} reads a tensor nothing made"
        produced |= set(step.output_map.values())
    assert {o.name for o in config.output} <= produced


def test_gpu_configs_match_cpu_io():
    for gpu in ROOT.glob("model_repository/*/configs/gpu.pbtxt"):
        cpu, g = load(gpu.parent.parent / "config.pbtxt"), load(gpu)
        assert [(i.name, i.data_type, list(i.dims)) for i in cpu.input] == [
            (i.name, i.data_type, list(i.dims)) for i in g.input
        ]
        assert [(o.name, o.data_type, list(o.dims)) for o in cpu.output] == [
            (o.name, o.data_type, list(o.dims)) for o in g.output
        ]
        assert cpu.max_batch_size == g.max_batch_size


def test_every_model_has_a_tracked_version_folder():
    """Git does not keep empty folders: a model whose 1/ holds no tracked file fails to load on a
    fresh clone ("at least one version must be available")."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    versioned = {
        Path(p).parts[1]
        for p in tracked
        if len(Path(p).parts) > 3 and Path(p).parts[2] == "1" and Path(p).parts[0] in ("model_repository", "ensembles")
    }
    folders = {
        p.parent.name
        for p in ROOT.glob("*/*/config.pbtxt")
        if p.parent.parent.name in ("model_repository", "ensembles")
    }
    assert folders - versioned == set()


# -- GPU configs (NGC container, --model-config-name=gpu) -------------------------------------------

GPU_CONFIGS = sorted(ROOT.glob("model_repository/*/configs/gpu.pbtxt"))
TRT_CACHE = "/cache/trt"  # the volume docker/compose.yaml and deploy/k8s/ mount
# The TensorRT accelerator parameters the onnxruntime backend of Triton 24.10 accepts (branch r24.10
# of triton-inference-server/onnxruntime_backend, src/onnxruntime.cc); any other key makes the model
# fail to load with "unknown parameter".
TRT_PARAMETERS_24_10 = {
    "precision_mode",
    "max_workspace_size_bytes",
    "int8_calibration_table_name",
    "int8_use_native_calibration_table",
    "trt_max_partition_iterations",
    "trt_min_subgraph_size",
    "trt_dla_enable",
    "trt_dla_core",
    "trt_engine_cache_enable",
    "trt_engine_cache_path",
    "trt_engine_cache_prefix",
    "trt_dump_subgraphs",
    "trt_force_sequential_engine_build",
    "trt_context_memory_sharing_enable",
    "trt_layer_norm_fp32_fallback",
    "trt_timing_cache_enable",
    "trt_timing_cache_path",
    "trt_force_timing_cache",
    "trt_detailed_build_log",
    "trt_build_heuristics_enable",
    "trt_sparsity_enable",
    "trt_builder_optimization_level",
    "trt_auxiliary_streams",
    "trt_tactic_sources",
    "trt_extra_plugin_lib_paths",
    "trt_profile_min_shapes",
    "trt_profile_max_shapes",
    "trt_profile_opt_shapes",
    "trt_cuda_graph_enable",
    "trt_dump_ep_context_model",
    "trt_ep_context_file_path",
    "trt_ep_context_embed_mode",
}


def onnx_served_models() -> set[str]:
    """Models whose shim serves 1/model.onnx with onnxruntime (the CPU stand-in for the GPU backend)."""
    return {
        p.parents[1].name
        for p in ROOT.glob("model_repository/*/1/model.py")
        if "retouch.triton.onnx_model" in p.read_text()
    }


def test_every_onnx_model_has_a_gpu_config():
    # inpaint_custom is served through a Python adapter (any foreign convention), on GPU hosts too.
    assert onnx_served_models() == {p.parents[1].name for p in GPU_CONFIGS}


def _profile(value: str) -> dict[str, list[int]]:
    return {name: [int(d) for d in dims.split("x")] for name, dims in (item.split(":") for item in value.split(","))}


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.parents[1].name)
def test_gpu_config_tensorrt_profiles_and_warmup(path):
    config = load(path)
    assert config.platform == "onnxruntime_onnx"
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    (trt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert trt.name == "tensorrt"
    params = dict(trt.parameters)
    assert set(params) <= TRT_PARAMETERS_24_10, set(params) - TRT_PARAMETERS_24_10
    assert params["precision_mode"] in ("FP16", "FP32")
    assert params["trt_engine_cache_enable"] == params["trt_timing_cache_enable"] == "1"
    assert params["trt_engine_cache_path"] == params["trt_timing_cache_path"] == TRT_CACHE
    assert params["trt_engine_cache_prefix"] == config.name
    # One optimisation profile over every input: [batch, *dims], min <= opt <= max, batch up to
    # max_batch_size, and the fixed (non -1) dims as the config declares them.
    profiles = [_profile(params[f"trt_profile_{k}_shapes"]) for k in ("min", "opt", "max")]
    inputs = {i.name: list(i.dims) for i in config.input}
    for profile in profiles:
        assert set(profile) == set(inputs)
        for name, dims in inputs.items():
            assert len(profile[name]) == len(dims) + 1
            assert all(d == p for d, p in zip(dims, profile[name][1:]) if d != -1)
    for name in inputs:
        lo, opt, hi = (p[name] for p in profiles)
        assert all(a <= b <= c for a, b, c in zip(lo, opt, hi)), name
        assert lo[0] == 1 and hi[0] == config.max_batch_size
    # Warm-up: every input, inside the profile, at batch sizes the batcher forms.
    assert config.model_warmup
    for warmup in config.model_warmup:
        assert set(warmup.inputs) == set(inputs)
        assert 1 <= warmup.batch_size <= config.max_batch_size
        for name, data in warmup.inputs.items():
            shape = [warmup.batch_size, *data.dims]
            assert data.data_type == model_config_pb2.TYPE_FP32
            assert all(a <= s <= c for a, s, c in zip(profiles[0][name], shape, profiles[2][name])), (name, shape)


# -- deployment parameters (retouch.triton.step: deployment_parameters, OperationStep) ---------------

STEPS = ("upscale_tiles", "text_detect", "inpaint_regions", "text_remove")


def model_folder(path: Path) -> Path:
    return path.parent if path.name == "config.pbtxt" else path.parent.parent


@functools.cache
def parameter_shims() -> dict[str, type]:
    """The TritonPythonModel of each model whose shim declares its config parameters (PARAMETERS,
    read by retouch.triton.step), imported with a stand-in for pb_utils."""
    import importlib.util

    from fake_pb_utils import install

    install()
    shims = {}
    for path in sorted(ROOT.glob("model_repository/*/1/model.py")):
        if "retouch.triton.step" not in path.read_text():
            continue
        spec = importlib.util.spec_from_file_location(f"shim_{path.parents[1].name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        shims[path.parents[1].name] = module.TritonPythonModel
    return shims


def stub_args(path: Path) -> dict:
    """What Triton passes initialize() for a config: its JSON and the model's folder."""
    from google.protobuf import json_format

    config = json_format.MessageToDict(load(path), preserving_proto_field_name=True)
    return {"model_config": json.dumps(config), "model_repository": str(model_folder(path))}


def test_the_operation_steps_share_the_base_and_the_decoders_declare_their_limit():
    from retouch.triton.step import OperationStep

    shims = parameter_shims()
    assert {name for name, shim in shims.items() if issubclass(shim, OperationStep)} == set(STEPS)
    assert set(shims) == {*STEPS, "decode_image", "decode_mask"}


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if model_folder(p).name in parameter_shims()], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_config_declares_exactly_the_parameters_its_shim_reads(path):
    """Every config (CPU, and GPU variants if any) of a shim that declares its parameters parses
    with those declarations: none missing, none malformed, none it does not read."""
    from retouch.triton.step import deployment_parameters

    shim = parameter_shims()[model_folder(path).name]
    params = deployment_parameters(stub_args(path), shim.PARAMETERS)
    assert set(params) == set(shim.PARAMETERS) == set(load(path).parameters)


def test_a_missing_or_malformed_parameter_fails_the_load_naming_file_and_key(tmp_path):
    from retouch.triton.step import DeploymentError, deployment_parameters

    step = parameter_shims()["upscale_tiles"]
    text = (ROOT / "model_repository/upscale_tiles/config.pbtxt").read_text()
    missing = tmp_path / "missing" / "config.pbtxt"
    missing.parent.mkdir()
    missing.write_text(text.replace('key: "max_chunks_in_flight"', 'key: "max_chunks_in_fligth"'))
    with pytest.raises(DeploymentError, match=r"missing/config.pbtxt: parameters \['max_chunks_in_flight'\] missing"):
        deployment_parameters(stub_args(missing), step.PARAMETERS)
    bad = tmp_path / "bad" / "config.pbtxt"
    bad.parent.mkdir()
    bad.write_text(text.replace('string_value: "64000000"', 'string_value: "64 MP"'))
    with pytest.raises(
        DeploymentError,
        match=r"bad/config.pbtxt: parameter 'max_output_pixels' is '64 MP'; "
        r"it must be a positive integer",
    ):
        deployment_parameters(stub_args(bad), step.PARAMETERS)


@pytest.mark.parametrize("step", ["inpaint_regions", "text_remove"])
def test_the_fill_window_side_is_the_fill_models_side(step):
    """model_size (config.pbtxt, the step's window side) must be the side the fill models are
    exported and evaluated at (retouch.inpaint.MODEL_SIDE): one figure, checked here."""
    from retouch.inpaint import MODEL_SIDE

    config = load(ROOT / "model_repository" / step / "config.pbtxt")
    assert int(config.parameters["model_size"].string_value) == MODEL_SIDE
