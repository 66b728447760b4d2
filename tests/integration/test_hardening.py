"""Hostile clients (issue 8): floods and malformed requests that must cost the
server little and leave other clients unaffected.

Every test starts its own server (orrery_harness.Server) and drives it with raw
sockets, which can send what no real client would.
"""

import os
import re
import resource
import socket
import threading
import time
import unittest

from orrery_harness import OP_CONT, OP_TEXT, SLOW, RawWs, Server, ServerTestCase, encode_frame


class TestFragmentFlood(ServerTestCase):
    def test_a_million_empty_continuations_get_1009_quickly(self):
        srv = self.start_server()  # max_fragments at its default, 100000
        bystander = self.open_ws(srv)
        bystander.send_text("before")
        self.assertEqual(bystander.read_frame().payload, b"before")

        ws = self.open_ws(srv)
        # A non-final text frame, then 1,000,000 empty masked continuations
        # (6 bytes each, one mask key for all: the payload is empty anyway).
        flood = encode_frame(OP_TEXT, b"a", fin=False) + (b"\x00\x80" + os.urandom(4)) * 1_000_000
        sent = {}

        def send():
            try:
                ws.sock.sendall(flood)
                sent["all"] = True
            except OSError as e:  # the server may stop reading once it has closed
                sent["error"] = e

        t0 = time.monotonic()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        code, reason = ws.read_close(10)
        took = time.monotonic() - t0
        self.assertEqual(code, 1009)
        print("\n  1,000,000 empty continuations: close 1009 after %.3f s" % took)
        self.assertLess(took, 3 * SLOW, "the close took %.1f s" % took)
        sender.join(10 * SLOW)
        self.assertFalse(sender.is_alive(), "the server stopped reading the rest of the flood")
        ws.close_socket()
        srv.wait_for_log(r"DISCONNECTED .*reason=badsize")

        # Everyone else is served as before.
        bystander.send_text("after")
        self.assertEqual(bystander.read_frame(2).payload, b"after")
        other = self.open_ws(srv)
        other.send_text("new")
        self.assertEqual(other.read_frame(2).payload, b"new")

    def test_fragments_up_to_the_limit_are_one_message(self):
        srv = self.start_server(max_fragments=1000)
        ws = self.open_ws(srv)
        # 1000 frames: 999 one-byte fragments and a final empty one.
        frames = encode_frame(OP_TEXT, b"x", fin=False)
        frames += b"".join(encode_frame(OP_CONT, b"y", fin=False) for _ in range(998))
        frames += encode_frame(OP_CONT, b"", fin=True)
        ws.send_raw(frames)
        f = ws.read_frame()
        self.assertEqual((f.opcode, f.fin, f.payload), (OP_TEXT, True, b"x" + b"y" * 998))
        # The count starts over with each message; one frame more fails.
        ws.send_raw(frames[:-6] + encode_frame(OP_CONT, b"", fin=False) + encode_frame(OP_CONT, b"", fin=True))
        code, _ = ws.read_close(3)
        self.assertEqual(code, 1009)


class TestDuplicateHandshakeHeaders(ServerTestCase):
    """RFC 6455 4.2.1 wants one Upgrade, one key, one version: two of any is 400."""

    def request(self, srv, extra_lines, drop=()):
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        lines = ["GET /echo/ws HTTP/1.1", "Host: 127.0.0.1:%d" % srv.port, "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        lines = [l for l in lines if l.split(":")[0] not in drop] + list(extra_lines)
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SLOW)
        self.addCleanup(sock.close)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        ws = RawWs(sock)
        status, headers = ws.read_http_head()
        return status, headers

    def test_two_upgrade_headers_are_400(self):
        srv = self.start_server()
        for extra in (["Upgrade: websocket"], ["upgrade: WebSocket"], ["Upgrade: h2c"]):
            with self.subTest(extra=extra):
                status, _ = self.request(srv, extra)
                self.assertEqual(status, 400)
        status, _ = self.request(srv, ["Upgrade: h2c", "Upgrade: websocket"], drop=("Upgrade",))
        self.assertEqual(status, 400)
        srv.wait_for_log(r"GET /echo/ws status=400")
        # One Upgrade is still fine.
        status, _ = self.request(srv, [])
        self.assertEqual(status, 101)

    def test_two_keys_or_two_versions_are_400(self):
        srv = self.start_server()
        for extra in (["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="],
                      ["Sec-WebSocket-Key: AZaz09+/AAAAAAAAAAAAAA=="],
                      ["Sec-WebSocket-Version: 13"],
                      ["sec-websocket-version: 8"]):
            with self.subTest(extra=extra):
                status, headers = self.request(srv, extra)
                self.assertEqual(status, 400)
                self.assertEqual(headers.get("sec-websocket-version"), "13")


def http_get(sock, path):
    """One keep-alive GET on an open socket; returns (status, headers, body)."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    ws = RawWs(sock)
    status, headers = ws.read_http_head()
    body = ws.buf
    n = int(headers.get("content-length", "0"))
    deadline = time.monotonic() + 5 * SLOW
    while len(body) < n and time.monotonic() < deadline:
        body += sock.recv(65536)
    return status, headers, body[:n].decode()


class TestOutOfDescriptors(unittest.TestCase):
    """With RLIMIT_NOFILE at 64, a crowd of connections runs the server out of
    descriptors: it says so at most once a second, counts every failed
    accept, keeps serving the connections it has, and accepts again once
    descriptors are free."""

    NOFILE = 64

    def start(self):
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.NOFILE, self.NOFILE))

        srv = Server({"workers": 2}, preexec_fn=low_limit)
        self.addCleanup(srv.kill)
        return srv

    def connect(self, srv):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        return s

    def test_accept_errors_are_logged_once_a_second_and_counted(self):
        srv = self.start()
        admin = self.connect(srv)  # opened before the shortage: keep-alive
        status, _, body = http_get(admin, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("orrery_accept_errors_total 0\n", body)
        echo = RawWs.connect(srv.port)
        self.addCleanup(echo.close_socket)

        crowd = [self.connect(srv) for _ in range(3 * self.NOFILE)]
        line = srv.wait_for_log(r"accept: Too many open files")
        self.assertIn("pausing accepts", line)
        t0 = time.monotonic()
        time.sleep(3)
        held = time.monotonic() - t0
        lines = [l for l in srv.lines() if "accept: " in l]
        print("\n  %d accept-error lines over %.1f s" % (len(lines), held))
        self.assertLessEqual(len(lines), int(held) + 2, "\n".join(lines))

        # The connections it has are served meanwhile.
        status, _, body = http_get(admin, "/metrics")
        self.assertEqual(status, 200)
        m = re.search(r"^orrery_accept_errors_total (\d+)$", body, re.M)
        self.assertIsNotNone(m, body)
        errors = int(m.group(1))
        print("  orrery_accept_errors_total %d" % errors)
        self.assertGreater(errors, 0)
        echo.send_text("still here")
        self.assertEqual(echo.read_frame().payload, b"still here")

        # Descriptors free again: new connections are accepted and answered.
        for s in crowd:
            s.close()
        late = self.connect(srv)
        status, _, body = http_get(late, "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))


if __name__ == "__main__":
    unittest.main()
