#!/usr/bin/python3
"""make soak: the hostile cases of issue 8 at full size, one after another,
each against a fresh server (the ASan+UBSan build by default), with the
server's RSS sampled every 50 ms and a normal echo client timing its round
trips all along. Prints one line per case: peak RSS growth, the close codes
the attackers saw, the normal client's worst round trip; exits non-zero when
a case does not end as it should or the sanitizers report anything.

  tests/soak/soak.py [--bin build-asan/orrery] [--only NAME]
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from orrery_harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed,  # noqa: E402
                            RawWs, Server, encode_frame)

MiB = 1 << 20


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def connect(port, path="/echo/ws", rcvbuf=None):
    return RawWs.connect(port, path, rcvbuf=rcvbuf, timeout=30)


def close_code(ws, timeout=30):
    """Reads until a close frame: its code, 'eof' or 'open' (nothing within timeout)."""
    try:
        for _, op, n, payload in ws.skim_frames(timeout):
            if op == OP_CLOSE:
                return struct.unpack("!H", payload[:2])[0] if n >= 2 else 1005
    except Closed:
        return "eof"
    except AssertionError:
        return "open"


class Watch:
    """RSS sampling and a normal echo client, in threads."""

    def __init__(self, srv):
        self.srv = srv
        self.base = rss(srv.proc.pid)
        self.peak = self.base
        self.worst = 0.0
        self.rounds = 0
        self.error = None
        self.stop = threading.Event()
        self.normal = connect(srv.port)
        self.threads = [threading.Thread(target=self._sample), threading.Thread(target=self._echo)]
        for t in self.threads:
            t.start()

    def _sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss(self.srv.proc.pid))
            time.sleep(0.05)

    def _echo(self):
        i = 0
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                self.normal.send_text("normal %d" % i)
                f = self.normal.read_frame(10)
                if f.payload != ("normal %d" % i).encode():
                    raise AssertionError("echo %r" % f)
            except Exception as e:  # noqa: BLE001
                self.error = e
                return
            self.worst = max(self.worst, time.monotonic() - t0)
            self.rounds += 1
            i += 1
            time.sleep(0.02)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return self


def metric(srv, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % srv.port, timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def run_threads(fn, n):
    out = [None] * n
    def one(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001
            out[i] = e
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


# ---- the cases ---------------------------------------------------------------------

def case_noread_echo(srv):
    """20 clients send one 15 MiB message to /echo/ws and never read."""
    def attack(i):
        ws = connect(srv.port, rcvbuf=65536)
        ws.sock.sendall(encode_frame(OP_BINARY, b"a" * (15 * MiB)))
        return ws
    clients = run_threads(attack, 20)
    time.sleep(8)  # past the idle timeout (5 s)
    return [close_code(ws) if isinstance(ws, RawWs) else repr(ws) for ws in clients]


def case_partial(srv):
    """50 clients send a 19 MiB frame minus its last byte."""
    FRAME = 19 * MiB
    def attack(i):
        ws = connect(srv.port, rcvbuf=65536)
        ws.send_frame_but_last_byte(FRAME)
        return ws
    clients = run_threads(attack, 50)
    time.sleep(2)
    return [close_code(ws, 2) if isinstance(ws, RawWs) else repr(ws) for ws in clients]


def case_tenants(srv):
    """5,000 handshakes with distinct tenant= values, one after another."""
    codes = []
    for i in range(5000):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        sock.sendall(("GET /testgear/ws?name=u%d&tenant=t%d HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n" % (i, i)).encode())
        ws = RawWs(sock)
        status, _ = ws.read_http_head(30)
        codes.append(status)
        if status == 101:
            ws.send_close(1000)
            close_code(ws, 10)
        sock.close()
    return codes


def case_ping_flood(srv):
    """A client sends 125-byte pings and never reads."""
    ws = connect(srv.port, rcvbuf=4096)
    batch = encode_frame(OP_PING, b"p" * 125) * 64
    slow = threading.Event()
    def watch():
        try:
            srv.wait_for_log("slow consumer", timeout=20)
            slow.set()
        except AssertionError:
            pass
    threading.Thread(target=watch, daemon=True).start()
    ws.sock.setblocking(False)
    sent, at = 0, 0
    end = time.monotonic() + 20
    while time.monotonic() < end and (at or not slow.is_set()):
        try:
            k = ws.sock.send(batch[at:])
            sent += k
            at = (at + k) % len(batch)
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            break
    ws.sock.setblocking(True)
    return [close_code(ws, 5)], "%d pings" % (sent // 131)


def case_continuations(srv):
    """One million empty continuation frames after a non-final text frame."""
    ws = connect(srv.port)
    ws.sock.sendall(encode_frame(OP_TEXT, b"x", fin=False))
    one = encode_frame(OP_CONT, b"", fin=False)
    t0 = time.monotonic()
    try:
        ws.sock.sendall(one * 1000000)
    except OSError:
        pass
    code = close_code(ws, 60)
    return [code], "%.2f s" % (time.monotonic() - t0)


CASES = [
    ("noread_echo", case_noread_echo, {"max_message_bytes": 20000000, "idle_timeout_ms": 5000,
                                       "close_timeout_ms": 60000}, {1008, 1013}),
    ("partial", case_partial, {"max_message_bytes": 20000000}, {1013, "open"}),
    ("tenants", case_tenants, {}, {101}),
    ("ping_flood", case_ping_flood, {"close_timeout_ms": 30000}, {1008}),
    ("continuations", case_continuations, {}, {1009}),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "..", "build-asan", "orrery"))
    ap.add_argument("--budget", type=int, default=256 * MiB)
    ap.add_argument("--only")
    a = ap.parse_args()
    os.environ["ORRERY_BIN"] = os.path.abspath(a.bin)
    failed = False
    print("%-14s %10s %9s  %-34s %s" % ("case", "peak RSS+", "worst rt", "attackers' ends", "notes"))
    for name, fn, cfg, want in CASES:
        if a.only and a.only != name:
            continue
        config = {"workers": 2, "max_buffered_bytes": a.budget}
        config.update(cfg)
        srv = Server(config)
        try:
            watch = Watch(srv)
            t0 = time.monotonic()
            res = fn(srv)
            note = ""
            if isinstance(res, tuple):
                res, note = res
            watch.finish()
            ends = {}
            for r in res:
                ends[r] = ends.get(r, 0) + 1
            bad = [k for k in ends if k not in want] or watch.error
            failed |= bool(bad)
            buffered = metric(srv, "orrery_buffered_bytes")
            print("%-14s %7d MiB %7.0f ms  %-34s %s%s" % (
                name, (watch.peak - watch.base) // MiB, watch.worst * 1000,
                " ".join("%s:%d" % kv for kv in sorted(ends.items(), key=str)),
                "%s; %.0f s; buffered now %d" % (note, time.monotonic() - t0, buffered),
                "   <-- UNEXPECTED %r" % bad if bad else ""), flush=True)
        finally:
            try:
                srv.kill()
            except AssertionError as e:
                print(e)
                failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
