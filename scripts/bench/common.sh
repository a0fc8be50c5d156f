# Shared helpers of scripts/bench-* and scripts/robustness-app; sourced, never run.
# Everything they install goes to Debian's packages (apt) or under .cache/bench/.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH_DIR="$REPO_ROOT/.cache/bench"
BENCH_VENV="$BENCH_DIR/venv"
SKILLCHECK="$REPO_ROOT/target/release/skillcheck"
mkdir -p "$BENCH_DIR"

# The anchors are pinned so that figures from different days compare the same versions.
AGNIX_VERSION="${AGNIX_VERSION:-0.59.3}"
SKILLS_REF_VERSION="${SKILLS_REF_VERSION:-0.1.1}"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# ensure_apt BINARY:PACKAGE ... installs the packages whose binary is missing.
ensure_apt() {
    local pair missing=()
    for pair in "$@"; do
        [[ -x "${pair%%:*}" ]] || have "${pair%%:*}" || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    have apt-get || die "missing ${missing[*]} and no apt-get: install them by hand"
    [[ $EUID -eq 0 ]] || die "installing ${missing[*]} needs root (apt-get); install them by hand"
    log "installing ${missing[*]} with apt-get"
    local opts=(-q -y -o DPkg::Lock::Timeout=300)
    export DEBIAN_FRONTEND=noninteractive
    apt-get "${opts[@]}" install --no-install-recommends "${missing[@]}" >&2 </dev/null \
        || { apt-get "${opts[@]}" update >&2 </dev/null \
             && apt-get "${opts[@]}" install --no-install-recommends "${missing[@]}" >&2 </dev/null; } \
        || die "apt-get install ${missing[*]} failed"
}

# ensure_venv REQUIREMENT ... creates .cache/bench/venv and installs what is not there yet.
ensure_venv() {
    if [[ ! -x "$BENCH_VENV/bin/python" ]]; then
        have python3 || die "python3 not found; install Python 3.11+"
        log "creating $BENCH_VENV"
        python3 -m venv "$BENCH_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    fi
    if ! "$BENCH_VENV/bin/python" - "$@" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    if not req.specifier.contains(version(req.name), prereleases=True):
        sys.exit(1)
EOF
        log "installing $* into $BENCH_VENV"
        "$BENCH_VENV/bin/pip" install -q --disable-pip-version-check packaging "$@" >&2 \
            || die "pip install $* failed"
    fi
}

ensure_skillcheck() {
    have cargo || die "cargo not found; install Rust (rustup) first"
    log "building skillcheck (release)"
    (cd "$REPO_ROOT" && cargo build --release --locked -q -p skillcheck) \
        || die "cargo build --release -p skillcheck failed"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

machine_line() {
    local cpu
    cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    printf '%s, %s cores, %s GiB, %s, load %s\n' "$cpu" "$(nproc)" \
        "$(awk '/MemTotal/ {printf "%d", $2/1048576}' /proc/meminfo)" \
        "$(date -u +%Y-%m-%dT%H:%MZ)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# peak_kb FILE: the "Maximum resident set size" of a `/usr/bin/time -v` report.
peak_kb() { awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$1"; }
