#!/usr/bin/env bash
# Orrery's benchmark: the same loads against Orrery (one worker), Node ws and
# libwebsockets, each server pinned to one core and the generator to another,
# servers alternating within the run; prints the issue's table with ratios to
# libwebsockets. See bench/README.md.
#
#   bench/run.sh                 the table (about 3 minutes with the defaults)
#   BENCH_LOADS=fanout bench/run.sh   group fan-out: Orrery with 1 and 2 workers
#                                and Node ws, 10,000 members (about 1-2 minutes)
#   BENCH_LOADS=lua bench/run.sh      Lua gears against C gears in Orrery (one worker,
#                                both kinds loaded): closed loop, flood, idle RSS,
#                                fan-out published from Lua (about 2 minutes)
#   BENCH_LOADS=deflate bench/run.sh  permessage-deflate: 1 KiB JSON-like text, closed
#                                loop and flood against libwebsockets and Node ws
#                                with their deflate on; Orrery's fan-out to 10,000
#                                members with and without deflate (about 3 minutes)
#   BENCH_LOADS=cluster bench/run.sh  Redis and 3 Orrery nodes: cross-node sends
#                                to unique names, group fan-out over 3 nodes
#                                (about 1 minute; needs redis-server)
#   bench/run.sh gen-limits      what orr-loadgen itself can do, against a trivial sink
#
# Environment:
#   BENCH_SECONDS  measured seconds per load (5; floods are capped at 10)
#   BENCH_ROUNDS   repeat every load this many times, report the median (1)
#   BENCH_SERVERS  which servers, in order (orrery ws lws); for the fanout load
#                  orrery means Orrery with 1 and with 2 workers, ws the Node ws
#                  fan-out peer, and lws has no fan-out peer
#   BENCH_LOADS    which loads (closed100 closed1000 flood16 flood1k idle rate rate-burst;
#                  fanout, lua, deflate and cluster on request)
#   BENCH_IDLE_CONNS  connections held for the RSS figure (10000)
#   BENCH_FANOUT_MEMBERS  group members in the fanout load (10000)
#   BENCH_FANOUT_WINDOW   publications in flight in its sustained phase (8)
#   BENCH_FANOUT_LAT_PUBS publications sent one at a time for its latency (100)
#   BENCH_SERVER_CPU, BENCH_GEN_CPU  the two cores (0 and 1)
#   BENCH_CLUSTER_PAIRS, BENCH_CLUSTER_WINDOW  cluster load: sender/receiver
#                  pairs and sends in flight per pair (100, 32)
#   BENCH_CLUSTER_CPUS  cluster load: where each process runs
#                  ("n1=0 n2=1 n3=0 redis=1 gen=1"; "all" = 0,1)
#   BENCH_CLUSTER_CASES  cluster load: which measurements
#                  (xsend xsend-light xsend-local xsend-single fanout3)
#   BENCH_PARK_MS  cluster load: park_ms of every node (0: parking off, the default)
#   BUILD          build directory (build); results go to bench/results/<time>/
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SECS=${BENCH_SECONDS:-5}
FLOOD_SECS=$(awk -v s="$SECS" 'BEGIN { print (s > 10 ? 10 : s) }')
ROUNDS=${BENCH_ROUNDS:-1}
SERVERS=${BENCH_SERVERS:-orrery ws lws}
LOADS=${BENCH_LOADS:-closed100 closed1000 flood16 flood1k idle rate rate-burst}
CL_PAIRS=${BENCH_CLUSTER_PAIRS:-100}
CL_WINDOW=${BENCH_CLUSTER_WINDOW:-32}
CL_CPUS=${BENCH_CLUSTER_CPUS:-n1=0 n2=1 n3=0 redis=1 gen=1}
CL_CASES=${BENCH_CLUSTER_CASES:-xsend xsend-light xsend-local xsend-single fanout3}
PARK_MS=${BENCH_PARK_MS:-0}
CL_TARGET=100000 # the issue's target: cross-node sends per second
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
FANOUT_MEMBERS=${BENCH_FANOUT_MEMBERS:-10000}
FANOUT_WINDOW=${BENCH_FANOUT_WINDOW:-8}
FANOUT_LAT_PUBS=${BENCH_FANOUT_LAT_PUBS:-100}
SCPU=${BENCH_SERVER_CPU:-0}
GCPU=${BENCH_GEN_CPU:-1}
OUT=${BENCH_OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
TOOLS=$BUILD/bench-tools

# orrery2 (Orrery with 2 workers) and wsfan (the Node ws fan-out peer) serve
# the fanout load only.
# luac and lua (the lua load only): Orrery with one worker and the same gears
# (C and Lua), driven through the C gears (echo, testgear) or their Lua twins
# (bench/gears/luaecho.lua, luatestgear).
# wsz and lwsz (the deflate load only): Node ws and libwebsockets with their
# permessage-deflate on.
declare -A PORT=([orrery]=19101 [ws]=19102 [lws]=19103 [orrery2]=19104 [wsfan]=19105 [sink]=19109
    [luac]=19107 [lua]=19108 [wsz]=19110 [lwsz]=19111)
declare -A NAME=([orrery]="Orrery" [ws]="Node ws" [lws]="libwebsockets" [orrery2]="Orrery"
    [wsfan]="Node ws" [sink]="echo_sink" [luac]="C gear" [lua]="Lua gear" [wsz]="Node ws"
    [lwsz]="libwebsockets")
declare -A WORKERS=([orrery]=1 [ws]=1 [lws]=1 [orrery2]=2 [wsfan]=1 [sink]=1 [luac]=1 [lua]=1
    [wsz]=1 [lwsz]=1)
DEFLATE_LOADS="zclosed zflood"
LUA_LOADS="closed100 flood16 idle fanout"
# A/B: BENCH_ORRERY_B=/path/to/another/orrery adds server orreryB (one worker,
# port 19106), run like Orrery in every load it is listed in (BENCH_SERVERS;
# in the fanout load with one worker). bench/ab.sh builds one from a commit.
ORRERY_B=${BENCH_ORRERY_B:-}
if [ -n "$ORRERY_B" ]; then
    PORT[orreryB]=19106
    NAME[orreryB]="Orrery B"
    NAME[orrery]="Orrery A"
    NAME[orrery2]="Orrery A"
    WORKERS[orreryB]=1
fi

say() { printf '%s\n' "$*" >&2; }
# The loads of the echo table (fanout and cluster have tables of their own).
echo_loads() { echo " $LOADS " | sed 's/ fanout / /g; s/ cluster / /g; s/ lua / /g; s/ deflate / /g; s/^ *//; s/ *$//'; }
die() { say "bench: $*"; exit 1; }

# ---- cleanup: every process this script starts is in PIDS -------------------
PIDS=()
CL_DIR= # the cluster load's Redis socket directory
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    [ -z "$CL_DIR" ] || rm -rf "$CL_DIR"
}
# A process that has been waited for leaves the list: its PID may be reused.
forget() { # forget PID
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools -------------------------------------------------------------------
# Built here with cc rather than taken from CMake, so that the bench does not
# depend on the state of the rest of the tree.
stale() { # stale TARGET SOURCES...: true if TARGET is missing or older than a source
    local t=$1 s
    shift
    [ -x "$t" ] || return 0
    for s in "$@"; do [ "$s" -nt "$t" ] && return 0; done
    return 1
}

build_tools() {
    mkdir -p "$TOOLS" "$BUILD/bench-peers"
    if stale "$TOOLS/orr-loadgen" "$ROOT"/bench/loadgen*.c "$ROOT/bench/loadgen.h"; then
        say "bench: building orr-loadgen"
        cc -std=gnu17 -O2 -g -Wall -Wextra -o "$TOOLS/orr-loadgen" "$ROOT"/bench/loadgen*.c \
            -lpthread -lm -lssl -lcrypto -lz
    fi
    LOADGEN=$TOOLS/orr-loadgen
    if [[ " $SERVERS " == *" lws "* && ( -n "$(echo_loads)" || " $LOADS " == *" deflate "* ) ]] &&
        stale "$BUILD/bench-peers/lws_echo" "$ROOT/bench/peers/lws-echo/lws_echo.c"; then
        say "bench: building the libwebsockets peer"
        # shellcheck disable=SC2046
        cc -O2 -Wall -Wextra -o "$BUILD/bench-peers/lws_echo" \
            "$ROOT/bench/peers/lws-echo/lws_echo.c" $(pkg-config --cflags --libs libwebsockets)
    fi
    if [[ " $SERVERS " == *" ws "* && ( -n "$(echo_loads)" || " $LOADS " == *" deflate "* ) ]] &&
        [ ! -d "$ROOT/bench/peers/ws-echo/node_modules/ws" ]; then
        say "bench: npm ci in bench/peers/ws-echo"
        (cd "$ROOT/bench/peers/ws-echo" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
    if [[ " $SERVERS " == *" ws "* && " $LOADS " == *" fanout "* ]] &&
        [ ! -d "$ROOT/bench/peers/ws-fanout/node_modules/ws" ]; then
        say "bench: npm ci in bench/peers/ws-fanout"
        (cd "$ROOT/bench/peers/ws-fanout" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
    if [[ " $SERVERS " == *" orrery "* ]] && [ ! -x "$BUILD/orrery" ]; then
        say "bench: $BUILD/orrery is not built; leaving Orrery out (run 'make bench')"
        SERVERS=$(echo " $SERVERS " | sed 's/ orrery / /; s/^ *//; s/ *$//')
    fi
}

build_sink() {
    if stale "$TOOLS/echo_sink" "$ROOT/bench/tools/echo_sink.c"; then
        cc -std=gnu17 -O2 -Wall -Wextra -o "$TOOLS/echo_sink" "$ROOT/bench/tools/echo_sink.c" -lcrypto
    fi
}

# Ten thousand held connections need ten thousand descriptors in the server
# and in the generator; both inherit this limit.
raise_nofile() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local n
    n=$(ulimit -n)
    if [ "$n" != unlimited ] && [ "$n" -lt $((IDLE_CONNS + 100)) ]; then
        say "bench: ulimit -n is $n; holding $((n - 200)) idle connections instead of $IDLE_CONNS"
        IDLE_CONNS=$((n - 200))
    fi
    if [ "$n" != unlimited ] && [ "$n" -lt $((FANOUT_MEMBERS + 100)) ]; then
        say "bench: ulimit -n is $n; $((n - 200)) fanout members instead of $FANOUT_MEMBERS"
        FANOUT_MEMBERS=$((n - 200))
    fi
}

# ---- servers -------------------------------------------------------------------
listening() { # listening PORT: a LISTEN socket on 127.0.0.1:PORT, seen without connecting
    local hex
    hex=$(printf '%04X' "$1")
    grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp
}

# Orrery's config for a load. A pool (gear:echo, gear:testgear) allows 100
# connections per node by default, far fewer than the idle, closed1000, rate
# and fanout loads open: the top-level ws_max_connections lifts that for every
# pool, and the fanout load names testgear's pool as well. Its members sit
# idle (they only receive), hence the long idle_timeout_ms. A build of Orrery
# without pools yet rejects these keys, and start_server then leaves them out
# (such a build has no pool limit either).
ORR_POOLS=1
orrery_config() { # orrery_config SERVER LOAD
    local extra= pool=testgear
    [[ $2 != *fanout ]] || extra=', "idle_timeout_ms": 600000'
    case $1 in luac | lua)
        extra="$extra, \"gears_dir\": \"$OUT/lua-gears\""
        [ "$1" = luac ] || pool=luatestgear
        ;;
    esac
    if [ "$ORR_POOLS" = 1 ]; then
        extra="$extra, \"ws_max_connections\": 100000"
        [[ $2 != *fanout ]] ||
            extra="$extra,\n \"pools\": {\"gear:$pool\": {\"ws_max_connections\": $((FANOUT_MEMBERS + 100))}}"
    fi
    printf "{\"workers\": %d$extra}\n" "${WORKERS[$1]}"
}

# The cores a server runs on: its own core, or both for Orrery with 2 workers
# (the generator then runs on both too, see gen_cpus).
server_cpus() { if [ "${WORKERS[$1]}" -gt 1 ]; then echo "$SCPU,$GCPU"; else echo "$SCPU"; fi; }

SPID=
start_server() { # start_server NAME LOGFILE [LOAD]
    local s=$1 log=$2 load=${3:-} port=${PORT[$1]} i cpus
    cpus=$(server_cpus "$s")
    if listening "$port"; then die "port $port is already taken (a server left over?)"; fi
    case $s in
    orrery | orrery2 | orreryB | luac | lua)
        orrery_config "$s" "$load" >"$OUT/$s-$load.json"
        local bin=$BUILD/orrery
        [ "$s" != orreryB ] || bin=$ORRERY_B
        taskset -c "$cpus" "$bin" --listen "127.0.0.1:$port" --config "$OUT/$s-$load.json" \
            >"$log" 2>&1 &
        ;;
    ws | wsz)
        WS_DEFLATE=$([ "$s" = wsz ] && echo 1 || echo 0) PORT=$port HOST=127.0.0.1 \
            taskset -c "$SCPU" node "$ROOT/bench/peers/ws-echo/server.js" >"$log" 2>&1 &
        ;;
    wsfan)
        PORT=$port HOST=127.0.0.1 taskset -c "$SCPU" node "$ROOT/bench/peers/ws-fanout/server.js" \
            >"$log" 2>&1 &
        ;;
    lws | lwsz)
        # shellcheck disable=SC2046
        taskset -c "$SCPU" "$BUILD/bench-peers/lws_echo" -p "$port" \
            $([ "$s" = lwsz ] && echo --deflate) >"$log" 2>&1 &
        ;;
    sink)
        taskset -c "$SCPU" "$TOOLS/echo_sink" -p "$port" "${SINK_ARGS[@]}" >"$log" 2>&1 &
        ;;
    esac
    SPID=$!
    PIDS+=("$SPID")
    for i in $(seq 100); do
        listening "$port" && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    if [[ $s == orrery* && $ORR_POOLS == 1 ]] && grep -q 'pools\|ws_max_connections' "$log"; then
        wait "$SPID" 2>/dev/null || true
        forget "$SPID"
        say "bench: this Orrery does not know pool limits yet ($(grep -m1 'pools\|ws_max_connections' "$log")); starting it without"
        ORR_POOLS=0
        start_server "$@"
        return
    fi
    cat "$log" >&2
    die "${NAME[$s]} did not start listening on port $port"
}

stop_server() { # stop_server: SIGTERM, then SIGKILL after 10 s
    local i
    kill -TERM "$SPID" 2>/dev/null || true
    for i in $(seq 200); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    forget "$SPID"
}

# What the server itself counted, for the flood check: libwebsockets prints
# "rx N tx M" when it stops; Orrery logs frames_received/frames_sent per
# connection (summed here if its log has them). Node ws counts nothing.
server_counts() { # server_counts NAME LOGFILE
    case $1 in
    lws | lwsz | sink) sed -n 's/.*rx \([0-9]*\) tx \([0-9]*\).*/\1 \2/p' "$2" | tail -1 ;;
    orrery | orrery2 | orreryB | luac | lua)
        awk '/DISCONNECTED/ {
                 for (i = 1; i <= NF; i++) {
                     if ($i ~ /^frames_received[=:]/) { split($i, a, /[=:]/); rx += a[2] }
                     if ($i ~ /^frames_sent[=:]/) { split($i, a, /[=:]/); tx += a[2] }
                 }
                 n++
             }
             END { if (n && (rx || tx)) print rx, tx }' "$2"
        ;;
    esac
}

# ---- loads -------------------------------------------------------------------
load_args() {
    case $1 in
    closed100) echo "--mode closed --conns 100 --size 16 --duration $SECS" ;;
    closed1000) echo "--mode closed --conns 1000 --size 16 --duration $SECS" ;;
    flood16) echo "--mode flood --conns 100 --size 16 --duration $FLOOD_SECS" ;;
    flood1k) echo "--mode flood --conns 100 --size 1024 --duration $FLOOD_SECS" ;;
    idle) echo "--mode idle --conns $IDLE_CONNS --hold 0 --settle 1" ;;
    # The rate loads poll without sleeping (--spin): the generator's own wake-ups
    # would otherwise add tens of microseconds to every latency.
    rate) echo "--mode rate --conns 1000 --rate 20 --size 16 --duration $SECS --spin" ;;
    rate-burst) echo "--mode rate --conns 1000 --rate 20 --size 16 --duration $SECS --spin --tick 1" ;;
    # Members join, publications one at a time for latency, then the window
    # with FANOUT_WINDOW in flight; the drain only waits for what is in flight.
    fanout) echo "--mode fanout --conns $FANOUT_MEMBERS --window $FANOUT_WINDOW --lat-pubs $FANOUT_LAT_PUBS --duration $SECS --drain 10 --path /testgear/ws" ;;
    # The deflate load: 1 KiB of JSON-like text, compressed (the client offers
    # no context takeover either way and sends every message compressed); its
    # fan-out publishes 1 KiB too, to members that offer deflate (zfanout) or
    # not (jfanout); jclosed is zclosed uncompressed.
    zclosed) echo "--mode closed --conns 100 --size 1024 --json --deflate --duration $SECS" ;;
    zflood) echo "--mode flood --conns 100 --size 1024 --json --deflate --duration $FLOOD_SECS" ;;
    jclosed) echo "--mode closed --conns 100 --size 1024 --json --duration $SECS" ;;
    zfanout) echo "$(load_args fanout) --pub-size 1024 --deflate" ;;
    jfanout) echo "$(load_args fanout) --pub-size 1024" ;;
    *) die "unknown load '$1'" ;;
    esac
}

# The servers a load runs against: the fanout load has its own (Orrery with
# 1 and 2 workers, the Node ws fan-out peer; libwebsockets has none).
servers_for() { # servers_for LOAD
    local s out=
    if [ "$1" != fanout ]; then
        echo "$SERVERS"
        return
    fi
    for s in $SERVERS; do
        case $s in
        orrery) out="$out orrery orrery2" ;;
        orreryB) out="$out orreryB" ;;
        ws) out="$out wsfan" ;;
        esac
    done
    echo "${out# }"
}

jget() { # jget JSON KEY: a number (or null) from a flat JSON line
    sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"
}

# Busy share of both cores over one second, to warn when the machine is not quiet.
busy_now() { awk '/^cpu /{ print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
quiet_check() {
    local a b
    a=$(busy_now)
    sleep 1
    b=$(busy_now)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y);
        busy = (y[2] > x[2]) ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0; printf "%.0f", busy }'
}

# Runs the generator pinned to its core, in the background so that a signal
# to this script interrupts the wait at once (the trap then cleans up).
GEN_CPUS=
gen() { # gen OUTFILE ERRFILE ARGS...
    local out=$1 err=$2 pid
    shift 2
    taskset -c "${GEN_CPUS:-$GCPU}" "$LOADGEN" "$@" >"$out" 2>"$err" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || true
    forget "$pid"
}

# The Lua twin of a load's path, for server lua.
lua_path() { # lua_path SERVER LOAD
    [ "$1" = lua ] || return 0
    if [ "$2" = fanout ]; then echo "--path /luatestgear/ws"; else echo "--path /luaecho/ws"; fi
}

run_one() { # run_one LOAD SERVER ROUND [TAG]: one measurement, its JSON line appended to results
    local load=$1 s=$2 round=$3 tag=${4:-$1} log base json line counts
    log="$OUT/logs/$tag-$s-$round.log"
    base="$OUT/logs/$tag-$s-$round.gen"
    start_server "$s" "$log" "$load"
    # A server on both cores shares them with the generator.
    GEN_CPUS=$(server_cpus "$s")
    [ "$GEN_CPUS" != "$SCPU" ] || GEN_CPUS=$GCPU
    if [ "$load" = idle ]; then
        # Warm every server up with a few connections first, so that code and
        # library pages touched once (TLS-free SHA-1, parsers, a JIT) are not
        # counted as memory per connection.
        gen "$base.warm" "$base.warm.err" --mode idle --conns 100 --hold 0 --settle 0 --port "${PORT[$s]}"
        sleep 0.5
    fi
    # shellcheck disable=SC2046
    gen "$base.out" "$base.err" $(load_args "$load") $(lua_path "$s" "$load") --port "${PORT[$s]}" --server-pid "$SPID" --label "$s"
    stop_server
    json=$(grep '^{' "$base.out" || true)
    counts=$(server_counts "$s" "$log")
    [ -n "$json" ] || json="{\"mode\":\"$load\",\"server\":\"$s\",\"error\":\"generator failed: $(head -c 200 "$base.err" | tr '\n"' ' ')\"}"
    line="{\"load\":\"$tag\",\"round\":$round,\"workers\":${WORKERS[$s]},\"server_counts\":\"$counts\",${json#\{}"
    echo "$line" >>"$OUT/results.jsonl"
    say "  $(printf '%-10s %-14s' "$load" "${NAME[$s]}$([ "${WORKERS[$s]}" = 1 ] || echo " x${WORKERS[$s]}")") $(grep -v '^[{r]' "$base.out" | head -1)"
    [ -n "$(grep -v '^[{r]' "$base.out" | head -1)" ] || say "             failed: $(head -c 300 "$base.err" | head -2 | tr '\n' ' ')"
    [ -z "$counts" ] || say "             server counted rx/tx: $counts"
}

# ---- the table -----------------------------------------------------------------
figure_key() {
    case $1 in
    closed100 | closed1000) echo msgs_per_server_cpu_s ;;
    flood16 | flood1k) echo msgs_per_s ;;
    idle) echo rss_per_conn_kib ;;
    rate | rate-burst) echo p99_ms ;;
    esac
}

figure_label() {
    case $1 in
    closed100) echo "closed loop, 100 conns, 16 B: msgs per server CPU-second" ;;
    closed1000) echo "closed loop, 1,000 conns, 16 B: msgs per server CPU-second" ;;
    flood16) echo "flood, 100 conns, 16 B: msgs/s" ;;
    flood1k) echo "flood, 100 conns, 1 KiB: msgs/s" ;;
    idle) echo "server RSS per idle upgraded connection ($(printf "%'d" "$IDLE_CONNS") held)" ;;
    rate) echo "p99 latency, 1,000 conns x 20 msgs/s" ;;
    rate-burst) echo "(extra) p99 latency, 1,000 conns x 20 msgs/s, sent in 1 ms bursts" ;;
    esac
}

# A measurement is disturbed when other processes ran more than 10 % of its
# window on the server's and the generator's cores (the generator measures
# this exactly from schedstat); the tables use undisturbed rounds when there
# are any.
disturbed() { # disturbed JSON
    local o d
    o=$(jget "$1" other_procs_cpu_s)
    d=$(jget "$1" duration_s)
    awk -v o="${o:-0}" -v d="${d:-1}" 'BEGIN { exit !(o != "null" && o > 0.1 * d) }'
}

# The lines measured for one load and server, undisturbed ones only if any.
runs() { # runs LOAD SERVER
    local all clean l
    all=$(grep "\"load\":\"$1\"" "$OUT/results.jsonl" | grep "\"server\":\"$2\"" | grep -v '"error"' || true)
    clean=$(while read -r l; do [ -z "$l" ] || disturbed "$l" || echo "$l"; done <<<"$all")
    if [ -n "$clean" ]; then echo "$clean"; else echo "$all"; fi
}

# True if every measurement of a load and server was disturbed.
all_disturbed() { # all_disturbed LOAD SERVER
    local l n=0
    while read -r l; do
        [ -z "$l" ] && continue
        disturbed "$l" || return 1
        n=$((n + 1))
    done <<<"$(runs "$1" "$2")"
    [ "$n" -gt 0 ]
}

# The median over rounds of one figure, or "" when no round produced it.
figure() { # figure LOAD SERVER KEY
    local v
    v=$(runs "$1" "$2" | while read -r l; do [ -z "$l" ] || jget "$l" "$3"; done | grep -v null | sort -g)
    [ -n "$v" ] || return 0
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }' <<<"$v"
}

fmt() { # fmt LOAD VALUE
    [ -n "$2" ] || {
        echo "n/a"
        return
    }
    case $1 in
    closed*) awk -v v="$2" 'BEGIN { printf "%.0f k", v / 1000 }' ;;
    flood*) awk -v v="$2" 'BEGIN { if (v >= 1e6) printf "%.2f M", v / 1e6; else printf "%.0f k", v / 1000 }' ;;
    idle) awk -v v="$2" 'BEGIN { printf "%.2f KiB", v }' ;;
    rate*) awk -v v="$2" 'BEGIN { printf "%.2f ms", v }' ;;
    esac
}

ratio() { # ratio A B
    if [ -z "$1" ] || [ -z "$2" ]; then
        echo "n/a"
    else
        awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2fx", a / b }'
    fi
}

print_table() {
    local load s hdr sep row v lws
    hdr="| figure |"
    sep="|---|"
    for s in $SERVERS; do
        hdr="$hdr ${NAME[$s]} |"
        sep="$sep---|"
    done
    for s in $SERVERS; do
        [ "$s" = lws ] && continue
        hdr="$hdr ${NAME[$s]}/lws |"
        sep="$sep---|"
    done
    if [ -n "$ORRERY_B" ]; then
        hdr="$hdr A/B |"
        sep="$sep---|"
    fi
    echo "$hdr"
    echo "$sep"
    for load in $LOADS; do
        [ "$load" = fanout ] || [ "$load" = cluster ] && continue
        row="| $(figure_label "$load") |"
        for s in $SERVERS; do
            row="$row $(fmt "$load" "$(figure "$load" "$s" "$(figure_key "$load")")")"
            if [ "$load" != idle ] && all_disturbed "$load" "$s"; then row="$row (disturbed)"; fi
            row="$row |"
        done
        lws=$(figure "$load" lws "$(figure_key "$load")")
        for s in $SERVERS; do
            [ "$s" = lws ] && continue
            row="$row $(ratio "$(figure "$load" "$s" "$(figure_key "$load")")" "$lws") |"
        done
        if [ -n "$ORRERY_B" ]; then
            row="$row $(ratio "$(figure "$load" orrery "$(figure_key "$load")")" \
                "$(figure "$load" orreryB "$(figure_key "$load")")") |"
        fi
        echo "$row"
    done
}

num() { # num FORMAT VALUE [SCALE]: VALUE*SCALE in FORMAT, "-" when there is none
    if [ -z "$2" ]; then echo "-"; else awk -v f="$1" -v v="$2" -v k="${3:-1}" 'BEGIN { printf f, v * k }'; fi
}

spin_note() { # spin_note LOAD SERVER: " (x.xx idle spin)" for loads run with --spin
    local v
    v=$(figure "$1" "$2" gen_spin_s)
    [ -z "$v" ] || awk -v v="$v" 'BEGIN { printf " (%.2f of it idle spin)", v }'
}

# Generator CPU, core loads and counts behind every figure, medians over rounds.
print_details() {
    local load s
    echo
    echo "| load | server | msgs/s | p50 ms | p99 ms | server CPU s | server core busy | generator CPU s | generator core busy | other processes' CPU s | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for load in $LOADS; do
        [ "$load" = idle ] || [ "$load" = fanout ] || [ "$load" = cluster ] && continue
        for s in $SERVERS; do
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$load" "${NAME[$s]}" \
                "$(num "%.0f" "$(figure "$load" "$s" msgs_per_s)")" \
                "$(num "%.3f" "$(figure "$load" "$s" p50_ms)")" \
                "$(num "%.3f" "$(figure "$load" "$s" p99_ms)")" \
                "$(num "%.2f" "$(figure "$load" "$s" server_cpu_s)")" \
                "$(num "%.0f%%" "$(figure "$load" "$s" server_core_busy)" 100)" \
                "$(num "%.2f" "$(figure "$load" "$s" gen_cpu_s)")$(spin_note "$load" "$s")" \
                "$(num "%.0f%%" "$(figure "$load" "$s" gen_core_busy)" 100)" \
                "$(num "%.2f" "$(figure "$load" "$s" other_procs_cpu_s)")" \
                "$(figure "$load" "$s" errors)"
        done
    done
}

# The fanout table: one row per server and worker count, with the ratios of
# each row's deliveries/s and deliveries per server CPU-second to Node ws'.
print_fanout() {
    local s node node_cpu v v_cpu
    echo
    echo "Group fan-out: $(printf "%'d" "$FANOUT_MEMBERS") members of one group, one publisher (not a member); latency = from the publish until the last member got it, $FANOUT_LAT_PUBS publications one at a time; deliveries/s and server CPU in the ${SECS} s window with $FANOUT_WINDOW publications in flight. Orrery with 2 workers runs on both cores, sharing them with the generator; the others on core $SCPU, the generator on core $GCPU."
    echo
    echo "| server | workers | deliveries/s | p50 ms | p99 ms | p50 / p99 ms, $FANOUT_WINDOW in flight | server CPU s | deliveries per server CPU-s | generator core busy | deliveries/s vs Node ws | per CPU-s vs Node ws | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    node=$(figure fanout wsfan deliveries_per_s)
    node_cpu=$(figure fanout wsfan msgs_per_server_cpu_s)
    for s in $(servers_for fanout); do
        v=$(figure fanout "$s" deliveries_per_s)
        v_cpu=$(figure fanout "$s" msgs_per_server_cpu_s)
        printf '| %s | %s | %s%s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s |\n' "${NAME[$s]}" "${WORKERS[$s]}" \
            "$(num "%.0f" "$v")" "$(all_disturbed fanout "$s" && echo " (disturbed)")" \
            "$(num "%.1f" "$(figure fanout "$s" p50_ms)")" \
            "$(num "%.1f" "$(figure fanout "$s" p99_ms)")" \
            "$(num "%.1f" "$(figure fanout "$s" load_p50_ms)")" \
            "$(num "%.1f" "$(figure fanout "$s" load_p99_ms)")" \
            "$(num "%.2f" "$(figure fanout "$s" server_cpu_s)")" \
            "$(num "%.0f" "$v_cpu")" \
            "$(num "%.0f%%" "$(figure fanout "$s" gen_core_busy)" 100)" \
            "$(ratio "$v" "$node")" "$(ratio "$v_cpu" "$node_cpu")" \
            "$(fanout_errors "$s")"
    done
}

# Errors of the fanout runs of one server: the generator's count, or the
# reason a run failed.
fanout_errors() { # fanout_errors SERVER
    local l
    l=$(grep '"load":"fanout"' "$OUT/results.jsonl" | grep "\"server\":\"$1\"" | grep '"error"' | head -1)
    if [ -n "$l" ]; then
        sed -n 's/.*"error":"\([^"]*\)".*/\1/p' <<<"$l" | cut -c1-120
    else
        figure fanout "$1" errors
    fi
}

# ---- the cluster load ------------------------------------------------------------
# Redis on a unix socket and three Orrery nodes (one worker each) on ports
# 19201-19203, started afresh for every measurement, each pinned as
# BENCH_CLUSTER_CPUS says; the generator samples all four processes
# (--server-pid PID=LABEL,...), per thread as well. On the 2-core VM the
# default puts the sending node n1 (the busiest: its worker and its cluster
# thread) alone with the idle n3 on core 0, and Redis, the receiving node n2
# and the generator on core 1, which measured best (see bench/README.md).
declare -A CL_PID=()
CL_PORTS=(19201 19202 19203)

cl_cpu() { # cl_cpu n1|n2|n3|redis|gen: its CPUs from BENCH_CLUSTER_CPUS (both cores if unnamed)
    local kv v=
    [ "$CL_CPUS" != all ] || {
        echo "$SCPU,$GCPU"
        return
    }
    for kv in $CL_CPUS; do
        [ "${kv%%=*}" != "$1" ] || v=${kv#*=}
    done
    echo "${v:-$SCPU,$GCPU}"
}

cl_start() { # cl_start TAG [single]: Redis, then the three nodes; returns when every /healthz answers 200
    local tag=$1 i port cfg code=
    for port in "${CL_PORTS[@]}"; do
        if listening "$port"; then die "port $port is already taken (a node left over?)"; fi
    done
    CL_DIR=$(mktemp -d /tmp/orr-bench-cluster.XXXXXX)
    if [ "${2:-}" = single ]; then
        # One node without a cluster key, for comparison: no Redis, no cluster thread.
        cfg="$OUT/cluster-single.json"
        printf '{"listen": "127.0.0.1:%d", "workers": 1, "ws_max_connections": 100000, "idle_timeout_ms": 600000, "park_ms": %d}\n' \
            "${CL_PORTS[0]}" "$PARK_MS" >"$cfg"
        taskset -c "$(cl_cpu n1)" "$BUILD/orrery" --config "$cfg" >"$OUT/logs/$tag-n1.log" 2>&1 &
        CL_PID[n1]=$!
        PIDS+=("$!")
        for _ in $(seq 200); do
            code=$(curl -s --noproxy '*' -o /dev/null -m 1 -w '%{http_code}' \
                "http://127.0.0.1:${CL_PORTS[0]}/healthz" || true)
            [ "$code" != 200 ] || return 0
            kill -0 "${CL_PID[n1]}" 2>/dev/null || break
            sleep 0.05
        done
        tail -5 "$OUT/logs/$tag-n1.log" >&2
        die "the single node (port ${CL_PORTS[0]}) is not ready (/healthz: $code)"
    fi
    taskset -c "$(cl_cpu redis)" redis-server --port 0 --unixsocket "$CL_DIR/redis.sock" \
        --save '' --appendonly no >"$OUT/logs/$tag-redis.log" 2>&1 &
    CL_PID[redis]=$!
    PIDS+=("$!")
    for i in $(seq 200); do
        redis-cli -s "$CL_DIR/redis.sock" ping >/dev/null 2>&1 && break
        kill -0 "${CL_PID[redis]}" 2>/dev/null || break
        sleep 0.05
    done
    redis-cli -s "$CL_DIR/redis.sock" ping >/dev/null 2>&1 || {
        cat "$OUT/logs/$tag-redis.log" >&2
        die "redis-server did not start"
    }
    for i in 1 2 3; do
        port=${CL_PORTS[$((i - 1))]}
        cfg="$OUT/cluster-n$i.json"
        printf '{"listen": "127.0.0.1:%d", "workers": 1, "ws_max_connections": 100000, "idle_timeout_ms": 600000, "park_ms": %d,\n "cluster": {"redis": "unix:%s", "node_id": "n%d", "heartbeat_ms": 1000, "node_ttl_ms": 5000}}\n' \
            "$port" "$PARK_MS" "$CL_DIR/redis.sock" "$i" >"$cfg"
        taskset -c "$(cl_cpu "n$i")" "$BUILD/orrery" --config "$cfg" >"$OUT/logs/$tag-n$i.log" 2>&1 &
        CL_PID[n$i]=$!
        PIDS+=("$!")
    done
    for i in 1 2 3; do
        port=${CL_PORTS[$((i - 1))]}
        for _ in $(seq 200); do
            code=$(curl -s --noproxy '*' -o /dev/null -m 1 -w '%{http_code}' \
                "http://127.0.0.1:$port/healthz" || true)
            [ "$code" != 200 ] || break
            kill -0 "${CL_PID[n$i]}" 2>/dev/null || break
            sleep 0.05
        done
        [ "$code" = 200 ] || {
            tail -5 "$OUT/logs/$tag-n$i.log" >&2
            die "node n$i (port $port) is not ready (/healthz: $code)"
        }
    done
}

cl_stop_pid() { # cl_stop_pid PID: SIGTERM, SIGKILL after 10 s
    local i
    kill -TERM "$1" 2>/dev/null || true
    for i in $(seq 200); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

cl_stop() { # the nodes first (they remove their liveness from Redis), then Redis
    local i
    for i in n1 n2 n3; do [ -z "${CL_PID[$i]:-}" ] || kill -TERM "${CL_PID[$i]}" 2>/dev/null || true; done
    for i in n1 n2 n3 redis; do [ -z "${CL_PID[$i]:-}" ] || cl_stop_pid "${CL_PID[$i]}"; done
    CL_PID=()
    rm -rf "$CL_DIR"
    CL_DIR=
}

cl_args() { # cl_args CASE: the generator's arguments
    local p1=${CL_PORTS[0]} p2=${CL_PORTS[1]} p3=${CL_PORTS[2]}
    case $1 in
    xsend) echo "--mode xsend --ports $p1,$p2 --pairs $CL_PAIRS --window $CL_WINDOW --duration $SECS" ;;
    xsend-light) echo "--mode xsend --ports $p1,$p2 --pairs 10 --window 1 --duration $SECS" ;;
    xsend-local | xsend-single) echo "--mode xsend --ports $p1,$p1 --pairs $CL_PAIRS --window $CL_WINDOW --duration $SECS" ;;
    fanout3) echo "--mode fanout --ports $p1,$p2,$p3 --conns $FANOUT_MEMBERS --window $FANOUT_WINDOW --lat-pubs $FANOUT_LAT_PUBS --duration $SECS --drain 10" ;;
    *) die "unknown cluster case '$1' (xsend xsend-light xsend-local xsend-single fanout3)" ;;
    esac
}

cl_label() { # cl_label CASE: its row in the table
    case $1 in
    xsend) echo "cross-node send n1 → n2, $CL_PAIRS pairs × $CL_WINDOW in flight: messages/s" ;;
    xsend-light) echo "cross-node send n1 → n2, 10 pairs × 1 in flight: messages/s" ;;
    xsend-local) echo "(comparison) same-node send n1 → n1, $CL_PAIRS pairs × $CL_WINDOW in flight: messages/s" ;;
    xsend-single) echo "(comparison) the same on a node without cluster (no Redis): messages/s" ;;
    fanout3) echo "group publish from n1, $(printf "%'d" "$FANOUT_MEMBERS") members over n1-n3, $FANOUT_WINDOW in flight: deliveries/s (latency: last member, one publication at a time)" ;;
    esac
}

run_cluster() { # run_cluster ROUND: every case on a fresh cluster
    local round=$1 c tag base json line pids
    command -v redis-server >/dev/null || die "the cluster load needs redis-server (apt-get install redis-server)"
    command -v curl >/dev/null || die "the cluster load needs curl"
    [ -x "$BUILD/orrery" ] || die "the cluster load needs $BUILD/orrery (make build)"
    for c in $CL_CASES; do
        tag="cluster-$c-$round"
        base="$OUT/logs/$tag.gen"
        if [ "$c" = xsend-single ]; then
            cl_start "$tag" single
            pids="${CL_PID[n1]}=n1"
        else
            cl_start "$tag"
            pids="${CL_PID[n1]}=n1,${CL_PID[n2]}=n2,${CL_PID[n3]}=n3,${CL_PID[redis]}=redis"
        fi
        GEN_CPUS=$(cl_cpu gen)
        # shellcheck disable=SC2046
        gen "$base.out" "$base.err" $(cl_args "$c") --server-pid "$pids" --label cluster
        cl_stop
        json=$(grep '^{' "$base.out" || true)
        [ -n "$json" ] || json="{\"mode\":\"$c\",\"server\":\"cluster\",\"error\":\"generator failed: $(head -c 200 "$base.err" | tr '\n"' ' ')\"}"
        line="{\"load\":\"cluster-$c\",\"round\":$round,\"workers\":1,${json#\{}"
        echo "$line" >>"$OUT/results.jsonl"
        say "  $(printf '%-12s' "$c") $(grep -v '^{' "$base.out" | head -1)"
        [ -n "$(grep -v '^{' "$base.out" | head -1)" ] || say "             failed: $(head -c 300 "$base.err" | head -2 | tr '\n' ' ')"
    done
}

# 113657.2 -> "113,657"
thousands() { # thousands VALUE
    if [ -z "$1" ]; then
        echo "-"
        return
    fi
    awk -v v="$1" 'BEGIN { s = sprintf("%.0f", v); o = "";
        while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        print s o }'
}

# "83 %" of one core: CPU seconds in the window over its length.
cl_pct() { # cl_pct LOAD KEY
    local v d
    v=$(figure "$1" cluster "$2")
    d=$(figure "$1" cluster duration_s)
    if [ -z "$v" ] || [ -z "$d" ]; then
        echo "-"
        return
    fi
    awk -v v="$v" -v d="$d" 'BEGIN { printf "%.0f %%", 100 * v / d }'
}

# An Orrery node's threads (tid order: main, the cluster thread, which
# server.c starts before the workers, then the worker), medians over the
# rounds the table uses: " (cluster thread 23 %, worker 60 %)".
cl_threads() { # cl_threads LOAD LABEL
    local l d
    d=$(figure "$1" cluster duration_s)
    [ -n "$d" ] || return 0
    runs "$1" cluster | while read -r l; do
        [ -z "$l" ] || sed -n "s/.*\"threads_$2\":\"\([^\"]*\)\".*/\1/p" <<<"$l"
    done | awk -v d="$d" 'NF >= 3 { c[++n] = $2; w[n] = $3 }
        function med(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        END { if (n) printf " (cluster thread %.0f %%, worker %.0f %%)", 100 * med(c, n) / d, 100 * med(w, n) / d }'
}

# " (98,263-116,488)": the lowest and highest over the rounds, when there are several.
cl_range() { # cl_range LOAD KEY
    local v
    v=$(runs "$1" cluster | while read -r l; do [ -z "$l" ] || jget "$l" "$2"; done | grep -v null | sort -g)
    [ "$(wc -l <<<"$v")" -gt 1 ] || return 0
    printf ' (%s-%s)' "$(thousands "$(head -1 <<<"$v")")" "$(thousands "$(tail -1 <<<"$v")")"
}

cl_errors() { # cl_errors LOAD: the generator's count, or why the run failed
    local l
    l=$(grep "\"load\":\"$1\"" "$OUT/results.jsonl" | grep '"error"' | head -1)
    if [ -n "$l" ]; then
        sed -n 's/.*"error":"\([^"]*\)".*/\1/p' <<<"$l" | cut -c1-120
    else
        figure "$1" cluster errors
    fi
}

print_cluster() {
    local c load v p50 p99
    echo
    echo "Cluster: Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on a unix socket and 3 Orrery nodes (1 worker each), all on this machine with the generator; CPUs: $CL_CPUS; ${SECS} s windows after a 1 s warm-up; medians of $ROUNDS round(s), leaving out those another process disturbed unless all were (msgs/s: lowest-highest of those in parentheses). CPU = share of one core in the window; nodes: main + cluster thread + worker."
    echo
    echo "| measurement | msgs/s | p50 ms | p99 ms | n1 CPU | n2 CPU | n3 CPU | Redis CPU | generator CPU | other processes' CPU | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for c in $CL_CASES; do
        load=cluster-$c
        v=$(figure "$load" cluster msgs_per_s)
        p50=$(figure "$load" cluster p50_ms)
        p99=$(figure "$load" cluster p99_ms)
        printf '| %s | %s%s | %s | %s | %s%s | %s%s | %s | %s | %s | %s | %s |\n' "$(cl_label "$c")" \
            "$(thousands "$v")" "$(cl_range "$load" msgs_per_s)$(all_disturbed "$load" cluster && echo " (disturbed)")" \
            "$(num "%.2f" "$p50")" "$(num "%.2f" "$p99")" \
            "$(cl_pct "$load" cpu_n1_s)" "$(cl_threads "$load" n1)" \
            "$(cl_pct "$load" cpu_n2_s)" "$(cl_threads "$load" n2)" \
            "$(cl_pct "$load" cpu_n3_s)" "$(cl_pct "$load" cpu_redis_s)" \
            "$(cl_pct "$load" gen_cpu_s)" "$(cl_pct "$load" other_procs_cpu_s)" \
            "$(cl_errors "$load")"
        [ "$c" != fanout3 ] || [ -z "$v" ] ||
            echo "| ↳ the same, last-member latency with $FANOUT_WINDOW in flight | | $(num "%.1f" "$(figure "$load" cluster load_p50_ms)") | $(num "%.1f" "$(figure "$load" cluster load_p99_ms)") | | | | | | | |"
    done
    if [[ " $CL_CASES " == *" xsend "* ]]; then
        v=$(figure cluster-xsend cluster msgs_per_s)
        echo
        printf 'Target (issue 4): at least %s cross-node sends/s with all three nodes and Redis on this machine: ' \
            "$(thousands "$CL_TARGET")"
        if [ -z "$v" ]; then
            echo "no figure (the run failed)."
        else
            local used
            used=$(runs cluster-xsend cluster | grep -c . || true)
            if all_disturbed cluster-xsend cluster; then used="$used (all disturbed)"; fi
            printf '%s sends/s (median of %s of %s round(s)%s), ' "$(thousands "$v")" "$used" "$ROUNDS" \
                "$(cl_range cluster-xsend msgs_per_s | sed 's/^ (/: /; s/)$//')"
            awk -v v="$v" -v t="$CL_TARGET" 'BEGIN {
                if (v >= t) printf "met: %.2fx the target.\n", v / t;
                else printf "NOT met: short by %.0f sends/s (%.0f %%).\n", t - v, 100 * (t - v) / t }'
        fi
    fi
}

# ---- main ----------------------------------------------------------------------
gen_limits() {
    SERVERS=sink
    build_tools
    build_sink
    mkdir -p "$OUT/logs"
    say "bench: generator limits against echo_sink (server core $SCPU, generator core $GCPU), results in $OUT"
    local spec
    for spec in "flood16:--mode flood --conns 100 --size 16:-s 16" \
        "flood16-send-only:--mode flood --conns 100 --size 16 --drain 0:-s 16 -n" \
        "flood1k:--mode flood --conns 100 --size 1024:-s 1024" \
        "closed100:--mode closed --conns 100 --size 16:-s 16" \
        "closed1000:--mode closed --conns 1000 --size 16:-s 16" \
        "rate:--mode rate --conns 1000 --rate 20 --size 16:-s 16" \
        "rate-spin:--mode rate --conns 1000 --rate 20 --size 16 --spin:-s 16"; do
        IFS=: read -r name args sargs <<<"$spec"
        read -r -a SINK_ARGS <<<"$sargs"
        start_server sink "$OUT/logs/$name-sink.log"
        # shellcheck disable=SC2086
        gen "$OUT/logs/$name-sink.gen.out" "$OUT/logs/$name-sink.gen.err" $args \
            --duration "$FLOOD_SECS" --port "${PORT[sink]}" --server-pid "$SPID" --label sink
        stop_server
        head -1 "$OUT/logs/$name-sink.gen.out" | sed "s/^/$name: /"
        sed 's/^/    sink counted: /' "$OUT/logs/$name-sink.log" | grep rx || true
    done
}

# ---- the lua load: Lua gears against C gears ----------------------------------
# One Orrery binary, one worker, the same gears_dir (echo.so, testgear.so,
# luaecho.lua, luatestgear.lua) for both servers: luac drives the C gears, lua
# their Lua twins, alternating.
run_lua() { # run_lua ROUND
    local round=$1 load s i=0
    mkdir -p "$OUT/lua-gears"
    cp "$BUILD/gears/echo.so" "$BUILD/gears/testgear.so" "$BUILD/gears/luatestgear.lua" \
        "$ROOT/bench/gears/luaecho.lua" "$OUT/lua-gears/"
    for load in $LUA_LOADS; do
        if [ $(((i + round) % 2)) = 0 ]; then s="luac lua"; else s="lua luac"; fi
        i=$((i + 1))
        for s in $s; do run_one "$load" "$s" "$round" "lua-$load"; done
    done
}

lua_row() { # lua_row LABEL LOAD KEY FORMAT TARGET COMPARE: one row, Lua against C
    local c l
    c=$(figure "lua-$2" luac "$3")
    l=$(figure "lua-$2" lua "$3")
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$(num "$4" "$c")" "$(num "$4" "$l")" \
        "$(if [ "$6" = diff ]; then
            [ -n "$c" ] && [ -n "$l" ] && awk -v a="$l" -v b="$c" 'BEGIN { printf "%+.2f KiB", a - b }' || echo n/a
        else ratio "$l" "$c"; fi)" "$5"
}

print_lua() {
    echo
    echo "Lua gears against C gears: one Orrery, one worker (CPU $SCPU), both kinds of gear loaded; luaecho.lua against echo.so, luatestgear.lua against testgear.so; medians of $ROUNDS round(s)"
    echo
    echo "| figure | C gear | Lua gear | Lua/C | target |"
    echo "|---|---|---|---|---|"
    lua_row "closed loop, 100 conns, 16 B: msgs per server CPU-second" closed100 msgs_per_server_cpu_s "%.0f" ">= 0.60x" ratio
    lua_row "flood, 100 conns, 16 B: msgs per server CPU-second" flood16 msgs_per_server_cpu_s "%.0f" ">= 0.60x" ratio
    lua_row "(flood, msgs/s)" flood16 msgs_per_s "%.0f" "" ratio
    lua_row "RSS per idle connection, KiB ($(printf "%'d" "$IDLE_CONNS") held)" idle rss_per_conn_kib "%.2f" "<= +0.5 KiB" diff
    lua_row "fan-out to $(printf "%'d" "$FANOUT_MEMBERS") members, published from the gear: deliveries/s" fanout deliveries_per_s "%.0f" "within 10%" ratio
    lua_row "(fan-out: deliveries per server CPU-second)" fanout msgs_per_server_cpu_s "%.0f" "" ratio
    lua_row "(fan-out: last-member latency p50, ms)" fanout p50_ms "%.1f" "" ratio
}

# ---- the deflate load: permessage-deflate against the peers' ------------------
# Orrery (deflate on by default), libwebsockets with its permessage-deflate
# extension and Node ws with perMessageDeflate, alternating; then Orrery's
# fan-out with deflate members against the same without, and its closed loop
# on the same text uncompressed (what deflate costs).
run_deflate() { # run_deflate ROUND
    local round=$1 load s i=0
    for load in $DEFLATE_LOADS; do
        case $(((i + round) % 3)) in
        0) s="orrery lwsz wsz" ;;
        1) s="lwsz wsz orrery" ;;
        *) s="wsz orrery lwsz" ;;
        esac
        i=$((i + 1))
        for s in $s; do run_one "$load" "$s" "$round"; done
    done
    run_one jclosed orrery "$round"
    if [ $((round % 2)) = 0 ]; then s="zfanout jfanout"; else s="jfanout zfanout"; fi
    for load in $s; do run_one "$load" orrery "$round"; done
}

deflate_row() { # deflate_row LABEL LOAD KEY FORMAT TARGETS
    local o l w
    o=$(figure "$2" orrery "$3")
    l=$(figure "$2" lwsz "$3")
    w=$(figure "$2" wsz "$3")
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(num "$4" "$o")" "$(num "$4" "$l")" \
        "$(num "$4" "$w")" "$(ratio "$o" "$l")" "$(ratio "$o" "$w")" "$5"
}

orrery_row() { # orrery_row LABEL LOAD_WITH LOAD_WITHOUT KEY TARGET
    local z j
    z=$(figure "$2" orrery "$4")
    j=$(figure "$3" orrery "$4")
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$(num "%.0f" "$z")" "$(num "%.0f" "$j")" "$(ratio "$z" "$j")" "$5"
}

print_deflate() {
    echo
    echo "permessage-deflate: 1 KiB of JSON-like text per message, sent compressed by the client (no context takeover either way) and echoed compressed; one server core ($SCPU), the generator on $GCPU; medians of $ROUNDS round(s)"
    echo
    echo "| figure | Orrery | libwebsockets | Node ws | Orrery/lws | Orrery/ws | target |"
    echo "|---|---|---|---|---|---|---|"
    deflate_row "closed loop, 100 conns: msgs per server CPU-second" zclosed msgs_per_server_cpu_s "%.0f" ">= 2x lws, >= 5x ws"
    deflate_row "flood, 100 conns: msgs per server CPU-second" zflood msgs_per_server_cpu_s "%.0f" ">= 2x lws, >= 5x ws"
    deflate_row "(flood: msgs/s)" zflood msgs_per_s "%.0f" ""
    echo
    echo "| Orrery, 1 worker, 1 KiB messages | deflate | no deflate | deflate/none | target |"
    echo "|---|---|---|---|---|"
    orrery_row "fan-out to $(printf "%'d" "$FANOUT_MEMBERS") members: deliveries/s" zfanout jfanout deliveries_per_s "within 20%"
    orrery_row "(fan-out: deliveries per server CPU-second)" zfanout jfanout msgs_per_server_cpu_s ""
    orrery_row "(fan-out: last-member latency p50, ms)" zfanout jfanout p50_ms ""
    orrery_row "closed loop, 100 conns: msgs per server CPU-second" zclosed jclosed msgs_per_server_cpu_s ""
}

main() {
    mkdir -p "$OUT/logs"
    raise_nofile
    if [ "${1:-}" = gen-limits ]; then
        gen_limits
        return
    fi
    [ $# -eq 0 ] || die "usage: bench/run.sh [gen-limits]"
    build_tools
    [ -n "$SERVERS" ] || die "no server to measure"
    say "bench: servers: $SERVERS; loads: $LOADS; $SECS s each (floods $FLOOD_SECS s), $ROUNDS round(s)"
    say "bench: server on CPU $SCPU, generator on CPU $GCPU; logs and JSON in $OUT"
    : >"$OUT/results.jsonl"
    local round load busy order i s
    local -a list
    busy=$(quiet_check)
    [ "$busy" -le 5 ] || say "bench: WARNING: the machine is not quiet ($busy% busy before the run); figures will be noisy"
    for round in $(seq "$ROUNDS"); do
        i=0
        for load in $LOADS; do
            if [ "$load" = cluster ]; then
                run_cluster "$round"
                continue
            fi
            if [ "$load" = lua ]; then
                run_lua "$round"
                continue
            fi
            if [ "$load" = deflate ]; then
                run_deflate "$round"
                continue
            fi
            read -r -a list <<<"$(servers_for "$load")"
            [ ${#list[@]} -gt 0 ] || continue
            # Alternate: each load starts with the next server in turn.
            order=()
            for s in $(seq 0 $((${#list[@]} - 1))); do order+=("${list[$(((s + i + round - 1) % ${#list[@]}))]}"); done
            i=$((i + 1))
            for s in "${order[@]}"; do run_one "$load" "$s" "$round"; done
        done
    done
    busy=$(quiet_check)
    {
        echo
        echo "Orrery benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), ${SECS} s per load (floods ${FLOOD_SECS} s), $ROUNDS round(s), medians"
        if [ -n "$(echo_loads)" ]; then
            echo
            print_table
            print_details
        fi
        [[ " $LOADS " != *" fanout "* ]] || print_fanout
        [[ " $LOADS " != *" cluster "* ]] || print_cluster
        [[ " $LOADS " != *" lua "* ]] || print_lua
        [[ " $LOADS " != *" deflate "* ]] || print_deflate
        [ "$busy" -le 5 ] || echo "WARNING: the machine was not quiet ($busy% busy right after the run)."
    } | tee "$OUT/table.md"
    grep -q '"error"' "$OUT/results.jsonl" && say "bench: some runs failed; see $OUT/logs" || true
    grep -q '"errors":[1-9]' "$OUT/results.jsonl" && say "bench: some runs saw connection errors; see $OUT/logs" || true
}

main "$@"
