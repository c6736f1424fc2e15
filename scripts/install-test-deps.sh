#!/usr/bin/env bash
# Install and start the servers that the test suite runs against, on Debian 12, as root.
#
# Installs dovecot-imapd, chromium, postgresql and redis-server when they are missing,
# starts PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 when nothing responds
# there, and makes sure the `test` database exists with trust auth for 127.0.0.1.
# Running it again is safe: every step checks first and skips what is already done.
# It never writes to /etc/dovecot because the tests start a private Dovecot from their own
# configuration file (tests/servers.py).
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_BACKUP=""
APT_UPDATED=no

step() {
    printf '==> %s\n' "$*"
}

fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    if [ "$APT_UPDATED" = no ]; then
        step "apt-get update"
        apt-get update -qq >/dev/null || fail "apt-get update failed; run it by hand to see why"
        APT_UPDATED=yes
    fi
    # apt and dpkg print many lines, so they go to a log that is shown only on failure.
    local log
    log=$(mktemp /tmp/install-test-deps.XXXXXX.log)
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        fail "apt-get install $* failed; full output in $log"
    fi
    rm -f "$log"
}

restore_policy_rc() {
    rm -f "$POLICY_RC"
    if [ -n "$POLICY_RC_BACKUP" ]; then
        mv "$POLICY_RC_BACKUP" "$POLICY_RC"
        POLICY_RC_BACKUP=""
    fi
}

install_dovecot() {
    if [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ]; then
        step "dovecot-imapd: already installed"
        return
    fi
    step "dovecot-imapd: installing without starting the system service"

    # invoke-rc.d skips service starts while policy-rc.d exits with 101, so the package does
    # not start the system Dovecot on port 143. An existing policy-rc.d is restored afterwards.
    if [ -e "$POLICY_RC" ] || [ -L "$POLICY_RC" ]; then
        POLICY_RC_BACKUP=$(mktemp "$POLICY_RC.backup.XXXXXX")
        mv -f "$POLICY_RC" "$POLICY_RC_BACKUP"
    fi
    trap restore_policy_rc EXIT
    trap 'restore_policy_rc; exit 130' INT TERM
    printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
    apt_install dovecot-imapd
    restore_policy_rc
    trap - EXIT INT TERM
}

install_chromium() {
    if [ -x /usr/bin/chromium ]; then
        step "chromium: already installed"
        return
    fi
    step "chromium: installing without recommended packages"
    apt_install --no-install-recommends chromium
}

install_postgresql() {
    if command -v pg_ctlcluster >/dev/null && command -v psql >/dev/null \
        && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        step "postgresql: already installed"
        return
    fi
    step "postgresql: installing"
    apt_install postgresql
}

install_redis() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        step "redis-server: already installed"
        return
    fi
    step "redis-server: installing"
    apt_install redis-server
}

pg_as_superuser() {
    # The postgres system user logs in over the Unix socket with peer auth, whatever rules
    # pg_hba.conf contains for TCP connections.
    # The subshell changes to / because the postgres user cannot read root's working directory.
    (cd / && runuser -u postgres -- psql -X -q -tA "$@")
}

pg_over_tcp() {
    # -w: never prompt for a password, so a scram rule fails at once instead of waiting.
    psql -X -q -tA -w -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@"
}

start_postgresql() {
    if pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
        step "postgresql: already accepting connections on $PG_HOST:$PG_PORT"
        return
    fi
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$version" ] || fail "no cluster in /etc/postgresql; run: pg_createcluster --start 15 main"
    step "postgresql: starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && return
        sleep 0.2
    done
    fail "PostgreSQL $version/main did not accept connections on $PG_HOST:$PG_PORT within 10 s; see /var/log/postgresql/"
}

ensure_pg_trust() {
    if pg_over_tcp -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
        step "postgresql: trust auth for postgres@$PG_HOST works"
        return
    fi
    local hba_file
    hba_file=$(pg_as_superuser -c 'SHOW hba_file')
    step "postgresql: adding a trust rule for $PG_HOST to $hba_file"

    # pg_hba.conf applies the first matching line, so the rule goes above Debian's scram line.
    sed -i "1i host all all $PG_HOST/32 trust" "$hba_file"
    pg_as_superuser -c 'SELECT pg_reload_conf()' >/dev/null

    # pg_reload_conf() only signals the server, so the new rule applies a moment later.
    for _ in $(seq 1 25); do
        pg_over_tcp -d postgres -c 'SELECT 1' >/dev/null 2>&1 && return
        sleep 0.2
    done
    fail "connecting as postgres@$PG_HOST:$PG_PORT still fails after adding the trust rule to $hba_file"
}

ensure_pg_database() {
    if [ "$(pg_over_tcp -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'test'")" = 1 ]; then
        step "postgresql: database test exists"
        return
    fi
    step "postgresql: creating database test"
    pg_over_tcp -d postgres -c 'CREATE DATABASE test' >/dev/null
}

redis_answers() {
    [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ]
}

start_redis() {
    if redis_answers; then
        step "redis: already answering PING on $REDIS_HOST:$REDIS_PORT"
        return
    fi
    step "redis: starting on $REDIS_HOST:$REDIS_PORT without persistence"
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no
    for _ in $(seq 1 50); do
        redis_answers && return
        sleep 0.2
    done
    fail "Redis did not answer PING on $REDIS_HOST:$REDIS_PORT within 10 s"
}

main() {
    [ "$(id -u)" -eq 0 ] || fail "run as root: sudo bash $0"
    install_dovecot
    install_chromium
    install_postgresql
    install_redis
    start_postgresql
    ensure_pg_trust
    ensure_pg_database
    start_redis
    step "done: test servers are ready"
}

main "$@"
