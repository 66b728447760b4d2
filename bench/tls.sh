#!/usr/bin/env bash
# TLS figures (issue 13), Orrery with one worker against the libwebsockets echo peer with TLS, each
# pinned to CPU 0, the generator (orr-loadgen --tls, or openssl s_time) on CPU 1:
#   - closed loop over wss:// (100 connections, 16 B and 1 KiB): msgs per server CPU-second,
#     rounds alternating between the servers, medians;
#   - full TLS handshakes (openssl s_time -new, TLS 1.3 and 1.2): per second and per server
#     CPU-second;
#   - RSS per idle TLS connection (TLS_IDLE held, after 100 to warm up), and the same plain.
# The certificate is ECDSA P-256, made here with the openssl CLI.
#   bench/tls.sh                      TLS_ROUNDS=3 TLS_SECONDS=5 TLS_IDLE=5000
#   TLS_LOADS="closed handshakes idle" bench/tls.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${TLS_ROUNDS:-3}
SECONDS_=${TLS_SECONDS:-5}
IDLE=${TLS_IDLE:-5000}
LOADS=${TLS_LOADS:-closed handshakes idle}
SCPU=${BENCH_SERVER_CPU:-0}
GCPU=${BENCH_GEN_CPU:-1}
OUT=$(mktemp -d /tmp/orrery-tls-bench.XXXXXX)
LOADGEN=$BUILD/bench-tools/orr-loadgen
LWS=$BUILD/bench-peers/lws_echo
SPID=

say() { echo "$@" >&2; }
cleanup() { [ -z "$SPID" ] || kill "$SPID" 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT

mkdir -p "$BUILD/bench-tools" "$BUILD/bench-peers"
[ -x "$BUILD/orrery" ] || { say "bench/tls.sh: build Orrery first (make)"; exit 1; }
cc -std=gnu17 -O2 -g -Wall -Wextra -o "$LOADGEN" "$ROOT"/bench/loadgen*.c -lpthread -lm -lssl -lcrypto -lz
cc -O2 -Wall -Wextra -o "$LWS" "$ROOT/bench/peers/lws-echo/lws_echo.c" $(pkg-config --cflags --libs libwebsockets)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null

listening() { ss -ltn "sport = :$1" | grep -q LISTEN; }

start() { # start orrery|orrery-plain|lws PORT
    case $1 in
    orrery) printf '{"workers": 1, "log_level": "warn", "ws_max_connections": 100000, "idle_timeout_ms": 600000, "tls": {"cert": "%s", "key": "%s"}}\n' \
        "$OUT/cert.pem" "$OUT/key.pem" >"$OUT/orrery.json" ;;
    orrery-plain) printf '{"workers": 1, "log_level": "warn", "ws_max_connections": 100000, "idle_timeout_ms": 600000}\n' >"$OUT/orrery.json" ;;
    esac
    case $1 in
    orrery*) taskset -c "$SCPU" "$BUILD/orrery" --config "$OUT/orrery.json" --listen "127.0.0.1:$2" >"$OUT/server.log" 2>&1 & ;;
    lws) taskset -c "$SCPU" "$LWS" -p "$2" --cert "$OUT/cert.pem" --key "$OUT/key.pem" >"$OUT/server.log" 2>&1 & ;;
    esac
    SPID=$!
    for _ in $(seq 100); do listening "$2" && return 0; sleep 0.05; done
    cat "$OUT/server.log" >&2
    exit 1
}

stop() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=; }

cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }

json_field() { grep -o "\"$1\":[0-9.e+-]*" | head -1 | cut -d: -f2; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "nan" }'; }

closed() {
    local size s r path v
    for size in 16 1024; do
        for s in orrery lws; do : >"$OUT/closed-$s-$size"; done
        for r in $(seq "$ROUNDS"); do
            for s in orrery lws; do
                path=/echo/ws
                [ $s = lws ] && path=/
                start $s 19310
                v=$(taskset -c "$GCPU" "$LOADGEN" --mode closed --tls --conns 100 --size "$size" \
                    --duration "$SECONDS_" --port 19310 --path $path --server-pid "$SPID" | tee "$OUT/gen.out" |
                    json_field msgs_per_server_cpu_s)
                stop
                say "  closed $size B round $r $s: $(head -1 "$OUT/gen.out")"
                echo "$v" >>"$OUT/closed-$s-$size"
            done
        done
        local o l
        o=$(median <"$OUT/closed-orrery-$size")
        l=$(median <"$OUT/closed-lws-$size")
        printf 'closed loop over TLS, 100 conns x %s B: Orrery %.0f, libwebsockets %.0f msgs per server CPU-second: %.2fx\n' \
            "$size" "$o" "$l" "$(awk -v a="$o" -v b="$l" 'BEGIN { print a / b }')"
    done
}

handshakes() {
    local s v proto c0 c1 n
    for s in orrery lws; do
        for proto in -tls1_3 -tls1_2; do
            start $s 19311
            c0=$(cpu_s "$SPID")
            n=$(taskset -c "$GCPU" openssl s_time -connect 127.0.0.1:19311 -new $proto -time "$SECONDS_" 2>/dev/null |
                awk '/connections in [0-9.]+s/ { print $1 }' | head -1)
            c1=$(cpu_s "$SPID")
            stop
            printf 'full TLS handshakes (%s, ECDSA P-256), %s: %s in %ss = %.0f/s, %.0f per server CPU-second\n' \
                "${proto#-}" "$s" "$n" "$SECONDS_" "$(awk -v n="$n" -v t="$SECONDS_" 'BEGIN { print n / t }')" \
                "$(awk -v n="$n" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" 'BEGIN { print (c > 0 ? n / c : 0) }')"
        done
    done
}

idle() {
    local s tls v
    for s in orrery orrery-plain lws; do
        tls=--tls
        [ $s = orrery-plain ] && tls=
        local path=/echo/ws
        [ $s = lws ] && path=/
        start $s 19312
        taskset -c "$GCPU" "$LOADGEN" --mode idle $tls --conns 100 --hold 0 --settle 0 --port 19312 --path $path >/dev/null
        sleep 0.5
        v=$(taskset -c "$GCPU" "$LOADGEN" --mode idle $tls --conns "$IDLE" --hold 0 --settle 1 --port 19312 \
            --path $path --server-pid "$SPID" | json_field rss_per_conn_kib)
        stop
        printf 'RSS per idle connection (%s held), %s%s: %.2f KiB\n' "$IDLE" "$s" "${tls:+ over TLS}" "$v"
    done
}

for l in $LOADS; do "$l"; done
