# Sourced by scripts/run and scripts/test: make sure uv and the project's locked environment exist.
ensure_python_env() {
    if ! command -v uv >/dev/null 2>&1; then
        echo "[setup] installing uv" >&2
        python3 -m pip install --quiet uv >&2 || python3 -m pip install --quiet --break-system-packages uv >&2
    fi
    command -v uv >/dev/null 2>&1 || export PATH="$HOME/.local/bin:$PATH"
    echo "[setup] uv sync" >&2
    uv sync --frozen --quiet >&2
}
