# Shared by bin/serve and bin/test: a venv with the pinned requirements, and local Postgres/Redis.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_venv() {
    local stamp="$ROOT/.venv/.requirements.sha256"
    local want
    want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
    if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
        log "creating virtualenv in .venv"
        "$PYTHON" -m venv "$ROOT/.venv"
    fi
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
        log "installing requirements.txt"
        "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
        "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
        echo "$want" >"$stamp"
    fi
    # shellcheck disable=SC1091
    source "$ROOT/.venv/bin/activate"
}

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == "PONG" ]]; }

wait_for() {
    local what="$1" check="$2"
    for _ in $(seq 1 60); do
        if "$check"; then return 0; fi
        sleep 0.5
    done
    log "$what did not come up"
    return 1
}

ensure_postgres() {
    postgres_up && return 0
    if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]] && [[ -n "$(ls /etc/postgresql)" ]]; then
        log "starting the machine's PostgreSQL cluster"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    fi
    if ! postgres_up; then
        local bindir
        bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
        [[ -n "$bindir" ]] || { log "no PostgreSQL binaries found; install postgresql"; return 1; }
        log "starting a local PostgreSQL in .run/postgres"
        mkdir -p "$RUN_DIR"
        local as=()
        if [[ "$(id -u)" == 0 ]]; then
            chown postgres "$RUN_DIR" 2>/dev/null || true
            as=(runuser -u postgres --)
        fi
        if [[ ! -f "$RUN_DIR/postgres/PG_VERSION" ]]; then
            "${as[@]}" "$bindir/initdb" -D "$RUN_DIR/postgres" -U postgres --auth=trust >/dev/null
        fi
        "${as[@]}" "$bindir/pg_ctl" -D "$RUN_DIR/postgres" -l "$RUN_DIR/postgres.log" \
            -o "-h 127.0.0.1 -p 5432 -k /tmp" start >/dev/null
    fi
    wait_for PostgreSQL postgres_up
}

ensure_redis() {
    redis_up && return 0
    log "starting a local Redis (nothing kept on disk)"
    mkdir -p "$RUN_DIR"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log"
    wait_for Redis redis_up
}

ensure_database() {
    local name="$1"
    if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$name'" | grep -q 1; then
        log "creating database $name"
        createdb -h 127.0.0.1 -U postgres "$name"
    fi
}

# --- clock: RabbitMQ, the optional broker (bin/test-rabbitmq) ---
rabbitmq_up() { rabbitmqctl -q status >/dev/null 2>&1; }

ensure_rabbitmq() {
    rabbitmq_up && return 0
    if ! command -v rabbitmq-server >/dev/null && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        log "installing rabbitmq-server"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    command -v rabbitmq-server >/dev/null || { log "no rabbitmq-server found; install rabbitmq-server"; return 1; }
    log "starting the machine's RabbitMQ"
    rabbitmq-server -detached
    for _ in $(seq 1 120); do
        if rabbitmqctl -q await_startup >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    log "RabbitMQ did not come up"
    return 1
}

# --- headless Chromium and its driver for the browser tests (inbox page, admin screenshots) ---
ensure_chromium() {
    command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        log "installing chromium and chromium-driver"
        apt-get update -qq -o DPkg::Lock::Timeout=300 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
                chromium chromium-driver >/dev/null
    fi
    command -v chromedriver >/dev/null || { log "no chromium/chromedriver found; install chromium chromium-driver"; return 1; }
}
