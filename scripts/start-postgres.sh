#!/usr/bin/env bash
# Starts a throw-away PostgreSQL (Debian's postgresql-15) on 127.0.0.1 at a free port, as the
# postgres user (initdb and postgres refuse to run as root), and prints its URL on stdout.
# Usage: URL=$(scripts/start-postgres.sh [DATA_DIR]); stop with: pg_ctl -D DATA_DIR stop
set -euo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "start-postgres: PostgreSQL server binaries not found (apt-get install -y postgresql-15)" >&2
    exit 1
fi
DATA=${1:-$(mktemp -d /tmp/arbiter-pg.XXXXXX)}
mkdir -p "$DATA"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    chown -R postgres:postgres "$DATA"
    RUN_AS=(runuser -u postgres --)
fi
"${RUN_AS[@]}" "$BIN/initdb" -D "$DATA/data" -U postgres -A trust --no-sync >"$DATA/initdb.log" 2>&1 \
    || { cat "$DATA/initdb.log" >&2; exit 1; }
# fsync stays on: the durability tests mean something on PostgreSQL too.
"${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DATA/data" -l "$DATA/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $PORT -k $DATA -c max_connections=200" start >/dev/null \
    || { cat "$DATA/server.log" >&2; exit 1; }
echo "postgres://postgres@127.0.0.1:$PORT/postgres"
