"""Every config.pbtxt (CPU and GPU) parses into Triton's ModelConfig proto and is consistent."""

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted([*ROOT.glob("model_repository/*/config.pbtxt"), *ROOT.glob("model_repository/*/configs/*.pbtxt"),
                  *ROOT.glob("ensembles/*/config.pbtxt")])


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
        assert [(i.name, i.data_type, list(i.dims)) for i in cpu.input] == \
               [(i.name, i.data_type, list(i.dims)) for i in g.input]
        assert [(o.name, o.data_type, list(o.dims)) for o in cpu.output] == \
               [(o.name, o.data_type, list(o.dims)) for o in g.output]
        assert cpu.max_batch_size == g.max_batch_size


def test_every_model_has_a_tracked_version_folder():
    """Git does not keep empty folders: a model whose 1/ holds no tracked file fails to load on a
    fresh clone ("at least one version must be available")."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    versioned = {Path(p).parts[1] for p in tracked if len(Path(p).parts) > 3 and Path(p).parts[2] == "1"
                 and Path(p).parts[0] in ("model_repository", "ensembles")}
    folders = {p.parent.name for p in ROOT.glob("*/*/config.pbtxt") if p.parent.parent.name in
               ("model_repository", "ensembles")}
    assert folders - versioned == set()
