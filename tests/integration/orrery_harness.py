"""Test harness for the Python integration tests.

Starts a real orrery process with a temporary config (port 0, the port parsed
from its `listening on 127.0.0.1:PORT` line), collects its stderr, and offers a
raw-socket websocket client that can send any frame, legal or not.

Environment: ORRERY_BIN (the server binary), ORR_SANITIZED=1 under ASan+UBSan
(every timeout is multiplied by SLOW then), ORR_DEFLATE=off (every config
written gets "deflate": "off" unless it sets deflate itself: the [nodeflate]
variants).
"""

import base64
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

SLOW = 3 if os.environ.get("ORR_SANITIZED") else 1
DEFLATE_OFF = os.environ.get("ORR_DEFLATE") == "off"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SHUTDOWN_REASON = "server shutting down; please reconnect"
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer")

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class Server:
    """A running orrery process. `preexec_fn` runs in the child before the
    server starts (e.g. to lower its resource limits)."""

    def __init__(self, config=None, args=(), preexec_fn=None):
        binary = os.environ.get("ORRERY_BIN")
        if not binary:
            raise RuntimeError("ORRERY_BIN is not set")
        cfg = {"workers": 2}
        cfg.update(config or {})
        if DEFLATE_OFF:
            cfg.setdefault("deflate", "off")
        self.dir = tempfile.mkdtemp(prefix="orrery-it-")
        self.config_path = os.path.join(self.dir, "orrery.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        self._lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [binary, "--config", self.config_path, "--listen", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=preexec_fn)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.port = 0
        try:
            line = self.wait_for_log(r"listening on 127\.0\.0\.1:(\d+)", timeout=10)
        except AssertionError:
            self.kill()
            raise
        self.port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def lines(self):
        with self._cond:
            return list(self._lines)

    @property
    def log(self):
        return "\n".join(self.lines())

    def wait_for_log(self, pattern, timeout=5, count=1):
        """Wait until `count` lines match `pattern`; return the last of them."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while True:
                hits = [l for l in self._lines if rx.search(l)]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %d x %r in the log:\n%s"
                                         % (count, pattern, "\n".join(self._lines)))
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("server exited (%s) before %r appeared:\n%s"
                                         % (self.proc.returncode, pattern, "\n".join(self._lines)))
                self._cond.wait(min(left, 0.1))

    def signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(2)
        if not self._reader.is_alive():
            self.proc.stderr.close()
        try:
            os.unlink(self.config_path)
            os.rmdir(self.dir)
        except OSError:
            pass
        m = SANITIZER_REPORT.search(self.log)
        if m:
            raise AssertionError("sanitizer report in the server's stderr:\n" + self.log[max(0, m.start() - 200):])


class ServerTestCase(unittest.TestCase):
    """Base class: start_server() gives a server killed at the end of the test."""

    def start_server(self, **config):
        srv = Server(config)
        self.addCleanup(srv.kill)
        return srv

    def open_ws(self, srv, path="/echo/ws", **kw):
        ws = RawWs.connect(srv.port, path, **kw)
        self.addCleanup(ws.close_socket)
        return ws


# ---------------------------------------------------------------------------
# Raw websocket client


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None, length=None):
    """One frame. `length` overrides the length field (the payload is still what is sent)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return hdr + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return hdr + key + mask_bytes(payload, key)


def mask_bytes(payload, key):
    if not payload:
        return b""
    # XOR with the key repeated, fast enough for megabytes.
    k = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(len(payload), "big")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return "Frame(fin=%s rsv=%d op=%d len=%d %r)" % (self.fin, self.rsv, self.opcode, len(self.payload), p)


class Closed(Exception):
    """The server closed the TCP connection while a frame was expected."""


class RawWs:
    """A websocket client over a plain socket that sends whatever it is told to."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    @classmethod
    def connect(cls, port, path="/echo/ws", host=None, headers=None, timeout=5, rcvbuf=None):
        """`rcvbuf`: a small kernel receive buffer (set before connecting, so the
        window stays small): output the client does not read piles up in the
        server, not in the kernel."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout * SLOW)
        sock.connect(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        hs = [
            "GET %s HTTP/1.1" % path,
            "Host: %s" % (host or "127.0.0.1:%d" % port),
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: %s" % key,
            "Sec-WebSocket-Version: 13",
        ]
        for k, v in (headers or {}).items():
            hs.append("%s: %s" % (k, v))
        sock.sendall(("\r\n".join(hs) + "\r\n\r\n").encode())
        ws = cls(sock)
        status, resp_headers = ws.read_http_head(timeout)
        if status != 101:
            sock.close()
            raise AssertionError("handshake answered %d" % status)
        if resp_headers.get("sec-websocket-accept") != accept_for(key):
            sock.close()
            raise AssertionError("bad Sec-WebSocket-Accept %r" % resp_headers.get("sec-websocket-accept"))
        return ws

    # -- low level ---------------------------------------------------------

    def _fill(self, deadline):
        """Read more bytes into buf; False on timeout; raises Closed on EOF."""
        if self.eof:
            raise Closed("connection closed by the server")
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            raise Closed("connection closed by the server")
        self.buf += data
        return True

    def read_http_head(self, timeout=5):
        deadline = time.monotonic() + timeout * SLOW
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError("no HTTP response within %ss: %r" % (timeout * SLOW, self.buf))
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_text(self, s, **kw):
        self.send_frame(OP_TEXT, s.encode() if isinstance(s, str) else s, **kw)

    def send_binary(self, b, **kw):
        self.send_frame(OP_BINARY, b, **kw)

    def send_frame_but_last_byte(self, length, chunk=1 << 20):
        """A binary frame of `length` zero bytes (mask key 0), all but its last
        byte: what a client holding a server's reassembly buffer sends. A
        server that stops reading it (it refused the message) is fine."""
        try:
            self.sock.sendall(struct.pack("!BBQ", 0x82, 0x80 | 127, length) + b"\0\0\0\0")
            zeros = b"\0" * chunk
            left = length - 1
            while left:
                k = min(left, chunk)
                self.sock.sendall(zeros[:k])
                left -= k
        except OSError:
            pass

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        n = b[1] & 0x7F
        off = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack("!H", b[2:4])[0]
            off = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack("!Q", b[2:10])[0]
            off = 10
        masked = bool(b[1] & 0x80)
        if masked:
            off += 4
        if len(b) < off + n:
            return None
        payload = b[off:off + n]
        if masked:
            payload = mask_bytes(payload, b[off - 4:off])
        self.buf = b[off + n:]
        return Frame(bool(b[0] & 0x80), (b[0] >> 4) & 7, b[0] & 0xF, masked, payload)

    def read_frame(self, timeout=5):
        """The next frame; AssertionError on timeout, Closed on EOF."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            f = self._parse()
            if f is not None:
                return f
            if not self._fill(deadline):
                raise AssertionError("no frame within %ss (buffered %r)" % (timeout * SLOW, self.buf[:64]))

    def skim_frames(self, timeout=5):
        """Yields (fin, opcode, length, payload) for each frame, payload only
        for control frames (None for data): frames are skipped by offset, so
        megabytes of data stay cheap. AssertionError when nothing comes within
        `timeout` (per read), Closed on EOF. Bytes after the last frame taken
        stay in buf."""
        buf = bytearray(self.buf)
        at = 0
        self.sock.settimeout(timeout * SLOW)
        try:
            while True:
                while len(buf) - at >= 2:
                    n, hl = buf[at + 1] & 0x7F, 2
                    if n == 126:
                        if len(buf) - at < 4:
                            break
                        n, hl = struct.unpack_from("!H", buf, at + 2)[0], 4
                    elif n == 127:
                        if len(buf) - at < 10:
                            break
                        n, hl = struct.unpack_from("!Q", buf, at + 2)[0], 10
                    if len(buf) - at < hl + n:
                        break
                    b0 = buf[at]
                    payload = bytes(buf[at + hl:at + hl + n]) if b0 & 0x08 else None
                    at += hl + n
                    self.buf = bytes(buf[at:])
                    yield bool(b0 & 0x80), b0 & 0x0F, n, payload
                del buf[:at]
                at = 0
                try:
                    data = self.sock.recv(1 << 20)
                except socket.timeout:
                    raise AssertionError("no frame within %ss" % (timeout * SLOW)) from None
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if not data:
                    self.eof = True
                    raise Closed("connection closed by the server")
                buf += data
        finally:
            self.sock.settimeout(None)

    def read_close(self, timeout=5, skip_data=False):
        """Read frames until a close; returns (code, reason bytes). Data frames are errors unless skip_data."""
        while True:
            f = self.read_frame(timeout)
            if f.opcode == OP_CLOSE:
                return f.close_code, f.close_reason
            if not skip_data:
                raise AssertionError("expected a close frame, got %r" % f)

    def expect_no_frame(self, wait=0.3):
        """Nothing arrives (and the connection stays open) for `wait` seconds."""
        try:
            f = self.read_frame(wait)
        except AssertionError:
            return
        raise AssertionError("unexpected frame %r" % f)

    def expect_eof(self, timeout=5):
        """The server closes TCP within `timeout`; returns the seconds it took. Frames before EOF are an error."""
        t0 = time.monotonic()
        deadline = t0 + timeout * SLOW
        while True:
            if self.buf:
                raise AssertionError("expected EOF, got bytes %r" % self.buf[:64])
            try:
                if not self._fill(deadline):
                    raise AssertionError("server did not close TCP within %ss" % (timeout * SLOW))
            except Closed:
                return time.monotonic() - t0

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass
