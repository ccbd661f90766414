# Source me: puts the venv's python (which the Python backend stub embeds), tritonserver and
# perf_analyzer on PATH, and the libraries they need on LD_LIBRARY_PATH.
RETOUCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RETOUCH_VENV=${RETOUCH_VENV:-$RETOUCH_ROOT/.venv}
_site=$("$RETOUCH_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
_libdir=$("$RETOUCH_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
export PATH="$RETOUCH_VENV/bin:$RETOUCH_ROOT/.triton/bin:$PATH"
export LD_LIBRARY_PATH="$_site/nvidia_pytriton.libs:$RETOUCH_ROOT/.triton/lib:$_libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _site _libdir
