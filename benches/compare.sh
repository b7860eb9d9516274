#!/usr/bin/env bash
# Runs chat-bench against chatd and the IRC peers in one go and prints the
# medians of RUNS runs per scenario (docs/performance.md explains each).
#
#   benches/compare.sh              # chatd (memory and file db; over IRC with no db and a file db) and ngircd
#   KINDS="chatd-irc inspircd" benches/compare.sh   # some servers only
#   PEERS="ngircd inspircd" RUNS=5 benches/compare.sh
#   ONLY="fanout-1x200 pairs-500" benches/compare.sh   # some scenarios only
#   ONLY="fanout-1x200-w8 fanout-1x200-w512" WINDOWS="8 512" benches/compare.sh
#
# Needs a release build (cargo build --release), python3, and for the peers
# Debian's ngircd / inspircd and ../shared/peers/start.sh (see its README).
# Every server is fresh per run, listens on 127.0.0.1 only, and is stopped by
# its pid afterwards. Every chat-bench run is capped by --duration.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
PEERS=${PEERS:-ngircd}
PEERS_DIR=${PEERS_DIR:-../shared/peers}
BIN=target/release
PORT=${PORT:-17070}
OUT=${OUT:-/tmp/chatd-compare}
mkdir -p "$OUT"
[ -x "$BIN/chatd" ] && [ -x "$BIN/chat-bench" ] || { echo "cargo build --release first" >&2; exit 1; }

# The scenarios: name, then chat-bench arguments.
SCENARIOS=(
  "fanout-1x200|fanout --clients 200 --rooms 1 --senders 10 --messages 1000 --window 32 --size 80"
  "fanout-20x50|fanout --clients 1000 --rooms 20 --senders 40 --messages 500 --window 32 --size 80"
  "fanout-fixed-40k|fanout --clients 200 --rooms 1 --senders 10 --messages 1000 --window 32 --size 80 --rate 202"
  "pairs-500|pairs --clients 500 --messages 200"
  "connect-2000|connect --clients 2000 --concurrency 10"
  "connect-5000-c10|connect --clients 5000 --concurrency 10"
  "connect-5000|connect --clients 5000 --concurrency 100"
)
# The window curve: fanout-1x200 at each of WINDOWS (in flight per sender).
for w in ${WINDOWS:-8 128 512}; do
  SCENARIOS+=("fanout-1x200-w$w|fanout --clients 200 --rooms 1 --senders 10 --messages 1000 --window $w --size 80")
done

start_chatd() { # db [irc]: with irc, IRC is on PORT (the line protocol moves to PORT+2)
  local listen=(--listen "127.0.0.1:$PORT" --irc-listen off)
  if [ "${2:-}" = irc ]; then
    listen=(--listen "127.0.0.1:$((PORT + 2))" --irc-listen "127.0.0.1:$PORT")
  fi
  "$BIN/chatd" "${listen[@]}" --echo-listen "127.0.0.1:$((PORT + 1))" --db "$1" \
    --rate off --max-per-ip 0 --lobby off --log-level warn >/dev/null 2>>"$OUT/chatd.log" &
  echo $!
}

# Stops a server started by start_chatd and waits (bounded) until it is gone,
# so the next run never meets it on the same port.
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 200); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -9 "$1" 2>/dev/null || true
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  return 1
}

# One run: server kind, scenario args; prints the JSON line.
run_one() {
  local kind=$1 args=$2 pid dialect=line db="" irc=""
  case $kind in
    chatd-memory) db=":memory:" ;;
    chatd-file) db="$OUT/bench.db"; rm -f "$OUT"/bench.db* ;;
    chatd-irc) db="off"; dialect=irc; irc=irc ;;
    chatd-irc-file) db="$OUT/bench.db"; rm -f "$OUT"/bench.db*; dialect=irc; irc=irc ;;
    *) dialect=irc ;;
  esac
  if [ -n "$db" ]; then
    pid=$(start_chatd "$db" $irc)
  else
    pid=$("$PEERS_DIR/start.sh" "$kind" "$PORT" | tail -n 1)
  fi
  wait_port "$PORT"
  local extra=""
  case $args in connect*) extra="--server-pid $pid" ;; esac
  # shellcheck disable=SC2086
  "$BIN/chat-bench" $args $extra --dialect "$dialect" --server "127.0.0.1:$PORT" \
    --duration 120 --json --quiet 2>>"$OUT/bench.log" || true
  if [ -n "$db" ]; then
    stop_pid "$pid"
  else
    "$PEERS_DIR/stop.sh" "$kind" "$PORT" >/dev/null 2>&1 || true
  fi
}

KINDS=${KINDS:-chatd-memory chatd-file chatd-irc chatd-irc-file $PEERS}
: >"$OUT/results.jsonl"
ONLY=${ONLY:-}
# Runs are interleaved (run 1 of every server, then run 2, ...), so a slow
# spell of this shared machine hits all servers alike instead of one.
for entry in "${SCENARIOS[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  for run in $(seq "$RUNS"); do
    for kind in $KINDS; do
      line=$(run_one "$kind" "$args")
      printf '{"scenario_name":"%s","server":"%s","run":%s,"result":%s}\n' \
        "$name" "$kind" "$run" "${line:-null}" >>"$OUT/results.jsonl"
    done
  done
done
# The echo floor: chatd only.
for run in $(seq "$RUNS"); do
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" echo-200 "* ]]; then break; fi
  pid=$(start_chatd ":memory:")
  wait_port "$((PORT + 1))"
  line=$("$BIN/chat-bench" echo --server "127.0.0.1:$((PORT + 1))" --clients 200 --messages 1000 \
    --duration 120 --json --quiet 2>>"$OUT/bench.log" || true)
  stop_pid "$pid"
  printf '{"scenario_name":"echo-200","server":"chatd-memory","run":%s,"result":%s}\n' \
    "$run" "${line:-null}" >>"$OUT/results.jsonl"
done

python3 - "$OUT/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = {
    "fanout": ("deliveries_per_s", "latency_us"),
    "pairs": ("round_trips_per_s", "latency_us"),
    "echo": ("round_trips_per_s", "latency_us"),
    "connect": ("logins_per_s", None),
}
table = {}
for r in rows:
    res = r["result"]
    if not res:
        table.setdefault((r["scenario_name"], r["server"]), []).append(None)
        continue
    rate_key, lat_key = keys[res["scenario"]]
    bad = res.get("lost", 0) + res.get("duplicated", 0) + res.get("reordered", 0)
    item = {
        "rate": res.get(rate_key),
        "p50": res[lat_key]["p50"] / 1000 if lat_key else None,
        "p99": res[lat_key]["p99"] / 1000 if lat_key else None,
        "rss_kib": res["rss_per_conn_bytes"] / 1024 if res.get("rss_per_conn_bytes") is not None else None,
        "ok": res.get("ok") and bad == 0,
    }
    table.setdefault((r["scenario_name"], r["server"]), []).append(item)
print(f"{'scenario':18} {'server':15} {'rate (median)':>14} {'p50 ms':>8} {'p99 ms':>8} {'RSS/conn KiB':>13}  runs ok")
for (name, server), items in table.items():
    good = [i for i in items if i and i["ok"]]
    med = lambda k: statistics.median([i[k] for i in good if i[k] is not None]) if any(i[k] is not None for i in good) else float("nan")
    print(f"{name:18} {server:15} {med('rate'):14.0f} {med('p50'):8.2f} {med('p99'):8.2f} {med('rss_kib'):13.2f}  {len(good)}/{len(items)}")
EOF
