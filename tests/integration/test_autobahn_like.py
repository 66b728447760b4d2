"""
Autobahn|Testsuite-like conformance tests for the echo gear (/echo/ws).

The real judge is Autobahn|Testsuite in fuzzingclient mode, cases 1 to 10,
12 and 13, with max_message_bytes 20000000; every case must come out OK. The
suite cannot be installed here, so this file replays the same cases over raw
sockets and judges them the way Autobahn does (autobahntestsuite/case/case.py):

  * the list of events received (messages, pings, pongs, and the "timeout"
    markers of 6.4.x) must equal the case's OK outcome (a NON-STRICT outcome
    counts as a failure unless ORR_AB_ALLOW_NON_STRICT=1, since the target is
    "every case OK");
  * the close: the right endpoint started the closing handshake
    (closedByMe), the handshake completed and the server dropped TCP in time
    when the case requires a clean close, the server's close code (if any) is
    one the case allows, and the client never had to drop TCP itself.

Autobahn's client timeouts are reproduced: killAfter/closeAfter per case,
1 s for the server's close reply and 1 s for the server to drop TCP after
the closing handshake (all multiplied by TIME_SCALE, 4 under ASan).
9.x timing budgets (Autobahn's WAITSECS, times TIME_SCALE) are printed and
asserted: each case's echo (or its run of round trips) must finish within it.

12.x and 13.x (permessage-deflate, case12_x_x.py) offer what Autobahn's
client offers, check the 101's answer the way a strict RFC 7692 client does
(pmd_accept), compress every message with zlib (raw deflate, sync flush, the
00 00 ff ff trailer removed; the compressor kept between messages only if the
server allowed context takeover), inflate the server's RSV1 messages with the
window it announced, and want every echo equal (type, length, SHA-1). A
declined offer is Autobahn's UNIMPLEMENTED, a failure here. Message counts are
Autobahn's 1000 up to a byte budget per case (see deflate_count).

Run from tests/integration:
    /usr/bin/python3 -m unittest -v test_autobahn_like
Environment: ORRERY_BIN (server binary, default ../../build/orrery),
ORR_SANITIZED=1 (ASan build: longer timeouts, smaller 9.x sizes),
ORR_AB_TIME_SCALE (override the timeout multiplier),
ORR_AB_ALLOW_NON_STRICT=1 (accept Autobahn NON-STRICT outcomes),
ORR_AB_DEFLATE_FULL=1 (12.x/13.x with Autobahn's 1000 messages per case: ~10 min).

Stdlib only and self-contained on purpose (no shared harness).
"""

import base64
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZED = os.environ.get("ORR_SANITIZED") == "1"
TIME_SCALE = float(os.environ.get("ORR_AB_TIME_SCALE") or (4.0 if SANITIZED else 1.0))
ALLOW_NON_STRICT = os.environ.get("ORR_AB_ALLOW_NON_STRICT") == "1"
PATH = "/echo/ws"
CONFIG = {"workers": 2, "max_message_bytes": 20000000, "close_timeout_ms": 2000}

# Autobahn client defaults (autobahn-python WebSocketClientFactory).
CLOSE_HANDSHAKE_TIMEOUT = 1.0   # our close sent -> server's close must arrive
SERVER_DROP_TIMEOUT = 1.0       # handshake done -> server must drop TCP

OK, NON_STRICT, FAILED = "OK", "NON-STRICT", "FAILED"
WRONG_CODE, UNCLEAN, FAILED_BY_CLIENT = "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT"
INFORMATIONAL = "INFORMATIONAL"

NORMAL, PROTOCOL_ERROR, INVALID_PAYLOAD = 1000, 1002, 1007

RESULTS = {}   # case id -> (behavior, behaviorClose, seconds, note)


def _log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def scaled(t):
    return t * TIME_SCALE


# ---------------------------------------------------------------------------
# Server process
# ---------------------------------------------------------------------------

class Server:
    def __init__(self):
        self.proc = None
        self.port = None
        self.tmpdir = tempfile.mkdtemp(prefix="orr-ab-")
        self.log_path = os.path.join(self.tmpdir, "server.log")

    def start(self):
        binary = os.environ.get("ORRERY_BIN") or os.path.join(HERE, "..", "..", "build", "orrery")
        if not os.path.exists(binary):
            raise RuntimeError("server binary not found: %s (set ORRERY_BIN)" % binary)
        cfg_path = os.path.join(self.tmpdir, "orrery.json")
        with open(cfg_path, "w") as f:
            json.dump(CONFIG, f)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--config", cfg_path, "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + scaled(15)
        while time.monotonic() < deadline:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.read_log())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %s before listening:\n%s"
                                   % (self.proc.returncode, self.read_log()[-4000:]))
            time.sleep(0.02)
        raise RuntimeError("server did not print 'listening on' in time:\n" + self.read_log()[-4000:])

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return "server did not exit within %.0fs of SIGTERM" % scaled(15)
        self.log.close()
        rc = self.proc.returncode
        text = self.read_log()
        if re.search(r"AddressSanitizer|LeakSanitizer|runtime error:", text):
            return "sanitizer report in server log:\n" + text[-6000:]
        if rc not in (0, -signal.SIGTERM):
            return "server exited with status %s:\n%s" % (rc, text[-3000:])
        return None


SERVER = None


def setUpModule():
    global SERVER
    SERVER = Server()
    SERVER.start()
    _log("[autobahn-like] server on 127.0.0.1:%d, time scale %.1f%s"
         % (SERVER.port, TIME_SCALE, " (ASan)" if SANITIZED else ""))


def tearDownModule():
    _print_summary()
    if SERVER is not None:
        problem = SERVER.stop()
        if problem:
            raise AssertionError(problem)


def _print_summary():
    if not RESULTS:
        return
    counts = {}
    for b, bc, _, _ in RESULTS.values():
        key = b if bc in (OK, INFORMATIONAL) else "%s/%s" % (b, bc)
        counts[key] = counts.get(key, 0) + 1
    _log("[autobahn-like] %d cases judged: %s" % (
        len(RESULTS), ", ".join("%s=%d" % kv for kv in sorted(counts.items()))))
    bad = [(k, v) for k, v in RESULTS.items() if v[0] not in (OK, INFORMATIONAL) or v[1] not in (OK, INFORMATIONAL)]
    for k, v in sorted(bad, key=lambda kv: _case_key(kv[0])):
        _log("[autobahn-like]   %s: %s / %s %s" % (k, v[0], v[1], v[3]))
    nine = [(k, v) for k, v in RESULTS.items() if k.startswith("9.")]
    if nine:
        total = sum(v[2] for _, v in nine)
        _log("[autobahn-like] 9.x total %.2fs" % total)


def _case_key(cid):
    return [int(x) if x.isdigit() else x for x in cid.split(".")]


# ---------------------------------------------------------------------------
# Raw WebSocket framing
# ---------------------------------------------------------------------------

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def mask_bytes(data, key):
    n = len(data)
    if n == 0:
        return b""
    if n < 64:
        return bytes(b ^ key[i & 3] for i, b in enumerate(data))
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame_header(opcode, length, fin=True, rsv=0, mask_key=None):
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask_key is not None else 0
    if length < 126:
        hdr = struct.pack("!BB", b0, mbit | length)
    elif length < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, length)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, length)
    return hdr + (mask_key or b"")


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True):
    key = os.urandom(4) if mask else None
    hdr = frame_header(opcode, len(payload), fin, rsv, key)
    return hdr + (mask_bytes(payload, key) if mask else payload), len(hdr)


def repeat_to(pattern, n):
    if n == 0:
        return b""
    return (pattern * (n // len(pattern) + 1))[:n]


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


def valid_utf8(b):
    try:
        bytes(b).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def valid_close_code_from_server(code):
    return (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999)


def short(b, n=40):
    if isinstance(b, str):
        return repr(b)
    b = bytes(b)
    if len(b) <= n:
        return repr(b)
    return "%r...(%d bytes)" % (b[:n], len(b))


def fmt_events(evs):
    out = []
    for e in evs:
        if e[0] == "message":
            out.append("(message %s %s)" % ("binary" if e[2] else "text", short(e[1])))
        elif e[0] in ("ping", "pong"):
            out.append("(%s %s)" % (e[0], short(e[1])))
        else:
            out.append("(%s %s)" % (e[0], e[1]))
    return "[" + ", ".join(out) + "]"


# ---------------------------------------------------------------------------
# permessage-deflate (RFC 7692), the client's side
# ---------------------------------------------------------------------------

class PmdOffer:
    """One permessage-deflate offer, as autobahn's PerMessageDeflateOffer
    (the client side of Autobahn 0.10.x) writes it: accepting "no context
    takeover" and "max window bits" for its own direction by default."""

    def __init__(self, accept_no_context_takeover=True, accept_max_window_bits=True,
                 request_no_context_takeover=False, request_max_window_bits=0):
        self.accept_nct = accept_no_context_takeover
        self.accept_mwb = accept_max_window_bits
        self.request_nct = request_no_context_takeover
        self.request_mwb = request_max_window_bits

    def header(self):
        s = "permessage-deflate"
        if self.accept_nct:
            s += "; client_no_context_takeover"
        if self.accept_mwb:
            s += "; client_max_window_bits"
        if self.request_nct:
            s += "; server_no_context_takeover"
        if self.request_mwb:
            s += "; server_max_window_bits=%d" % self.request_mwb
        return s

    def describe(self):
        return "(%s, %d)" % (self.request_nct, self.request_mwb)

    def problem(self, params):
        """Why a response with these params cannot accept this offer (RFC 7692
        section 7.1), or None."""
        if "client_max_window_bits" in params and not self.accept_mwb:
            return ("client_max_window_bits in the response, which the offer did not have "
                    "(RFC 7692 7.1.2.2: MUST NOT)")
        if self.request_nct and "server_no_context_takeover" not in params:
            return ("the offer asked for server_no_context_takeover and the response accepts it without it "
                    "(RFC 7692 7.1.1.1)")
        smwb = params.get("server_max_window_bits")
        if self.request_mwb and smwb is None:
            return ("the offer asked for server_max_window_bits=%d and the response accepts it without it "
                    "(RFC 7692 7.1.2.1)" % self.request_mwb)
        if self.request_mwb and int(smwb) > self.request_mwb:
            return ("server_max_window_bits=%s in the response, above the offer's %d (RFC 7692 7.1.2.1)"
                    % (smwb, self.request_mwb))
        return None


def parse_extensions(value):
    """A Sec-WebSocket-Extensions value (RFC 6455 section 9.1): a list of
    (name, [(param, value or None)]); AssertionError when it is malformed."""
    tok = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
    elem_rx = re.compile(r"\s*(%s)((?:\s*;\s*%s(?:\s*=\s*(?:%s|\"(?:[^\"\\\\]|\\\\.)*\"))?)*)\s*(?:,|$)"
                         % (tok, tok, tok))
    param_rx = re.compile(r"\s*;\s*(%s)(?:\s*=\s*(%s|\"(?:[^\"\\\\]|\\\\.)*\"))?" % (tok, tok))
    out, pos = [], 0
    while pos < len(value):
        m = elem_rx.match(value, pos)
        if not m or m.end() == pos:
            raise AssertionError("malformed Sec-WebSocket-Extensions in the 101: %r" % value)
        params = []
        for pm in param_rx.finditer(m.group(2)):
            v = pm.group(2)
            if v is not None and v.startswith('"'):
                v = re.sub(r"\\(.)", r"\1", v[1:-1])
            params.append((pm.group(1), v))
        out.append((m.group(1), params))
        pos = m.end()
    return out


def pmd_accept(offers, value):
    """The client's check of the server's answer (RFC 7692 sections 5 and 7.1,
    as a strict client fails the connection): one permessage-deflate element,
    each of its params defined for a response, once, with a valid value, and
    consistent with one of the offers. Returns what was agreed."""
    elems = parse_extensions(value)
    if len(elems) != 1 or elems[0][0].lower() != "permessage-deflate":
        raise AssertionError("the 101 must accept exactly one of the offered extensions (RFC 6455 9.1, "
                             "RFC 7692 5): %r" % value)
    params = {}
    for name, v in elems[0][1]:
        name = name.lower()
        if name in params:
            raise AssertionError("%s twice in %r (RFC 7692 5.1)" % (name, value))
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if v is not None:
                raise AssertionError("%s has a value in %r (RFC 7692 7.1.1)" % (name, value))
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if v is None or not re.fullmatch(r"[1-9][0-9]?", v) or not 8 <= int(v) <= 15:
                raise AssertionError("%s needs a value 8..15 without leading zeroes in %r (RFC 7692 7.1.2)"
                                     % (name, value))
        else:
            raise AssertionError("%s is not a permessage-deflate response parameter: %r (RFC 7692 5.1)"
                                 % (name, value))
        params[name] = v
    why = [o.problem(params) for o in offers]
    if all(why):
        raise AssertionError("the 101's %r accepts none of the offers: %s" % (value, "; ".join(why)))
    return {
        "server_nct": "server_no_context_takeover" in params,
        "client_nct": "client_no_context_takeover" in params,
        # zlib cannot inflate or deflate raw streams with an 8-bit window; 9 reads them.
        "server_bits": max(9, int(params.get("server_max_window_bits") or 15)),
        "client_bits": max(9, int(params.get("client_max_window_bits") or 15)),
        "params": params,
    }


class PmdSession:
    """What the client keeps for an agreed permessage-deflate: its compressor
    (kept between messages only when the server allowed context takeover,
    i.e. did not answer client_no_context_takeover) and its decompressor
    (kept only when the server did not announce server_no_context_takeover),
    as autobahn-python's PerMessageDeflate does."""

    def __init__(self, agreed):
        self.agreed = agreed
        self.client_nct = agreed["client_nct"]
        self.server_nct = agreed["server_nct"]
        self.client_bits = agreed["client_bits"]
        self.server_bits = agreed["server_bits"]
        self._comp = None
        self._decomp = None

    def deflate(self, msg):
        if self._comp is None or self.client_nct:
            self._comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.client_bits, 8)
        z = self._comp.compress(msg) + self._comp.flush(zlib.Z_SYNC_FLUSH)
        assert z.endswith(b"\x00\x00\xff\xff")
        return z[:-4]

    def inflate(self, data):
        if self._decomp is None or self.server_nct:
            self._decomp = zlib.decompressobj(-self.server_bits)
        return self._decomp.decompress(data + b"\x00\x00\xff\xff")


class Conn:
    """One client connection speaking raw frames, recording what the server does."""

    def __init__(self, port, path=PATH, offers=None):
        """offers: PmdOffer list for Sec-WebSocket-Extensions (none: no header)."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16))
        req = ("GET %s HTTP/1.1\r\n"
               "User-Agent: AutobahnTestSuite/0.8.2-0.10.9\r\n"
               "Host: 127.0.0.1:%d\r\n"
               "Upgrade: WebSocket\r\n"
               "Connection: Upgrade\r\n"
               "Pragma: no-cache\r\n"
               "Cache-Control: no-cache\r\n"
               "Sec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n%s\r\n" % (
                   path, port, key.decode(),
                   ("Sec-WebSocket-Extensions: %s\r\n" % ", ".join(o.header() for o in offers))
                   if offers else "")).encode()
        self.sock.sendall(req)
        resp = b""
        deadline = time.monotonic() + scaled(5)
        while b"\r\n\r\n" not in resp:
            if time.monotonic() > deadline:
                raise AssertionError("opening handshake timed out; got %r" % resp)
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("server closed during opening handshake; got %r" % resp)
            resp += chunk
        head, _, rest = resp.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not re.match(r"HTTP/1\.1 101\b", lines[0]):
            raise AssertionError("opening handshake: expected 101, got %r" % head)
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if hdrs.get("sec-websocket-accept") != accept:
            raise AssertionError("bad Sec-WebSocket-Accept in %r" % head)
        if hdrs.get("upgrade", "").lower() != "websocket" or "upgrade" not in hdrs.get("connection", "").lower():
            raise AssertionError("bad Upgrade/Connection in %r" % head)
        self.ext_response = hdrs.get("sec-websocket-extensions")
        self.pmd = None               # the agreed permessage-deflate, when it was
        if self.ext_response is not None:
            if not offers:
                raise AssertionError("server negotiated an extension nobody asked for: %r" % head)
            self.pmd = PmdSession(pmd_accept(offers, self.ext_response))
        self.sock.setblocking(False)
        self.rbuf = bytearray(rest)
        self.rpos = 0
        self.t_open = time.monotonic()
        self.events = []
        self.msg_op = None
        self.msg_parts = []
        self.msg_rsv1 = False
        self.wire_in = 0              # data frame payload octets received
        self.server_close = None      # (code or None, reason bytes, time)
        self.client_close_at = None   # time we sent our close
        self.closed_by_me = None      # True: we started the closing handshake
        self.tcp_closed_at = None
        self.tcp_closed_how = None    # "eof" | "reset"
        self.dropped_by_me = None     # reason string when we had to drop TCP
        self.send_failed = None
        self.violations = []
        self.auto_close = None        # callable run after every event
        # Replies we owe the server (pong, close) wait while we are in the
        # middle of writing a frame, or while a case script is still sending
        # (Autobahn queues them behind the data it already queued).
        self.hold = False
        self._sending = 0
        self._ctrl_queue = []

    # -- state ------------------------------------------------------------
    def is_open(self):
        """Autobahn's STATE_OPEN: no close sent or received, TCP up."""
        return self.server_close is None and self.client_close_at is None and self.tcp_closed_at is None

    # -- receiving --------------------------------------------------------
    def _recv_some(self):
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            except ConnectionResetError:
                self._tcp_closed("reset")
                return
            except OSError as e:
                self._tcp_closed("error %s" % e)
                return
            if not data:
                self._tcp_closed("eof")
                return
            self.rbuf += data
            self._parse()
            if len(data) < (1 << 20):
                return

    def _tcp_closed(self, how):
        if self.tcp_closed_at is None:
            self.tcp_closed_at = time.monotonic()
            self.tcp_closed_how = how
            try:
                self.sock.close()
            except OSError:
                pass

    def _violation(self, msg):
        self.violations.append(msg)

    def _parse(self):
        buf = self.rbuf
        while True:
            avail = len(buf) - self.rpos
            if avail < 2:
                break
            p = self.rpos
            b0, b1 = buf[p], buf[p + 1]
            n = b1 & 0x7F
            hl = 2
            if n == 126:
                if avail < 4:
                    break
                n = struct.unpack_from("!H", buf, p + 2)[0]
                hl = 4
            elif n == 127:
                if avail < 10:
                    break
                n = struct.unpack_from("!Q", buf, p + 2)[0]
                hl = 10
            if b1 & 0x80:
                hl += 4
            if avail < hl + n:
                break
            payload = bytes(buf[p + hl:p + hl + n])
            if b1 & 0x80:
                self._violation("server sent a masked frame")
                payload = mask_bytes(payload, bytes(buf[p + hl - 4:p + hl]))
            self.rpos = p + hl + n
            self._frame(b0 >> 7, (b0 >> 4) & 7, b0 & 0x0F, payload)
        if self.rpos > (1 << 20) and self.rpos * 2 > len(buf):
            del buf[:self.rpos]
            self.rpos = 0
        elif self.rpos == len(buf):
            buf.clear()
            self.rpos = 0

    def _frame(self, fin, rsv, op, payload):
        if self.server_close is not None:
            self._violation("server sent a frame (opcode %d) after its close frame" % op)
            return
        # RSV1 is permessage-deflate's "compressed" bit, on a message's first
        # frame only (RFC 7692 section 6); any other RSV bit is never allowed.
        if rsv and not (rsv == 4 and self.pmd is not None and op in (1, 2)):
            self._violation("server frame with RSV=%d (opcode %d%s)" % (
                rsv, op, ", permessage-deflate agreed" if self.pmd is not None else ""))
        if op in (0, 1, 2):
            self.wire_in += len(payload)
        if op >= 8:
            if not fin or len(payload) > 125:
                self._violation("bad server control frame op=%d fin=%d len=%d" % (op, fin, len(payload)))
            if op == 9:
                self.events.append(("ping", payload))
                # Autobahn answers pings automatically.
                if self.client_close_at is None:
                    self._queue_ctrl(build_frame(10, payload)[0], False)
            elif op == 10:
                self.events.append(("pong", payload))
            elif op == 8:
                self._server_close_frame(payload)
                return
            else:
                self._violation("server used reserved opcode %d" % op)
                return
        elif op in (1, 2):
            if self.msg_op is not None:
                self._violation("server started a new message inside a fragmented one")
            self.msg_op = op
            self.msg_parts = [payload]
            self.msg_rsv1 = rsv == 4 and self.pmd is not None
            if fin:
                self._message_done()
        elif op == 0:
            if self.msg_op is None:
                self._violation("server sent a continuation frame with no message to continue")
            else:
                self.msg_parts.append(payload)
                if fin:
                    self._message_done()
        else:
            self._violation("server used reserved opcode %d" % op)
            return
        if self.auto_close is not None:
            self.auto_close(self)

    def _message_done(self):
        data = b"".join(self.msg_parts)
        binary = self.msg_op == 2
        self.msg_op, self.msg_parts = None, []
        if self.msg_rsv1:
            try:
                data = self.pmd.inflate(data)
            except zlib.error as e:
                self._violation("server sent a compressed message that does not inflate with a %d-bit window "
                                "(%s): %s" % (self.pmd.server_bits, e, short(data)))
        if not binary and not valid_utf8(data):
            self._violation("server sent a text message that is not valid UTF-8: %s" % short(data))
        self.events.append(("message", data, binary))

    def _server_close_frame(self, payload):
        code, reason = None, b""
        if len(payload) == 1:
            self._violation("server close frame with a 1-octet payload")
        elif len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            reason = payload[2:]
            if not valid_close_code_from_server(code):
                self._violation("server close frame with invalid code %d" % code)
            if not valid_utf8(reason):
                self._violation("server close reason is not UTF-8: %r" % reason)
        self.server_close = (code, reason, time.monotonic())
        if self.client_close_at is None:
            # Server started the closing handshake: reply (code 1000, as
            # autobahn-python does without echoCloseCodeReason).
            self.closed_by_me = False
            self._queue_ctrl(build_frame(8, close_payload(NORMAL))[0], True)

    # -- sending ----------------------------------------------------------
    def _queue_ctrl(self, frame, is_close):
        if self._sending or self.hold:
            self._ctrl_queue.append((frame, is_close))
        else:
            self._send_ctrl(frame, is_close)

    def _send_ctrl(self, frame, is_close):
        if self.tcp_closed_at is not None:
            return
        if is_close:
            if self.client_close_at is not None:
                return
            self.client_close_at = time.monotonic()
        elif self.client_close_at is not None:
            return
        self._send_all(frame)

    def flush_ctrl(self):
        self.hold = False
        while self._ctrl_queue and not self._sending:
            frame, is_close = self._ctrl_queue.pop(0)
            self._send_ctrl(frame, is_close)

    def _send_all(self, data):
        """Send everything while reading whatever the server sends meanwhile."""
        self._sending += 1
        try:
            ok = self._send_all_inner(data)
        finally:
            self._sending -= 1
        if not self._sending and not self.hold and self._ctrl_queue:
            self.flush_ctrl()
        return ok

    def _send_all_inner(self, data):
        if self.tcp_closed_at is not None:
            self.send_failed = self.send_failed or "connection already closed"
            return False
        mv = memoryview(data)
        last = time.monotonic()
        while len(mv):
            # A server that has sent its close need not keep reading for long.
            stall = scaled(2) if self.server_close is not None else scaled(60)
            try:
                r, w, _ = select.select([self.sock], [self.sock], [], 0.5)
            except (OSError, ValueError):
                self.send_failed = "socket closed"
                return False
            if r:
                self._recv_some()
                if self.tcp_closed_at is not None:
                    self.send_failed = "server closed TCP while we were sending"
                    return False
            if w:
                try:
                    sent = self.sock.send(mv[:1 << 20])
                except BlockingIOError:
                    sent = 0
                except (BrokenPipeError, ConnectionResetError) as e:
                    self.send_failed = "send: %s" % e
                    self._recv_some()
                    if self.tcp_closed_at is None:
                        self._tcp_closed("reset")
                    return False
                if sent:
                    mv = mv[sent:]
                    last = time.monotonic()
            if time.monotonic() - last > stall:
                if self.server_close is not None:
                    self.send_failed = ("server stopped reading after its close frame (%d bytes unsent)"
                                        % len(mv))
                    return False
                raise AssertionError("sending stalled for %.0fs (%d bytes left): server stopped reading"
                                     % (stall, len(mv)))
        return True

    def send_raw(self, data, chopsize=None):
        if not chopsize:
            return self._send_all(data)
        chops = (len(data) + chopsize - 1) // chopsize
        self._sending += 1     # the whole chopped frame is one write for reply ordering
        try:
            for i in range(0, len(data), chopsize):
                if not self._send_all_inner(data[i:i + chopsize]):
                    return False
                if chops <= 300:
                    self.pump(0.0005)   # separate TCP segments, like Autobahn's chopped writes
        finally:
            self._sending -= 1
            if not self._sending and not self.hold and self._ctrl_queue:
                self.flush_ctrl()
        return True

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, chopsize=None, sync=False,
                   payload_len=None):
        if payload_len is not None:
            payload = repeat_to(payload, payload_len)
        frame, _ = build_frame(opcode, payload, fin, rsv)
        if opcode == 8:
            self._note_client_close()
        ok = self.send_raw(frame, chopsize)
        if sync:
            self.pump(0.002)
        return ok

    def _note_client_close(self):
        if self.client_close_at is None:
            self.client_close_at = time.monotonic()
            if self.closed_by_me is None and self.server_close is None:
                self.closed_by_me = True

    def send_close(self, code=None, reason=b""):
        return self.send_frame(8, close_payload(code, reason))

    def send_message(self, payload, binary=False, frag_size=None, chopsize=None, compress=False):
        """A message, optionally compressed (RSV1 on its first frame), optionally
        fragmented into frames of frag_size payload octets (the compressed ones,
        as autobahn-python's autoFragmentSize does)."""
        op = 2 if binary else 1
        rsv = 0
        if compress:
            payload, rsv = self.pmd.deflate(payload), 4
        if not frag_size or frag_size >= len(payload):
            return self.send_raw(build_frame(op, payload, rsv=rsv)[0], chopsize)
        parts = []
        for i in range(0, len(payload), frag_size):
            last = i + frag_size >= len(payload)
            parts.append(build_frame(op if i == 0 else 0, payload[i:i + frag_size], fin=last,
                                     rsv=rsv if i == 0 else 0)[0])
        return self.send_raw(b"".join(parts), chopsize)

    def drop(self, why):
        if self.tcp_closed_at is None:
            self.dropped_by_me = why
            self._tcp_closed("dropped by client: " + why)

    # -- waiting ----------------------------------------------------------
    def pump(self, seconds, until=None):
        """Read for up to `seconds`, or until until() is true. Returns until() (or True)."""
        deadline = time.monotonic() + seconds
        while True:
            if until is not None and until():
                return True
            if self.tcp_closed_at is not None:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                r, _, _ = select.select([self.sock], [], [], min(left, 0.25))
            except (OSError, ValueError):
                self._tcp_closed("select error")
                break
            if r:
                self._recv_some()
        return until() if until is not None else True

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Autobahn-style judging
# ---------------------------------------------------------------------------

class Expect:
    def __init__(self, ok, non_strict=None, closed_by_me=True, codes=(NORMAL,),
                 require_clean=True, suppress_close=False, informational=False):
        self.outcomes = [(OK, list(ok))]
        if non_strict is not None:
            self.outcomes.append((NON_STRICT, list(non_strict)))
        self.closed_by_me = closed_by_me
        self.codes = list(codes)
        self.require_clean = require_clean
        self.suppress_close = suppress_close
        self.informational = informational


def expect_echo(events, **kw):
    return Expect(events, closed_by_me=True, codes=(NORMAL,), require_clean=True, **kw)


def expect_fail(code=PROTOCOL_ERROR, ok=(), non_strict=None):
    return Expect(list(ok), non_strict=non_strict, closed_by_me=False, codes=(code,),
                  require_clean=False)


class AutobahnCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.conns = []
        if not SERVER.alive():
            self.fail("server is not running (exit %s):\n%s" % (SERVER.proc.returncode, SERVER.read_log()[-4000:]))

    def tearDown(self):
        for c in self.conns:
            c.close_socket()
        if not SERVER.alive():
            self.fail("server died during this case (exit %s):\n%s"
                      % (SERVER.proc.returncode, SERVER.read_log()[-6000:]))

    def connect(self, exp=None, offers=None):
        c = Conn(SERVER.port, offers=offers)
        self.conns.append(c)
        if exp is not None:
            self._arm_auto_close(c, exp)
        return c

    @staticmethod
    def _arm_auto_close(c, exp):
        # Case.finishWhenDone: once the events equal every expected outcome,
        # the fuzzer starts the closing handshake itself.
        def check(conn):
            if not exp.closed_by_me or exp.suppress_close or not conn.is_open():
                return
            for _, evs in exp.outcomes:
                if conn.events != evs:
                    return
            conn.send_close(exp.codes[0])
        c.auto_close = check

    def finish(self, c, close_after=None, kill_after=None):
        """Let the case run out like Autobahn's closeAfter/killAfter timers do."""
        c.flush_ctrl()
        start = time.monotonic()
        kill_deadline = start + scaled(kill_after) if kill_after else None
        if close_after:
            c.pump(scaled(close_after),
                   until=lambda: not c.is_open() or (kill_deadline and time.monotonic() >= kill_deadline))
            if c.is_open():
                c.send_close(NORMAL)
        if kill_deadline is None and c.client_close_at is None and c.server_close is None:
            kill_deadline = start + scaled(10)   # safety net, never expected to fire
        while c.tcp_closed_at is None:
            now = time.monotonic()
            if kill_deadline is not None and now >= kill_deadline:
                c.drop("killAfter(%s) fired: connection still up %.2fs after the case ran"
                       % (kill_after, now - start))
                break
            if c.client_close_at is not None and c.server_close is None:
                if now - c.client_close_at > scaled(CLOSE_HANDSHAKE_TIMEOUT):
                    c.drop("no close frame from the server %.2fs after ours" % (now - c.client_close_at))
                    break
            if c.client_close_at is not None and c.server_close is not None:
                done = max(c.client_close_at, c.server_close[2])
                if now - done > scaled(SERVER_DROP_TIMEOUT):
                    c.drop("server did not drop TCP %.2fs after the closing handshake" % (now - done))
                    break
            c.pump(0.05)

    def judge(self, cid, desc, c, exp, received=None, extra_note=""):
        received = c.events if received is None else received
        RESULTS_CODES[cid] = c.server_close[0] if c.server_close else None
        behavior = FAILED
        for name, evs in exp.outcomes:
            if received == evs:
                behavior = name
                break
        closed_by_me = bool(c.closed_by_me)
        was_clean = (c.server_close is not None and c.client_close_at is not None
                     and c.dropped_by_me is None)
        remote_code = c.server_close[0] if c.server_close else None
        if exp.closed_by_me != closed_by_me:
            bclose = FAILED
            rclose = "the connection was failed by the wrong endpoint (%s started closing)" % (
                "client" if closed_by_me else ("server" if c.server_close else "nobody; TCP dropped"))
        elif exp.require_clean and not was_clean:
            bclose = UNCLEAN
            rclose = "the spec requires a clean close here"
        elif remote_code is not None and remote_code not in exp.codes:
            bclose = WRONG_CODE
            rclose = "close code %d, should have been %s or empty" % (remote_code, exp.codes)
        elif c.dropped_by_me:
            bclose = FAILED_BY_CLIENT
            rclose = "the client had to drop TCP"
        else:
            bclose = OK
            rclose = "properly closed"

        notes = []
        if c.server_close is not None and c.server_close[0] is None:
            notes.append("server close frame without code")
        if c.server_close is None and c.tcp_closed_at is not None and not c.dropped_by_me:
            notes.append("server dropped TCP without a close frame")
        if c.tcp_closed_how == "reset":
            notes.append("TCP ended with RST")
        if extra_note:
            notes.append(extra_note)
        dur = (c.tcp_closed_at or time.monotonic()) - c.t_open

        def report():
            sc = c.server_close
            return ("case %s\n  sent: %s\n  expected events (OK): %s%s\n  received: %s\n"
                    "  behavior: %s; close: %s (%s)\n"
                    "  server close: %s; our close sent first: %s; TCP end: %s%s; send problem: %s\n"
                    "  protocol violations by server: %s%s" % (
                        cid, desc,
                        fmt_events(exp.outcomes[0][1]),
                        ("; NON-STRICT: " + fmt_events(exp.outcomes[1][1])) if len(exp.outcomes) > 1 else "",
                        fmt_events(received), behavior, bclose, rclose,
                        ("code=%s reason=%r after %.3fs" % (sc[0], sc[1][:60], sc[2] - c.t_open)) if sc else "none",
                        closed_by_me, c.tcp_closed_how,
                        (" after %.3fs" % (c.tcp_closed_at - c.t_open)) if c.tcp_closed_at else "",
                        c.send_failed, c.violations or "none",
                        ("\n  notes: " + "; ".join(notes)) if notes else ""))

        if exp.informational:
            RESULTS[cid] = (INFORMATIONAL, INFORMATIONAL, dur, "; ".join(notes))
            _log("[autobahn-like] %s informational: behavior would be %s, close %s, events %s, server close %s%s"
                 % (cid, behavior, bclose, fmt_events(received),
                    c.server_close[:2] if c.server_close else None,
                    (" (" + "; ".join(notes) + ")") if notes else ""))
            self.assertEqual(c.violations, [], report())
            return
        RESULTS[cid] = (behavior, bclose, dur, "; ".join(notes))
        if notes and behavior == OK and bclose == OK:
            _log("[autobahn-like] %s OK (note: %s)" % (cid, "; ".join(notes)))
        self.assertEqual(c.violations, [], report())
        if behavior == NON_STRICT and ALLOW_NON_STRICT:
            _log("[autobahn-like] %s NON-STRICT (allowed by ORR_AB_ALLOW_NON_STRICT)" % cid)
        elif behavior != OK:
            self.fail("Autobahn would report %s\n%s" % (behavior, report()))
        if bclose != OK:
            self.fail("Autobahn would report close behavior %s\n%s" % (bclose, report()))

    # convenience: the common shape of a case
    def run_case(self, cid, desc, exp, script, close_after=None, kill_after=None, offers=None):
        c = self.connect(exp, offers=offers)
        if offers and c.pmd is None:
            self.fail("case %s: the server declined %s" % (cid, ", ".join(o.header() for o in offers)))
        c.hold = True
        script(c)
        self.finish(c, close_after=close_after, kill_after=kill_after)
        self.judge(cid, desc, c, exp)
        return c


# ---------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------

HELLO = b"Hello, world!"
SIZES_1 = [(1, 0), (2, 125), (3, 126), (4, 127), (5, 128), (6, 65535), (7, 65536)]


class TestAutobahnLike(AutobahnCase):

    # ---- 1.x Framing -----------------------------------------------------
    def _case_1(self, sub, num, length, chopsize=None):
        binary = sub == 2
        payload = (b"\xfe" if binary else b"*") * length
        cid = "1.%d.%d" % (sub, num) if num else "1.%d.x(%d octets, chops of %d)" % (sub, length, chopsize)
        desc = "%s message of %d octets%s" % ("binary" if binary else "text", length,
                                              " in chops of %d" % chopsize if chopsize else "")
        self.run_case(cid, desc, expect_echo([("message", payload, binary)]),
                      lambda c: c.send_frame(2 if binary else 1, payload, chopsize=chopsize),
                      kill_after=10)

    def test_case_1_extra_chops(self):
        """Not an Autobahn case: every 1.x length also sent in small chops."""
        for binary in (False, True):
            for length in (0, 125, 126, 127, 128, 65535, 65536):
                for chop in ((1, 7) if length <= 128 else (7, 1300)):
                    with self.subTest(binary=binary, length=length, chop=chop):
                        self._case_1(2 if binary else 1, 0, length, chopsize=chop)

    # ---- 2.x Pings/Pongs -------------------------------------------------
    def test_case_2_1(self):
        self.run_case("2.1", "ping without payload", expect_echo([("pong", b"")]),
                      lambda c: c.send_frame(9), close_after=1)

    def test_case_2_2(self):
        self.run_case("2.2", "ping with small text payload", expect_echo([("pong", HELLO)]),
                      lambda c: c.send_frame(9, HELLO), close_after=1)

    def test_case_2_3(self):
        p = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
        self.run_case("2.3", "ping with small binary payload", expect_echo([("pong", p)]),
                      lambda c: c.send_frame(9, p), close_after=1)

    def test_case_2_4(self):
        p = b"\xfe" * 125
        self.run_case("2.4", "ping with 125-octet binary payload", expect_echo([("pong", p)]),
                      lambda c: c.send_frame(9, p), close_after=1)

    def test_case_2_5(self):
        self.run_case("2.5", "ping with 126-octet payload (too long for a control frame)",
                      expect_fail(PROTOCOL_ERROR),
                      lambda c: c.send_frame(9, b"\xfe" * 126), kill_after=1)

    def test_case_2_6(self):
        p = b"\xfe" * 125
        self.run_case("2.6", "ping with 125-octet payload in octet-wise chops", expect_echo([("pong", p)]),
                      lambda c: c.send_frame(9, p, chopsize=1), close_after=2)

    def test_case_2_7(self):
        def script(c):
            c.send_frame(10)
            c.send_close(NORMAL)
        self.run_case("2.7", "unsolicited pong without payload, then close", expect_echo([]),
                      script, close_after=1)

    def test_case_2_8(self):
        def script(c):
            c.send_frame(10, b"unsolicited pong payload")
            c.send_close(NORMAL)
        self.run_case("2.8", "unsolicited pong with payload, then close", expect_echo([]),
                      script, close_after=1)

    def test_case_2_9(self):
        def script(c):
            c.send_frame(10, b"unsolicited pong payload")
            c.send_frame(9, b"ping payload")
        self.run_case("2.9", "unsolicited pong, then ping", expect_echo([("pong", b"ping payload")]),
                      script, close_after=1)

    def _case_2_10(self, cid, chopsize):
        pl = [b"payload-%d" % i for i in range(10)]

        def script(c):
            for p in pl:
                c.send_frame(9, p, chopsize=chopsize)
        self.run_case(cid, "10 pings with payload%s" % (" in octet-wise chops" if chopsize else ""),
                      expect_echo([("pong", p) for p in pl]), script, close_after=3)

    def test_case_2_10(self):
        self._case_2_10("2.10", None)

    def test_case_2_11(self):
        self._case_2_10("2.11", 1)

    # ---- 3.x Reserved bits -----------------------------------------------
    def test_case_3_1(self):
        self.run_case("3.1", "text message with RSV=1", expect_fail(),
                      lambda c: c.send_frame(1, HELLO, rsv=1), kill_after=1)

    def _case_3_prefixed(self, cid, rsv, sync=False, chopsize=None):
        def script(c):
            c.send_frame(1, HELLO, sync=sync, chopsize=chopsize)
            c.send_frame(1, HELLO, rsv=rsv, sync=sync, chopsize=chopsize)
            c.send_frame(9, sync=sync, chopsize=chopsize)
        self.run_case(cid, "text message, same again with RSV=%d, then ping%s" % (
            rsv, " (frame-wise chops)" if sync else " (octet-wise chops)" if chopsize else ""),
            expect_fail(ok=[("message", HELLO, False)], non_strict=[]), script, kill_after=1)

    def test_case_3_2(self):
        self._case_3_prefixed("3.2", 2)

    def test_case_3_3(self):
        self._case_3_prefixed("3.3", 3, sync=True)

    def test_case_3_4(self):
        self._case_3_prefixed("3.4", 4, chopsize=1)

    def test_case_3_5(self):
        self.run_case("3.5", "binary message with RSV=5", expect_fail(),
                      lambda c: c.send_frame(2, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5), kill_after=1)

    def test_case_3_6(self):
        self.run_case("3.6", "ping with RSV=6", expect_fail(),
                      lambda c: c.send_frame(9, HELLO, rsv=6), kill_after=1)

    def test_case_3_7(self):
        self.run_case("3.7", "close with RSV=7", expect_fail(),
                      lambda c: c._send_all(build_frame(8, b"", rsv=7)[0]), kill_after=1)

    # ---- 4.x Opcodes -----------------------------------------------------
    def _case_4_alone(self, cid, op, payload):
        self.run_case(cid, "frame with reserved opcode %d, payload %d octets" % (op, len(payload)),
                      expect_fail(), lambda c: c.send_frame(op, payload), kill_after=1)

    def _case_4_prefixed(self, cid, op, payload, chopsize=None):
        def script(c):
            c.send_frame(1, HELLO, chopsize=chopsize)
            c.send_frame(op, payload, chopsize=chopsize)
            c.send_frame(9, chopsize=chopsize)
        self.run_case(cid, "text message, then reserved opcode %d (payload %d), then ping%s" % (
            op, len(payload), " (octet-wise chops)" if chopsize else ""),
            expect_fail(ok=[("message", HELLO, False)], non_strict=[]), script, kill_after=1)

    def test_case_4_1_1(self):
        self._case_4_alone("4.1.1", 3, b"")

    def test_case_4_1_2(self):
        self._case_4_alone("4.1.2", 4, b"reserved opcode payload")

    def test_case_4_1_3(self):
        self._case_4_prefixed("4.1.3", 5, b"")

    def test_case_4_1_4(self):
        self._case_4_prefixed("4.1.4", 6, HELLO)

    def test_case_4_1_5(self):
        self._case_4_prefixed("4.1.5", 7, HELLO, chopsize=1)

    def test_case_4_2_1(self):
        self._case_4_alone("4.2.1", 11, b"")

    def test_case_4_2_2(self):
        self._case_4_alone("4.2.2", 12, b"reserved opcode payload")

    def test_case_4_2_3(self):
        self._case_4_prefixed("4.2.3", 13, b"")

    def test_case_4_2_4(self):
        self._case_4_prefixed("4.2.4", 14, HELLO)

    def test_case_4_2_5(self):
        self._case_4_prefixed("4.2.5", 15, HELLO, chopsize=1)

    # ---- 5.x Fragmentation -----------------------------------------------
    def test_case_5_1(self):
        def script(c):
            c.send_frame(9, b"fragment1", fin=False)
            c.send_frame(0, b"fragment2", fin=True)
        self.run_case("5.1", "ping fragmented into 2 frames", expect_fail(), script, kill_after=1)

    def test_case_5_2(self):
        def script(c):
            c.send_frame(10, b"fragment1", fin=False)
            c.send_frame(0, b"fragment2", fin=True)
        self.run_case("5.2", "pong fragmented into 2 frames", expect_fail(), script, kill_after=1)

    def _case_5_3(self, cid, sync=False, chopsize=None):
        def script(c):
            c.send_frame(1, b"fragment1", fin=False, sync=sync, chopsize=chopsize)
            c.send_frame(0, b"fragment2", fin=True, sync=sync, chopsize=chopsize)
        self.run_case(cid, "text message in 2 fragments%s" % (
            " (frame-wise chops)" if sync else " (octet-wise chops)" if chopsize else ""),
            expect_echo([("message", b"fragment1fragment2", False)]), script, close_after=1)

    def test_case_5_3(self):
        self._case_5_3("5.3")

    def test_case_5_4(self):
        self._case_5_3("5.4", sync=True)

    def test_case_5_5(self):
        self._case_5_3("5.5", chopsize=1)

    def _case_5_6(self, cid, sync=False, chopsize=None):
        def script(c):
            c.send_frame(1, b"fragment1", fin=False, sync=sync, chopsize=chopsize)
            c.send_frame(9, b"ping payload", sync=sync, chopsize=chopsize)
            c.send_frame(0, b"fragment2", fin=True, sync=sync, chopsize=chopsize)
        self.run_case(cid, "text message in 2 fragments with a ping in between%s" % (
            " (frame-wise chops)" if sync else " (octet-wise chops)" if chopsize else ""),
            expect_echo([("pong", b"ping payload"), ("message", b"fragment1fragment2", False)]),
            script, close_after=1)

    def test_case_5_6(self):
        self._case_5_6("5.6")

    def test_case_5_7(self):
        self._case_5_6("5.7", sync=True)

    def test_case_5_8(self):
        self._case_5_6("5.8", chopsize=1)

    def _case_5_9(self, cid, fin, sync=False, chopsize=None):
        def script(c):
            c.send_frame(0, b"non-continuation payload", fin=fin, sync=sync, chopsize=chopsize)
            c.send_frame(1, HELLO, sync=sync, chopsize=chopsize)
        self.run_case(cid, "continuation frame (FIN=%d) with nothing to continue, then text%s" % (
            fin, " (frame-wise chops)" if sync else " (octet-wise chops)" if chopsize else ""),
            expect_fail(), script, kill_after=1)

    def test_case_5_9(self):
        self._case_5_9("5.9", True)

    def test_case_5_10(self):
        self._case_5_9("5.10", True, sync=True)

    def test_case_5_11(self):
        self._case_5_9("5.11", True, chopsize=1)

    def test_case_5_12(self):
        self._case_5_9("5.12", False)

    def test_case_5_13(self):
        self._case_5_9("5.13", False, sync=True)

    def test_case_5_14(self):
        self._case_5_9("5.14", False, chopsize=1)

    def test_case_5_15(self):
        def script(c):
            c.send_frame(1, b"fragment1", fin=False)
            c.send_frame(0, b"fragment2", fin=True)
            c.send_frame(0, b"fragment3", fin=False)
            c.send_frame(1, b"fragment4", fin=True)
        self.run_case("5.15", "text in 2 fragments, then continuation (FIN=0) with nothing to continue, then text",
                      expect_fail(ok=[("message", b"fragment1fragment2", False)], non_strict=[]),
                      script, kill_after=1)

    def _case_5_16(self, cid, fin):
        def script(c):
            for _ in range(2):
                c.send_frame(0, b"fragment1", fin=fin)
                c.send_frame(1, b"fragment2", fin=False)
                c.send_frame(0, b"fragment3", fin=True)
        self.run_case(cid, "2x: continuation (FIN=%d) with nothing to continue, then text in 2 fragments" % fin,
                      expect_fail(), script, kill_after=1)

    def test_case_5_16(self):
        self._case_5_16("5.16", False)

    def test_case_5_17(self):
        self._case_5_16("5.17", True)

    def test_case_5_18(self):
        def script(c):
            c.send_frame(1, b"fragment1", fin=False)
            c.send_frame(1, b"fragment2", fin=True)
        self.run_case("5.18", "text message in 2 fragments, both with the text opcode",
                      expect_fail(), script, kill_after=1)

    def _case_5_19(self, cid, sync):
        frags = [b"fragment1", b"fragment2", b"fragment3", b"fragment4", b"fragment5"]
        pings = [b"pongme 1!", b"pongme 2!"]
        exp = expect_echo([("pong", pings[0]), ("pong", pings[1]), ("message", b"".join(frags), False)])
        c = self.connect(exp)
        c.send_frame(1, frags[0], fin=False, sync=sync)
        c.send_frame(0, frags[1], fin=False, sync=sync)
        c.send_frame(9, pings[0], sync=sync)
        c.pump(1.0)
        early = list(c.events)
        c.send_frame(0, frags[2], fin=False, sync=sync)
        c.send_frame(0, frags[3], fin=False, sync=sync)
        c.send_frame(9, pings[1], sync=sync)
        c.send_frame(0, frags[4], fin=True, sync=sync)
        self.finish(c, close_after=1)
        self.judge(cid, "text in 5 fragments, ping after 2, wait 1s, 2 more, ping, last%s" % (
            " (sync)" if sync else ""), c, exp)
        # Autobahn's expectation text: the first ping is answered at once,
        # before the last fragment is even sent.
        self.assertEqual(early, [("pong", pings[0])],
                         "case %s: first pong not received during the 1 s pause (got %s)"
                         % (cid, fmt_events(early)))

    def test_case_5_19(self):
        self._case_5_19("5.19", False)

    def test_case_5_20(self):
        self._case_5_19("5.20", True)

    # ---- 6.x UTF-8 -------------------------------------------------------
    def test_case_6_1_1(self):
        self.run_case("6.1.1", "text message of length 0", expect_echo([("message", b"", False)]),
                      lambda c: c.send_frame(1, b""), close_after=1)

    def test_case_6_1_2(self):
        def script(c):
            c.send_frame(1, b"", fin=False)
            c.send_frame(0, b"", fin=False)
            c.send_frame(0, b"", fin=True)
        self.run_case("6.1.2", "text message in 3 fragments, each of length 0",
                      expect_echo([("message", b"", False)]), script, close_after=1)

    def test_case_6_1_3(self):
        def script(c):
            c.send_frame(1, b"", fin=False)
            c.send_frame(0, b"middle frame payload", fin=False)
            c.send_frame(0, b"", fin=True)
        self.run_case("6.1.3", "text in 3 fragments, first and last empty",
                      expect_echo([("message", b"middle frame payload", False)]), script, close_after=1)

    P6_2 = "Hello-µ@ßöäüàá-UTF-8!!".encode("utf-8")

    def test_case_6_2_1(self):
        self.run_case("6.2.1", "valid UTF-8 text in one fragment",
                      expect_echo([("message", self.P6_2, False)]),
                      lambda c: c.send_frame(1, self.P6_2), close_after=1)

    def test_case_6_2_2(self):
        p1, p2 = "Hello-µ@ßöä".encode("utf-8"), "üàá-UTF-8!!".encode("utf-8")

        def script(c):
            c.send_frame(1, p1, fin=False)
            c.send_frame(0, p2, fin=True)
        self.run_case("6.2.2", "valid UTF-8 text in 2 fragments split on a code point boundary",
                      expect_echo([("message", p1 + p2, False)]), script, close_after=1)

    def test_case_6_2_3(self):
        self.run_case("6.2.3", "valid UTF-8 text in 1-octet fragments",
                      expect_echo([("message", self.P6_2, False)]),
                      lambda c: c.send_message(self.P6_2, frag_size=1), close_after=1)

    KAPPA = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

    def test_case_6_2_4(self):
        self.run_case("6.2.4", "valid UTF-8 text (kosme) in 1-octet fragments",
                      expect_echo([("message", self.KAPPA, False)]),
                      lambda c: c.send_message(self.KAPPA, frag_size=1), close_after=1)

    P6_3 = KAPPA + b"\xed\xa0\x80" + b"\x65\x64\x69\x74\x65\x64"

    def test_case_6_3_1(self):
        self.run_case("6.3.1", "invalid UTF-8 text (surrogate at octet 12) unfragmented",
                      expect_fail(INVALID_PAYLOAD), lambda c: c.send_frame(1, self.P6_3), kill_after=1)

    def test_case_6_3_2(self):
        self.run_case("6.3.2", "invalid UTF-8 text (surrogate at octet 12) in 1-octet fragments",
                      expect_fail(INVALID_PAYLOAD), lambda c: c.send_message(self.P6_3, frag_size=1),
                      kill_after=1)

    # 6.4.x fail fast
    P6_4 = KAPPA + b"\xf4\x90\x80\x80" + b"\x65\x64\x69\x74\x65\x64"

    def _case_6_4(self, cid, parts, one_frame):
        exp = expect_fail(INVALID_PAYLOAD, ok=[("timeout", "A")],
                          non_strict=[("timeout", "A"), ("timeout", "B")])
        c = self.connect(exp)
        received = []
        wait = scaled(1.0)
        if one_frame:
            frame, hl = build_frame(1, self.P6_4)
            cuts = [0, hl + len(parts[0]), hl + len(parts[0]) + len(parts[1]), len(frame)]
            chunks = [frame[cuts[i]:cuts[i + 1]] for i in range(3)]
        else:
            chunks = [build_frame(1, parts[0], fin=False)[0],
                      build_frame(0, parts[1], fin=False)[0],
                      build_frame(0, parts[2], fin=True)[0]]
        c.send_raw(chunks[0])
        c.pump(wait)
        t_part2 = None
        if c.is_open():
            received.append(("timeout", "A"))
            c.send_raw(chunks[1])
            t_part2 = time.monotonic()
            c.pump(wait, until=lambda: not c.is_open())
            if c.is_open():
                received.append(("timeout", "B"))
                c.send_raw(chunks[2])
                self.finish(c, kill_after=1)
            else:
                self.finish(c, kill_after=1)
        else:
            self.finish(c, kill_after=1)
        note = ""
        if t_part2 is not None and c.server_close is not None and c.server_close[2] >= t_part2:
            note = "failed %.1f ms after the invalid octet was sent" % ((c.server_close[2] - t_part2) * 1000)
        full = received + c.events
        self.judge(cid, "text %s: part1 %s, wait, part2 %s, wait, part3 %s" % (
            "in one frame sent in 3 chops" if one_frame else "in 3 frames",
            parts[0].hex(), parts[1].hex(), parts[2].hex()), c, exp, received=full, extra_note=note)

    def test_case_6_4_1(self):
        p = self.P6_4
        self._case_6_4("6.4.1", (p[:11], p[11:15], p[15:]), one_frame=False)

    def test_case_6_4_2(self):
        p = self.P6_4
        self._case_6_4("6.4.2", (p[:12], p[12:13], p[13:]), one_frame=False)

    def test_case_6_4_3(self):
        p = self.P6_4
        self._case_6_4("6.4.3", (p[:11], p[11:15], p[15:]), one_frame=True)

    def test_case_6_4_4(self):
        p = self.P6_4
        self._case_6_4("6.4.4", (p[:12], p[12:13], p[13:]), one_frame=True)

    def _case_6_x(self, cid, valid, payload):
        if valid:
            exp = expect_echo([("message", payload, False)])
        else:
            exp = expect_fail(INVALID_PAYLOAD)
        self.run_case(cid, "%s UTF-8 text in one frame, payload 0x%s" % (
            "valid" if valid else "invalid", payload.hex()), exp,
            lambda c: c.send_frame(1, payload), kill_after=0.5)

    def test_case_6_x_x_sequences_consistent(self):
        """The 6.5-6.23 data: each flag agrees with a strict UTF-8 decoder."""
        n = 0
        for gi, (title, seqs) in enumerate(UTF8_GROUPS):
            for j, (valid, s) in enumerate(seqs):
                n += 1
                self.assertEqual(valid, valid_utf8(s), "6.%d.%d %s: %s" % (gi + 5, j + 1, title, s.hex()))
        self.assertEqual(n, 132)

    # ---- 7.x Close handling ----------------------------------------------
    def test_case_7_1_1(self):
        self.run_case("7.1.1", "text message, then (on its echo) close",
                      expect_echo([("message", b"Hello World!", False)]),
                      lambda c: c.send_frame(1, b"Hello World!"), kill_after=1)

    def test_case_7_1_2(self):
        def script(c):
            c.send_close(NORMAL)
            c.send_frame(8)
        self.run_case("7.1.2", "two close frames", expect_echo([], suppress_close=True), script, kill_after=1)

    def test_case_7_1_3(self):
        def script(c):
            c.send_close(NORMAL)
            c.send_frame(9)
        self.run_case("7.1.3", "close, then ping", expect_echo([], suppress_close=True), script, kill_after=1)

    def test_case_7_1_4(self):
        def script(c):
            c.send_close(NORMAL)
            c.send_frame(1, b"Hello World!")
        self.run_case("7.1.4", "close, then text message", expect_echo([], suppress_close=True),
                      script, kill_after=1)

    def test_case_7_1_5(self):
        def script(c):
            c.send_frame(1, b"fragment1", fin=False)
            c.send_close(NORMAL)
            c.send_frame(0, b"fragment2", fin=True)
        self.run_case("7.1.5", "text fragment 1, close, then fragment 2",
                      expect_echo([], suppress_close=True), script, kill_after=1)

    def test_case_7_1_6(self):
        big = repeat_to(b"BAsd7&jh23", 256 * 1024)

        def script(c):
            c.send_frame(1, big)
            c.send_frame(1, b"Hello World!")
            c.send_close(NORMAL)
            c.send_frame(9)
        exp = Expect([("message", b"Hello World!", False)], non_strict=[], closed_by_me=True,
                     codes=(NORMAL,), require_clean=True, suppress_close=True, informational=True)
        c = self.run_case("7.1.6", "256 KiB text, small text, close, ping", exp, script, kill_after=1)
        full = [("message", big, False), ("message", b"Hello World!", False)]
        got = c.events
        _log("[autobahn-like] 7.1.6: %s" % (
            "both messages echoed before the close (as in order)" if got == full else
            "events %s" % fmt_events(got)))
        # Whatever was echoed must be correct, in order (a prefix of what we sent).
        self.assertEqual(got, full[:len(got)], "7.1.6: echoed events are not a prefix of what was sent: %s"
                         % fmt_events(got))
        self.assertIn(c.server_close[0] if c.server_close else None, (NORMAL, None),
                      "7.1.6: server close %s" % (c.server_close,))

    def _case_7_close(self, cid, desc, payload, codes, require_clean):
        exp = Expect([], closed_by_me=True, codes=codes, require_clean=require_clean, suppress_close=True)
        self.run_case(cid, desc, exp, lambda c: c.send_frame(8, payload), kill_after=1)

    def test_case_7_3_1(self):
        self._case_7_close("7.3.1", "close with empty payload", b"", (NORMAL,), True)

    def test_case_7_3_2(self):
        self._case_7_close("7.3.2", "close with a 1-octet payload", b"a", (PROTOCOL_ERROR,), False)

    def test_case_7_3_3(self):
        self._case_7_close("7.3.3", "close with code 1000, no reason", close_payload(NORMAL), (NORMAL,), True)

    def test_case_7_3_4(self):
        self._case_7_close("7.3.4", "close with code 1000 and reason",
                           close_payload(NORMAL, b"Hello World!"), (NORMAL,), True)

    def test_case_7_3_5(self):
        self._case_7_close("7.3.5", "close with code 1000 and a 123-octet reason",
                           close_payload(NORMAL, b"*" * 123), (NORMAL,), True)

    def test_case_7_3_6(self):
        self._case_7_close("7.3.6", "close with code 1000 and a 124-octet reason (payload 126)",
                           close_payload(NORMAL, b"*" * 124), (PROTOCOL_ERROR,), False)

    def test_case_7_5_1(self):
        reason = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"
        self._case_7_close("7.5.1", "close with code 1000 and a reason that is not UTF-8",
                           close_payload(NORMAL, reason), (PROTOCOL_ERROR, INVALID_PAYLOAD), False)
        code = RESULTS_CODES.get("7.5.1")
        if code == PROTOCOL_ERROR:
            _log("[autobahn-like] 7.5.1 note: server answered 1002 (Autobahn accepts 1002 or 1007)")

    def _case_7_7(self, cid, code):
        self._case_7_close(cid, "close with valid code %d" % code, close_payload(code), (NORMAL, code), True)

    def _case_7_9(self, cid, code):
        self._case_7_close(cid, "close with invalid code %d" % code, close_payload(code), (PROTOCOL_ERROR,), False)

    def _case_7_13(self, cid, code):
        exp = Expect([], closed_by_me=True, codes=(NORMAL, code, PROTOCOL_ERROR), require_clean=False,
                     suppress_close=True, informational=True)
        c = self.run_case(cid, "close with code %d" % code, exp,
                          lambda c: c.send_frame(8, close_payload(code)), kill_after=1)
        # Informational in Autobahn; RFC 6455 7.4.2 makes these invalid codes.
        _log("[autobahn-like] %s: server close %s, TCP %s" % (
            cid, c.server_close[:2] if c.server_close else None, c.tcp_closed_how))

    def test_case_7_13_1(self):
        self._case_7_13("7.13.1", 5000)

    def test_case_7_13_2(self):
        self._case_7_13("7.13.2", 65535)

    # ---- 9.x Limits/Performance -------------------------------------------
    def _case_9_single(self, cid, binary, datalen, waitsecs, frag=None, chop=None):
        if binary:
            payload = repeat_to(b"\x00\xfe\x23\xfa\xf0", datalen) if frag is None else b"\xfe" * datalen
        else:
            payload = repeat_to(b"BAsd7&jh23", datalen) if frag is None else b"*" * datalen
        exp = expect_echo([("message", payload, binary)])
        c = self.connect()   # no auto-close: like Autobahn 9.x, close once the echo is in
        t0 = time.monotonic()
        c.send_message(payload, binary=binary, frag_size=frag, chopsize=chop)
        t_sent = time.monotonic()
        hard = max(scaled(waitsecs), scaled(60))
        c.pump(hard, until=lambda: len(c.events) > 0 or not c.is_open())
        t_echo = time.monotonic()
        if c.is_open():
            c.send_close(NORMAL)
        self.finish(c)
        elapsed = t_echo - t0
        budget = "within" if elapsed <= waitsecs else "OVER"
        _log("[autobahn-like] %s %s %d octets%s%s: sent in %.3fs, echo after %.3fs (%s Autobahn's %ds budget)"
             % (cid, "binary" if binary else "text", datalen,
                (" frag %d" % frag) if frag else "", (" chop %d" % chop) if chop else "",
                t_sent - t0, elapsed, budget, waitsecs))
        self.judge(cid, "%s message of %d octets%s%s" % ("binary" if binary else "text", datalen,
                                                         (" in fragments of %d" % frag) if frag else "",
                                                         (" in chops of %d" % chop) if chop else ""),
                   c, exp)
        RESULTS[cid] = RESULTS[cid][:2] + (elapsed,) + RESULTS[cid][3:]
        self.assertLessEqual(elapsed, scaled(waitsecs), "case %s: echo after %.3fs, over Autobahn's %ds budget"
                             % (cid, elapsed, waitsecs))

    def _case_9_rtt(self, cid, binary, length, count, waitsecs):
        payload = (b"\xfe" if binary else b"*") * length
        frame_builder = (lambda: build_frame(2 if binary else 1, payload)[0])
        c = self.connect()
        t0 = time.monotonic()
        hard = max(scaled(waitsecs), scaled(60))
        bad = None
        done = 0
        for i in range(count):
            c._send_all(frame_builder())
            if not c.pump(hard, until=lambda: len(c.events) > 0 or not c.is_open()):
                bad = "no echo for message %d" % (i + 1)
                break
            ev = c.events.pop()
            if c.events or ev != ("message", payload, binary):
                bad = "message %d: got %s" % (i + 1, fmt_events([ev] + c.events))
                break
            done += 1
        elapsed = time.monotonic() - t0
        if c.is_open():
            c.send_close(NORMAL)
        self.finish(c)
        _log("[autobahn-like] %s %d %s messages of %d octets: %.3fs (%.1f us/roundtrip; Autobahn budget %ds)"
             % (cid, done, "binary" if binary else "text", length, elapsed,
                elapsed / max(done, 1) * 1e6, waitsecs))
        exp = expect_echo([])
        self.judge(cid, "%d %s messages of %d octets, one at a time" % (count, "binary" if binary else "text",
                                                                        length), c, exp,
                   extra_note=bad or "")
        RESULTS[cid] = RESULTS[cid][:2] + (elapsed,) + RESULTS[cid][3:]
        self.assertIsNone(bad, "case %s: %s" % (cid, bad))
        self.assertLessEqual(elapsed, scaled(waitsecs), "case %s: %.3fs, over Autobahn's %ds budget"
                             % (cid, elapsed, waitsecs))

    # ---- 10.x Auto-fragmentation ------------------------------------------
    def test_case_10_1_1(self):
        payload = b"*" * 65536
        self.run_case("10.1.1", "65536-octet text auto-fragmented into 1300-octet frames",
                      expect_echo([("message", payload, False)]),
                      lambda c: c.send_message(payload, frag_size=1300), kill_after=10)

    def test_case_10_1_1_extra_sizes(self):
        """Not an Autobahn case: large messages fragmented by the client in many sizes,
        with multi-byte UTF-8 split across fragment boundaries."""
        text = ("äöü€𝄞-" * 40000).encode("utf-8")[:300001]
        while not valid_utf8(text):
            text = text[:-1]
        binary = os.urandom(300000)
        for frag in (1, 2, 3, 7, 125, 126, 127, 1300, 4096, 65535, 65536, 131072):
            for is_bin, payload in ((False, text), (True, binary)):
                if frag < 7 and len(payload) > 20000:
                    payload = payload[:20000]
                    while not is_bin and not valid_utf8(payload):
                        payload = payload[:-1]
                with self.subTest(frag=frag, binary=is_bin):
                    self.run_case("10.1.x(frag %d %s)" % (frag, "bin" if is_bin else "text"),
                                  "%d-octet %s in %d-octet fragments" % (len(payload),
                                                                         "binary" if is_bin else "text", frag),
                                  expect_echo([("message", payload, is_bin)]),
                                  lambda c: c.send_message(payload, binary=is_bin, frag_size=frag),
                                  kill_after=20)

    # ---- 12.x / 13.x permessage-deflate ----------------------------------
    def _case_12(self, cid, corpus, length, count, waitsecs, autofrag, offers):
        """Autobahn's case12_x_x.py: `count` messages of `length` (characters
        for text) taken in turn from the corpus, each compressed by the client
        and sent once the previous one came back; every echo must have the
        same type, length and SHA-1. The server must accept the offer."""
        data, binary = CORPORA[corpus]()
        c = self.connect(offers=offers)
        desc = "%d %s messages of %d, auto-fragment %d, offer %s" % (
            count, "binary" if binary else "text", length, autofrag, ", ".join(o.header() for o in offers))
        if c.pmd is None:
            # Autobahn: UNIMPLEMENTED, which is not OK for a server that has
            # permessage-deflate on.
            c.send_close(NORMAL)
            self.finish(c)
            RESULTS[cid] = ("UNIMPLEMENTED", OK, 0.0, "offer declined")
            self.fail("case %s: the server declined %s (no Sec-WebSocket-Extensions in the 101): "
                      "Autobahn reports UNIMPLEMENTED" % (cid, ", ".join(o.header() for o in offers)))
        t0 = time.monotonic()
        deadline = t0 + scaled(waitsecs)
        ptr, bad, done, sent_raw = 0, None, 0, 0
        for i in range(count):
            end = (ptr + length) % len(data)
            msg = data[ptr:end] if end > ptr else data[ptr:] + data[:end]
            ptr = end
            wire = msg if binary else msg.encode("utf-8")
            sent_raw += len(wire)
            c.send_message(wire, binary=binary, frag_size=autofrag or None, compress=True)
            left = deadline - time.monotonic()
            if left <= 0 or not c.pump(left, until=lambda: len(c.events) > 0 or not c.is_open()):
                bad = "message %d: no echo within the case's %ds" % (i + 1, waitsecs)
                break
            ev = c.events.pop()
            if c.events or ev[0] != "message":
                bad = "message %d: got %s" % (i + 1, fmt_events([ev] + c.events))
                break
            if ev[2] != binary:
                bad = "message %d: echo is %s, sent %s" % (i + 1, "binary" if ev[2] else "text",
                                                          "binary" if binary else "text")
                break
            got = ev[1] if binary else ev[1].decode("utf-8", "replace")
            if len(got) != length or hashlib.sha1(ev[1]).digest() != hashlib.sha1(wire).digest():
                bad = "message %d: echo of length %d, SHA-1 %s; sent length %d, SHA-1 %s" % (
                    i + 1, len(got), hashlib.sha1(ev[1]).hexdigest(), length, hashlib.sha1(wire).hexdigest())
                break
            done += 1
        elapsed = time.monotonic() - t0
        if c.is_open():
            c.send_close(NORMAL)
        self.finish(c)
        _log("[autobahn-like] %s %d/%d in %.3fs; 101 %r; server's data %.1f%% of the payload" % (
            cid, done, count, elapsed, c.ext_response, 100.0 * c.wire_in / max(sent_raw, 1)))
        self.judge(cid, desc, c, expect_echo([]), extra_note=bad or "")
        RESULTS[cid] = RESULTS[cid][:2] + (elapsed,) + RESULTS[cid][3:]
        self.assertIsNone(bad, "case %s: %s" % (cid, bad))

    def test_case_12_x_rfc7692_examples(self):
        """Not an Autobahn case: RFC 7692 section 7.2.3's compressed "Hello"s,
        BFINAL set, empty messages, and the inflated size at the limit."""
        def deflate(data, final=False):
            co = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
            z = co.compress(data) + co.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
            return z if final else z[:-4]

        big = b"\x00" * CONFIG["max_message_bytes"]
        cases = [
            ("7.2.3.1 Hello", [(1, "f248cdc9c90700", True, 4)], (b"Hello", False)),
            ("7.2.3.1 Hello in 2 fragments", [(1, "f248cd", False, 4), (0, "c9c90700", True, 0)], (b"Hello", False)),
            ("7.2.3.3 stored block", [(1, "000500faff48656c6c6f00", True, 4)], (b"Hello", False)),
            ("7.2.3.4 BFINAL set", [(1, deflate(b"Hello", final=True).hex(), True, 4)], (b"Hello", False)),
            ("7.2.3.6 empty, 0x00", [(2, "00", True, 4)], (b"", True)),
            ("empty payload", [(2, "", True, 4)], (b"", True)),
            ("inflates to max_message_bytes", [(2, deflate(big).hex(), True, 4)], (big, True)),
        ]
        for name, frames, (want, binary) in cases:
            with self.subTest(case=name):
                self.run_case("12.x(%s)" % name, name, expect_echo([("message", want, binary)]),
                              lambda c, frames=frames: [c.send_frame(op, bytes.fromhex(h), fin=fin, rsv=rsv)
                                                        for op, h, fin, rsv in frames],
                              kill_after=10, offers=[PmdOffer()])

    def test_case_12_x_hostile(self):
        """Not an Autobahn case: a bomb past max_message_bytes (1009), a stream
        that does not inflate (1007), RSV1 on a continuation or a ping and RSV2
        (1002), invalid UTF-8 once inflated (1007)."""
        def deflate(data, zdict=None):
            co = (zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, zdict=zdict) if zdict
                  else zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15))
            return (co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH))[:-4]

        cases = [
            ("bomb", [(2, deflate(b"\x00" * (CONFIG["max_message_bytes"] + 1)), True, 4)], 1009),
            ("distance too far back", [(2, deflate(b"hello world", zdict=b"hello world"), True, 4)], INVALID_PAYLOAD),
            ("invalid UTF-8 inflated", [(1, deflate(b"a\xff"), True, 4)], INVALID_PAYLOAD),
            ("RSV1 on a continuation", [(1, deflate(b"ab"), False, 4), (0, b"", True, 4)], PROTOCOL_ERROR),
            ("RSV1 on a ping", [(9, b"p", True, 4)], PROTOCOL_ERROR),
            ("RSV2 with deflate agreed", [(1, b"x", True, 2)], PROTOCOL_ERROR),
        ]
        for name, frames, code in cases:
            with self.subTest(case=name):
                self.run_case("12.x(%s)" % name, name, expect_fail(code),
                              lambda c, frames=frames: [c.send_frame(op, p, fin=fin, rsv=rsv)
                                                        for op, p, fin, rsv in frames],
                              kill_after=2, offers=[PmdOffer()])

    def test_case_12_13_offers_and_answers(self):
        """Not an Autobahn case: the 101's answer to each of Autobahn's 13.x
        offers, and offers the server must decline (not refuse)."""
        for j, (offers, _) in enumerate(DEFLATE_PARAMS):
            with self.subTest(group="13.%d" % (j + 1)):
                c = self.connect(offers=offers)
                self.assertIsNotNone(c.pmd, "13.%d: declined" % (j + 1))
                first = offers[0]
                want = ("permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                        + ("; server_max_window_bits=%d" % first.request_mwb if first.request_mwb else ""))
                self.assertEqual(c.ext_response, want, "13.%d" % (j + 1))
                c.send_close(NORMAL)
                self.finish(c)
        for offer in ("permessage-deflate; server_max_window_bits=8",
                      "permessage-deflate; server_max_window_bits=16",
                      "permessage-deflate; client_max_window_bits=7",
                      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                      "permessage-deflate; foo=1",
                      "x-webkit-deflate-frame"):
            with self.subTest(offer=offer):
                raw = PmdOffer()
                raw.header = lambda offer=offer: offer
                c = self.connect(offers=[raw])
                self.assertIsNone(c.ext_response, "%r must be declined" % offer)
                c.send_close(NORMAL)
                self.finish(c)


# ---------------------------------------------------------------------------
# 12.x/13.x data: Autobahn's case12_x_x.py
# ---------------------------------------------------------------------------

MSG_SIZES = [
    (16, 1000, 60, 0), (64, 1000, 60, 0), (256, 1000, 120, 0), (1024, 1000, 240, 0),
    (4096, 1000, 480, 0), (8192, 1000, 480, 0), (16384, 1000, 480, 0), (32768, 1000, 480, 0),
    (65536, 1000, 480, 0), (131072, 1000, 480, 0),
    (8192, 1000, 480, 256), (16384, 1000, 480, 256), (32768, 1000, 480, 256), (65536, 1000, 480, 256),
    (131072, 1000, 480, 256), (131072, 1000, 480, 1024), (131072, 1000, 480, 4096),
    (131072, 1000, 480, 32768),
]

DEFLATE_FULL = os.environ.get("ORR_AB_DEFLATE_FULL") == "1"
DEFLATE_BUDGET = (1 << 20) if SANITIZED else (4 << 20)
DEFLATE_MIN = 4 if SANITIZED else 8


def deflate_count(length, count):
    if DEFLATE_FULL:
        return count
    return min(count, max(DEFLATE_MIN, DEFLATE_BUDGET // length))


# Autobahn's 13.x: the client's offers and, for the record, what Autobahn's
# own server answers to them (accept1..accept7). Orrery always answers
# server_no_context_takeover and client_no_context_takeover, and
# server_max_window_bits when offered: every one of these is valid.
DEFLATE_PARAMS = [
    ([PmdOffer()], "accept, no params of its own"),
    ([PmdOffer(request_no_context_takeover=True)], "client_no_context_takeover"),
    ([PmdOffer(request_max_window_bits=9)], "client_max_window_bits=9"),
    ([PmdOffer(request_max_window_bits=15)], "client_max_window_bits=15"),
    ([PmdOffer(request_no_context_takeover=True, request_max_window_bits=9)],
     "client_no_context_takeover; client_max_window_bits=9"),
    ([PmdOffer(request_no_context_takeover=True, request_max_window_bits=15)],
     "client_no_context_takeover; client_max_window_bits=15"),
    ([PmdOffer(request_no_context_takeover=True, request_max_window_bits=9),
      PmdOffer(request_no_context_takeover=True), PmdOffer()],
     "the first of accept5, accept2, accept1 that applies"),
]

# Autobahn's test data files (a JSON report, a 512x512 bitmap, Goethe's Faust
# from Project Gutenberg, an HTML report, a PDF) are not ours to check in: the
# stand-ins below have the same kind of content, size and compressibility
# (text 4-40% of its size deflated, the bitmap 85%, the PDF 75%), made from a
# fixed seed. Faust, though text, is sent as binary, as in Autobahn.
CORPUS_ORDER = ["json_data1", "lena512", "gutenberg_faust", "html_data1", "ooms"]


def _once(fn):
    cache = []

    def get():
        if not cache:
            cache.append(fn())
        return cache[0]
    return get


@_once
def _json_data1():
    rng = random.Random(12001)
    report = {}
    for a in range(4):
        agent = {}
        for major in range(1, 14):
            for minor in range(1, rng.randint(3, 9)):
                for sub in range(1, rng.randint(2, 12)):
                    cid = "%d.%d.%d" % (major, minor, sub)
                    agent[cid] = {
                        "behavior": rng.choice(["OK", "OK", "OK", "NON-STRICT", "INFORMATIONAL"]),
                        "behaviorClose": rng.choice(["OK", "OK", "INFORMATIONAL"]),
                        "duration": rng.randint(1, 400),
                        "remoteCloseCode": rng.choice([1000, 1000, 1002, 1007, None]),
                        "reportfile": "agent_%d_case_%s.json" % (a, cid.replace(".", "_")),
                    }
        report["Agent%d/0.%d.%d" % (a, rng.randint(1, 9), rng.randint(0, 20))] = agent
    return json.dumps(report, indent=3, sort_keys=True)[:194056], False


@_once
def _lena512():
    rng = random.Random(12002)
    w = h = 512
    head = b"BM" + struct.pack("<IHHI", 54 + 1024 + w * h, 0, 0, 54 + 1024)
    head += struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, w * h, 2835, 2835, 256, 256)
    palette = b"".join(bytes([g, g, g, 0]) for g in range(256))
    rows, prev = [], [128] * w
    for y in range(h):
        v, row = prev[0], bytearray(w)
        for x in range(w):
            v = (v + prev[x]) // 2 + rng.randint(-9, 9)
            v = 0 if v < 0 else 255 if v > 255 else v
            row[x] = v
        rows.append(bytes(row))
        prev = row
    return head + palette + b"".join(rows), True


@_once
def _gutenberg_faust():
    rng = random.Random(12003)
    syll = ["ge", "ich", "ein", "der", "die", "und", "schen", "lich", "ver", "heit", "ten", "mein", "sei",
            "wär", "hö", "grü", "bö", "ßen", "mü", "nach", "wol", "kei", "tag", "geist", "welt", "zu"]
    words = []
    for _ in range(2500):
        w = "".join(rng.choice(syll) for _ in range(rng.randint(1, 3)))
        words.append(w.capitalize() if rng.random() < 0.3 else w)
    lines = []
    while sum(len(x) + 1 for x in lines) < 219000:
        if rng.random() < 0.05:
            lines.append(rng.choice(["FAUST:", "MEPHISTOPHELES:", "WAGNER:", "GRETCHEN:", "CHOR:"]))
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 9)))
                     + rng.choice([",", ".", "!", "?", ";", ""]))
    return "\n".join(lines).encode("utf-8")[:222218], True


@_once
def _html_data1():
    rng = random.Random(12004)
    parts = ["<!DOCTYPE html>\n<html>\n   <head>\n      <meta charset=\"utf-8\" />\n      <style>\n"
             "body { background-color: #F4F4F4; color: #333; }\n</style>\n   </head>\n   <body>\n"
             "      <h1>Orrery — test report</h1>\n      <table>\n"]
    agents = ["Orrery/1.%d" % i for i in range(6)]
    while sum(len(p) for p in parts) < 263000:
        cid = "%d.%d.%d" % (rng.randint(1, 13), rng.randint(1, 9), rng.randint(1, 20))
        parts.append("         <tr>\n            <td class=\"case\"><a href=\"#case_%s\">Case %s</a></td>\n"
                     % (cid.replace(".", "_"), cid))
        for a in agents:
            ok = rng.random() < 0.9
            parts.append("            <td class=\"%s\">%s<br/><span class=\"case_duration\">%d ms%s</span></td>\n"
                         % ("case_ok" if ok else "case_non_strict", "Pass" if ok else "Non-Strict",
                            rng.randint(1, 500), rng.choice(["", "", "", " · µ", " → 1000", " €"])))
        parts.append("         </tr>\n")
    parts.append("      </table>\n   </body>\n</html>\n")
    return "".join(parts), False


@_once
def _ooms():
    rng = random.Random(12005)
    parts = [b"%PDF-1.4\n"]
    obj = 1
    while sum(len(p) for p in parts) < 1040000:
        n = rng.randint(2000, 20000)
        parts.append(b"%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n" % (obj, n))
        parts.append(rng.randbytes(n))
        parts.append(b"\nendstream\nendobj\n")
        text = b"".join(b"%d 0 obj\n<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 %d 0 R >> >> "
                        b"/MediaBox [0 0 612 792] >>\nendobj\n" % (obj + k, obj + k + 1) for k in range(1, 8))
        parts.append(text * rng.randint(2, 6))
        obj += 10
    return b"".join(parts)[:1042328], True


CORPORA = {"json_data1": _json_data1, "lena512": _lena512, "gutenberg_faust": _gutenberg_faust,
           "html_data1": _html_data1, "ooms": _ooms}


RESULTS_CODES = {}


# ---------------------------------------------------------------------------
# Generated cases: 1.x, 6.5-6.23, 7.7.x, 7.9.x, 9.x
# ---------------------------------------------------------------------------

def _utf8_groups():
    """Autobahn's createUtf8TestSequences (Markus Kuhn's UTF-8-test.txt)."""
    G = []
    vss = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
    G.append(("Some valid UTF-8 sequences", [
        (True, b"hello\x24world"), (True, b"hello\xc2\xa2world"), (True, b"hello\xe2\x82\xacworld"),
        (True, b"hello\xf0\xa4\xad\xa2world"), (True, vss)]))
    G.append(("All prefixes of a valid UTF-8 string that contains multi-byte code points",
              [(valid_utf8(vss[:i]), vss[:i]) for i in range(1, len(vss) + 1)]))
    G.append(("First possible sequence of a certain length", [
        (True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"), (True, b"\xf0\x90\x80\x80")]))
    G.append(("First possible sequence length 5/6 (invalid codepoints)", [
        (False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")]))
    G.append(("Last possible sequence of a certain length", [
        (True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"), (True, b"\xf4\x8f\xbf\xbf")]))
    G.append(("Last possible sequence length 4/5/6 (invalid codepoints)", [
        (False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"), (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")]))
    G.append(("Other boundary conditions", [
        (True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
        (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80")]))
    G.append(("Unexpected continuation bytes", [
        (False, b"\x80"), (False, b"\xbf"), (False, b"\x80\xbf"), (False, b"\x80\xbf\x80"),
        (False, b"\x80\xbf\x80\xbf"), (False, b"\x80\xbf\x80\xbf\x80"), (False, b"\x80\xbf\x80\xbf\x80\xbf"),
        (False, bytes(range(0x80, 0xbf)))]))
    G.append(("Lonely start characters", [
        (False, b"".join(bytes([i, 0x20]) for i in range(lo, hi)))
        for lo, hi in ((0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd))]))
    k = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
         b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    G.append(("Sequences with last continuation byte missing", [(False, kk) for kk in k]))
    G.append(("Concatenation of incomplete sequences", [(False, b"".join(k))]))
    G.append(("Impossible bytes", [(False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")]))
    G.append(("Examples of an overlong ASCII character", [
        (False, b"\xc0\xaf"), (False, b"\xe0\x80\xaf"), (False, b"\xf0\x80\x80\xaf"),
        (False, b"\xf8\x80\x80\x80\xaf"), (False, b"\xfc\x80\x80\x80\x80\xaf")]))
    G.append(("Maximum overlong sequences", [
        (False, b"\xc1\xbf"), (False, b"\xe0\x9f\xbf"), (False, b"\xf0\x8f\xbf\xbf"),
        (False, b"\xf8\x87\xbf\xbf\xbf"), (False, b"\xfc\x83\xbf\xbf\xbf\xbf")]))
    G.append(("Overlong representation of the NUL character", [
        (False, b"\xc0\x80"), (False, b"\xe0\x80\x80"), (False, b"\xf0\x80\x80\x80"),
        (False, b"\xf8\x80\x80\x80\x80"), (False, b"\xfc\x80\x80\x80\x80\x80")]))
    G.append(("Single UTF-16 surrogates", [(False, s) for s in (
        b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
        b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf")]))
    G.append(("Paired UTF-16 surrogates", [(False, s) for s in (
        b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xa0\x80\xed\xbf\xbf", b"\xed\xad\xbf\xed\xb0\x80",
        b"\xed\xad\xbf\xed\xbf\xbf", b"\xed\xae\x80\xed\xb0\x80", b"\xed\xae\x80\xed\xbf\xbf",
        b"\xed\xaf\xbf\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf")]))
    nc = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for z1 in (0xf0, 0xf1, 0xf2, 0xf3, 0xf4):
        for z2 in (0x8f, 0x9f, 0xaf, 0xbf):
            if not (z1 == 0xf4 and z2 != 0x8f):
                for z3 in (0xbe, 0xbf):
                    zz = bytes([z1, z2, 0xbf, z3])
                    if zz not in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):
                        nc.append((True, zz))
    G.append(("Non-character code points (valid UTF-8)", nc))
    G.append(("Unicode specials (i.e. replacement char)", [(True, bytes([0xef, 0xbf, b])) for b in range(0xb9, 0xc0)]))
    return G


UTF8_GROUPS = _utf8_groups()


def _add(name, fn, doc):
    fn.__name__ = name
    fn.__doc__ = doc
    setattr(TestAutobahnLike, name, fn)


def _generate():
    for sub in (1, 2):
        for num, length in SIZES_1:
            _add("test_case_1_%d_%d" % (sub, num),
                 lambda self, sub=sub, num=num, length=length: self._case_1(sub, num, length),
                 "%s message, %d octets" % ("binary" if sub == 2 else "text", length))
        _add("test_case_1_%d_8" % sub,
             lambda self, sub=sub: self._case_1(sub, 8, 65536, chopsize=997),
             "%s message, 65536 octets in chops of 997" % ("binary" if sub == 2 else "text"))

    for gi, (title, seqs) in enumerate(UTF8_GROUPS):
        for j, (valid, s) in enumerate(seqs):
            cid = "6.%d.%d" % (gi + 5, j + 1)
            _add("test_case_6_%d_%d" % (gi + 5, j + 1),
                 lambda self, cid=cid, valid=valid, s=s: self._case_6_x(cid, valid, s),
                 "%s: %s" % (title, s.hex()))

    for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]):
        _add("test_case_7_7_%d" % (i + 1), lambda self, i=i, code=code: self._case_7_7("7.7.%d" % (i + 1), code),
             "close with valid code %d" % code)
    for i, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]):
        _add("test_case_7_9_%d" % (i + 1), lambda self, i=i, code=code: self._case_7_9("7.9.%d" % (i + 1), code),
             "close with invalid code %d" % code)

    # 9.x: Autobahn's sizes; under ASan the 16 MiB cases shrink to 8 MiB
    # (the behaviour stays, only the biggest buffers get smaller).
    cap = 8 * 2 ** 20 if SANITIZED else None

    def size(n):
        return min(n, cap) if cap else n

    M = 2 ** 20
    for sub, binary in ((1, False), (2, True)):
        for num, (n, w) in enumerate([(64 * 1024, 10), (256 * 1024, 10), (M, 20), (4 * M, 60),
                                      (8 * M, 80), (16 * M, 100)]):
            _add("test_case_9_%d_%d" % (sub, num + 1),
                 lambda self, c="9.%d.%d" % (sub, num + 1), b=binary, n=size(n), w=w:
                 self._case_9_single(c, b, n, w),
                 "%s message of %d octets" % ("binary" if binary else "text", size(n)))
    for sub, binary in ((3, False), (4, True)):
        for num, frag in enumerate([64, 256, 1024, 4096, 16384, 65536, 262144, M, 4 * M]):
            n = 4 * M
            _add("test_case_9_%d_%d" % (sub, num + 1),
                 lambda self, c="9.%d.%d" % (sub, num + 1), b=binary, n=n, f=frag:
                 self._case_9_single(c, b, n, 100, frag=min(f, n)),
                 "%s message of %d octets in fragments of %d" % ("binary" if binary else "text", n, frag))
    for sub, binary in ((5, False), (6, True)):
        for num, chop in enumerate([64, 128, 256, 512, 1024, 2048]):
            n = M
            _add("test_case_9_%d_%d" % (sub, num + 1),
                 lambda self, c="9.%d.%d" % (sub, num + 1), b=binary, n=n, ch=chop:
                 self._case_9_single(c, b, n, 1000 if ch == 64 else 100, chop=ch),
                 "%s message of %d octets in chops of %d" % ("binary" if binary else "text", n, chop))
    count = 1000
    for sub, binary in ((7, False), (8, True)):
        for num, (length, w) in enumerate([(0, 60), (16, 60), (64, 60), (256, 120), (1024, 240), (4096, 480)]):
            _add("test_case_9_%d_%d" % (sub, num + 1),
                 lambda self, c="9.%d.%d" % (sub, num + 1), b=binary, ln=length, w=w:
                 self._case_9_rtt(c, b, ln, count, w),
                 "%d %s messages of %d octets" % (count, "binary" if binary else "text", length))

    # 12.x/13.x: Autobahn's MSG_SIZES (case12_x_x.py): (length, count, case
    # timeout, auto-fragment size). Autobahn sends 1000 messages per case: 216
    # cases of up to 131 MB each, about 11 GB compressed and inflated on each
    # side, 10 to 25 minutes on this 2-core machine. So here a case sends 1000
    # messages only up to a budget of DEFLATE_BUDGET payload octets (at least
    # DEFLATE_MIN messages): every size, fragment size, corpus and offer is
    # kept, with fewer repetitions of the long ones (30 to 60 s in all). Under
    # ASan the budget is smaller again (about 20 s). ORR_AB_DEFLATE_FULL=1 runs
    # Autobahn's 1000 everywhere.
    for j, key in enumerate(CORPUS_ORDER):
        for i, (length, count, waitsecs, frag) in enumerate(MSG_SIZES):
            n = deflate_count(length, count)
            _add("test_case_12_%d_%d" % (j + 1, i + 1),
                 lambda self, c="12.%d.%d" % (j + 1, i + 1), k=key, ln=length, n=n, w=waitsecs, f=frag:
                 self._case_12(c, k, ln, n, w, f, [PmdOffer()]),
                 "%s: %d messages of %d, auto-fragment %d, default offer" % (key, n, length, frag))
    for j, (offers, accept) in enumerate(DEFLATE_PARAMS):
        for i, (length, count, waitsecs, frag) in enumerate(MSG_SIZES):
            n = deflate_count(length, count)
            _add("test_case_13_%d_%d" % (j + 1, i + 1),
                 lambda self, c="13.%d.%d" % (j + 1, i + 1), ln=length, n=n, w=waitsecs, f=frag, o=offers:
                 self._case_12(c, "json_data1", ln, n, w, f, o),
                 "json_data1: %d messages of %d, auto-fragment %d, offers %s / Autobahn's server: %s"
                 % (n, length, frag, [o.describe() for o in offers], accept))

_generate()


if __name__ == "__main__":
    unittest.main(verbosity=2)
