# Sourced by the launch scripts: the interpreter to use. $PYTHON wins; else
# an activated venv's python; else the repo's set-up env (tools/setup_env.py).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "${MMBCSSL_VENV:-$ROOT/.venv}/bin/python" ]; then
        PYTHON="${MMBCSSL_VENV:-$ROOT/.venv}/bin/python"
    else
        PYTHON=python
    fi
fi
