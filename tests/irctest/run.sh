#!/usr/bin/env bash
# Runs the irctest conformance suite (github.com/progval/irctest) against a
# release build of chatd, through the shared runner (IRCTEST_RUN, default
# ../shared/irctest/run.sh from the project root), and prints its counts.
#
#   tests/irctest/run.sh [fresh|shared] [extra pytest args, e.g. -k Whois]
#
# fresh (default): a new chatd for every test, as irctest does for the
#   servers it spawns itself (chatd_fresh.py restarts it).
# shared: one chatd for the whole run (state one test leaves can leak into
#   the next one).
# Results: OUT (default /tmp/irctest-chatd)/external-PORT.{xml,log,summary}.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODE="${1:-fresh}"; [ $# -gt 0 ] && shift
RUNNER="${IRCTEST_RUN:-$ROOT/../shared/irctest/run.sh}"
[ -x "$RUNNER" ] || { echo "irctest runner not found: $RUNNER" >&2; exit 2; }

(cd "$ROOT" && cargo build --release --quiet --bin chatd)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/chatd"
# Two free loopback ports.
read -r LINE_PORT IRC_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
EXTRA="--db :memory: --rate off --max-per-ip 0 --lobby off --name My.Little.Server
       --log-level warn --oper operuser:operpassword"

export OUT="${OUT:-/tmp/irctest-chatd}" JOBS=0
# shellcheck disable=SC2086
start() { "$BIN" --listen "127.0.0.1:$LINE_PORT" --irc-listen "127.0.0.1:$IRC_PORT" $EXTRA & }
case "$MODE" in
  fresh)
    start
    export CHATD_FIRST_PID=$!
    sleep 0.5
    export CHATD_BIN="$BIN" CHATD_LINE_PORT="$LINE_PORT" CHATD_IRC_PORT="$IRC_PORT" \
           CHATD_EXTRA="$EXTRA" PYTHONPATH="$ROOT/tests/irctest"
    exec "$RUNNER" external 127.0.0.1 "$IRC_PORT" -p chatd_fresh "$@"
    ;;
  shared)
    start
    PID=$!
    trap 'kill $PID 2>/dev/null || true' EXIT
    sleep 0.5
    "$RUNNER" external 127.0.0.1 "$IRC_PORT" "$@"
    ;;
  *) echo "usage: $0 [fresh|shared] [pytest args]" >&2; exit 2 ;;
esac
