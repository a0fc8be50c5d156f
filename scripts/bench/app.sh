# Sourced by scripts/bench-app and scripts/robustness-app (after common.sh): a generated
# Tier 1 project in .cache/bench/app/, installed in its own venv, and a Redis to run it on.

APP_NAME="forge-bench"
APP_PKG="forge_bench"
APP_DIR="$BENCH_DIR/app/$APP_NAME"
# The options of the app under test: every middleware (JWT auth, Redis rate limit, request
# logging, Prometheus metrics) with the fewest services: no database, ARQ queue on Redis.
APP_FLAGS=(--tier 1 --name "$APP_NAME" --db none --auth jwt --agent custom --queue arq --deploy compose)

# ensure_app: scaffolds and installs the project unless the scaffold has not changed since.
ensure_app() {
    local skill="$REPO_ROOT/skill/fastapi-forge" stamp
    stamp="$( (cd "$skill" && find scripts/scaffold_fastapi.py assets/scaffold/layers -type f \
        -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum; echo "${APP_FLAGS[*]}") \
        | sha256sum | cut -c1-16)"
    if [[ -x "$APP_DIR/.venv/bin/python" && "$(cat "$APP_DIR/.stamp" 2>/dev/null)" == "$stamp" ]]; then
        return 0
    fi
    ensure_venv "uv>=0.5"
    log "scaffolding $APP_NAME (${APP_FLAGS[*]}) into $APP_DIR"
    rm -rf "$APP_DIR"
    mkdir -p "$(dirname "$APP_DIR")"
    python3 "$skill/scripts/scaffold_fastapi.py" "${APP_FLAGS[@]}" --out "$APP_DIR" >&2 \
        || die "the scaffold failed (skill/fastapi-forge/scripts/scaffold_fastapi.py)"
    log "installing $APP_NAME into $APP_DIR/.venv (uv)"
    export UV_CACHE_DIR="$REPO_ROOT/.cache/uv" UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
    "$BENCH_VENV/bin/uv" venv -q --python "$(command -v python3)" "$APP_DIR/.venv" >&2 \
        || die "uv venv failed"
    "$BENCH_VENV/bin/uv" pip install -q --python "$APP_DIR/.venv/bin/python" -e "$APP_DIR" >&2 \
        || die "installing the generated project failed"
    echo "$stamp" >"$APP_DIR/.stamp"
}

# ensure_redis: REDIS_URL for the app; the caller's FORGE_REDIS_URL, else a throwaway Redis
# (and PostgreSQL, unused) from scripts/services, stopped when the script exits.
ensure_redis() {
    if [[ -z "${FORGE_REDIS_URL:-}" ]]; then
        local exports
        exports="$("$REPO_ROOT/scripts/services" start)" || die "scripts/services start failed"
        eval "$exports"
        trap '"$REPO_ROOT/scripts/services" stop >/dev/null 2>&1 || true' EXIT
    fi
    if [[ "$FORGE_REDIS_URL" =~ ^redis://[^/]+/?$ ]]; then
        export REDIS_URL="${FORGE_REDIS_URL%/}/0"
    else
        export REDIS_URL="$FORGE_REDIS_URL"
    fi
}

# ensure_template_versions: prints the interpreter of a venv holding the server stack of
# full-stack-fastapi-template (scripts/bench/template-versions.txt), for --versions.
ensure_template_versions() {
    local venv="$BENCH_DIR/template-versions" pins="$REPO_ROOT/scripts/bench/template-versions.txt"
    local stamp
    stamp="$(sha256sum "$pins" | cut -c1-16)"
    if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]]; then
        ensure_venv "uv>=0.5"
        log "installing the template's versions into $venv (uv)"
        export UV_CACHE_DIR="$REPO_ROOT/.cache/uv" UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
        rm -rf "$venv"
        "$BENCH_VENV/bin/uv" venv -q --python "$(command -v python3)" "$venv" >&2 \
            || die "uv venv failed"
        "$BENCH_VENV/bin/uv" pip install -q --python "$venv/bin/python" -r "$pins" >&2 \
            || die "installing $pins failed"
        echo "$stamp" >"$venv/.stamp"
    fi
    echo "$venv/bin/python"
}
