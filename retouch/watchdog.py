"""Notice Python-backend stubs that died, so that their model can be reloaded.

Triton 2.51's Python backend does not restart a stub that dies (kill -9, a segfault, the OOM
killer): the stub stays a zombie child of tritonserver, every request routed to that instance
fails with INTERNAL "Stub process ... is not healthy", and model and server readiness stay green.
Reloading the model (explicit model control) starts fresh instances and heals it.

These are the pure parts, unit-tested without Triton: reading tritonserver's stub processes from
/proc, telling a death (a zombie child) from a normal unload (the backend reaps its stubs), and
Triton's failure counters from its metrics text. The watchdog model (model_repository/watchdog)
runs them in a thread and reloads with pb_utils.load_model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

STUB_BINARY = "triton_python_backend_stub"


@dataclass(frozen=True)
class Stub:
    pid: int
    state: str  # /proc/<pid>/stat's state: R, S, D, ..., Z (dead, not reaped)
    model: str | None  # None once dead: a zombie's command line is empty
    instance: str | None
    exit_status: int | None = None  # a zombie's wait status (0: it exited cleanly)


def read_stat(text: str) -> tuple[str, int, int | None]:
    """(state, ppid, wait status) from /proc/<pid>/stat; the command name may hold spaces and
    parentheses. The wait status (field 52, as waitpid reports it) is the last field; it is
    meaningful only for a zombie."""
    fields = text.rpartition(")")[2].split()
    status = int(fields[-1]) if fields[0] == "Z" and len(fields) >= 50 else None
    return fields[0], int(fields[1]), status


def stub_identity(argv: list[str]) -> tuple[str, str] | None:
    """(model, instance) from a stub's command line: <stub> <repo>/<model>/<version>/model.py
    <shm region> <size> <growth> <parent pid> <lib dir> <ipc handle> <instance name> ..."""
    if not argv or not argv[0].endswith(STUB_BINARY) or len(argv) < 9:
        return None
    return Path(argv[1]).parts[-3], argv[8]


def stub_processes(parent: int, proc: Path = Path("/proc")) -> dict[int, Stub]:
    """The Python-backend stubs that are children of `parent` (tritonserver), dead or alive."""
    stubs = {}
    for entry in proc.glob("[0-9]*"):
        try:
            state, ppid, status = read_stat((entry / "stat").read_text())
            if ppid != parent:
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):  # exited meanwhile, or not ours to read
            continue
        identity = stub_identity(argv)
        if identity is None and state != "Z":
            continue  # some other child
        model, instance = identity or (None, None)
        stubs[int(entry.name)] = Stub(int(entry.name), state, model, instance, status)
    return stubs


@dataclass
class StubTracker:
    """Remembers which model each live stub serves, so that when one turns into a zombie (its
    command line gone) the model can be named. A stub that disappears was reaped by the backend:
    a normal unload or reload, not a death. Nor is a zombie that exited cleanly (status 0): that
    is a retired stub caught in the moment before the backend reaps it."""

    known: dict[int, tuple[str, str]] = field(default_factory=dict)

    def observe(self, stubs: dict[int, Stub]) -> list[tuple[int, str, str]]:
        """Update from a scan; returns (pid, model, instance) of every stub that died since."""
        for pid, stub in stubs.items():
            if stub.state != "Z" and stub.model is not None:
                self.known[pid] = (stub.model, stub.instance)
        died = []
        for pid, (model, instance) in list(self.known.items()):
            stub = stubs.get(pid)
            if stub is None:
                del self.known[pid]
            elif stub.state == "Z":
                if stub.exit_status != 0:
                    died.append((pid, model, instance))
                del self.known[pid]
        return died


SAMPLE = re.compile(r"^(nv_inference_request_failure|retouch_edits_total)\{([^}]*)\}\s+(\S+)", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


# Triton 2.51 adds 2 to nv_inference_request_failure{model=<ensemble>} for each failed ensemble
# request (measured: one INVALID_ARGUMENT upscale adds 2, and a composing model's own count adds 1).
ENSEMBLE_FAILURE_INCREMENT = 2.0


def unexplained_failures(metrics_text: str, increment: float = ENSEMBLE_FAILURE_INCREMENT) -> dict[str, float]:
    """Per operation (ensemble): the requests Triton counts as failed (nv_inference_request_failure,
    every reason but CANCELED, over `increment` per request) less those retouch's steps counted
    themselves as rejected or failed (retouch_edits_total). What is left failed before any retouch
    code ran: at a dead stub, for one."""
    totals: dict[str, float] = {}
    for name, labels, value in SAMPLE.findall(metrics_text):
        tags = dict(LABEL.findall(labels))
        if name == "nv_inference_request_failure" and tags.get("reason") != "CANCELED":
            key, sign = tags.get("model", ""), 1.0 / increment
        elif name == "retouch_edits_total" and tags.get("outcome") in ("rejected", "failed"):
            key, sign = tags.get("operation", ""), -1.0
        else:
            continue
        totals[key] = totals.get(key, 0.0) + sign * float(value)
    return totals


def server_urls(server_argv: list[str]) -> dict[str, str]:
    """Triton's HTTP and metrics endpoints from its own command line (absent when switched off)."""
    options = dict(a[2:].split("=", 1) for a in server_argv if a.startswith("--") and "=" in a)
    urls = {}
    for kind, default_port, path in (("http", "8000", ""), ("metrics", "8002", "/metrics")):
        if options.get(f"allow-{kind}", "true") == "false":
            continue
        host = options.get(f"{kind}-address", "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        urls[kind] = f"http://{host}:{options.get(f'{kind}-port', default_port)}{path}"
    return urls
