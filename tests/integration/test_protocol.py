"""RFC 6455 from a raw socket: malformed frames, limits, UTF-8, closing.

Every test starts its own server (see orrery_harness.Server) and drives it with
RawWs, which can send frames no real client would.
"""

import os
import struct
import time
import unittest

from orrery_harness import (
    OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, SLOW, ServerTestCase,
    close_payload, encode_frame,
)

MAX = 1000


class ProtocolTestCase(ServerTestCase):
    def setUp(self):
        self.srv = self.start_server(max_message_bytes=MAX, close_timeout_ms=2000 * SLOW)

    def ws(self, path="/echo/ws"):
        return self.open_ws(self.srv, path)

    def assert_fails(self, ws, code, msg=None):
        """The server sends a close with `code`; after we answer it closes TCP."""
        got, reason = ws.read_close()
        self.assertEqual(got, code, msg)
        try:
            reason.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("close reason is not UTF-8: %r" % reason)
        try:
            ws.send_close(got)
        except OSError:
            return  # the server already dropped TCP: allowed after a protocol failure
        ws.expect_eof(3)

    def assert_echo(self, ws, opcode, payload):
        f = ws.read_frame()
        self.assertEqual((f.opcode, f.fin, f.rsv, f.masked), (opcode, True, 0, False), repr(f))
        self.assertEqual(f.payload, payload)


class TestFraming(ProtocolTestCase):
    def test_unmasked_text_frame_is_1002(self):
        ws = self.ws()
        ws.send_text("hello", mask=False)
        self.assert_fails(ws, 1002)
        self.srv.wait_for_log(r"DISCONNECTED .*reason=badframe")

    def test_unmasked_ping_is_1002(self):
        ws = self.ws()
        ws.send_frame(OP_PING, b"p", mask=False)
        self.assert_fails(ws, 1002)

    def test_rsv_bits_are_1002(self):
        for rsv in (1, 2, 4, 7):
            for op in (OP_TEXT, OP_BINARY, OP_PING):
                with self.subTest(rsv=rsv, op=op):
                    ws = self.ws()
                    ws.send_frame(op, b"abc", rsv=rsv)
                    self.assert_fails(ws, 1002)

    def test_rsv_on_continuation_is_1002(self):
        ws = self.ws()
        ws.send_text("ab", fin=False)
        ws.send_frame(OP_CONT, b"cd", rsv=4)
        self.assert_fails(ws, 1002)

    def test_reserved_opcodes_are_1002(self):
        for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
            for payload in (b"", b"reserved"):
                with self.subTest(opcode=op, payload=payload):
                    ws = self.ws()
                    ws.send_frame(op, payload)
                    self.assert_fails(ws, 1002)

    def test_reserved_opcode_after_a_good_message(self):
        ws = self.ws()
        ws.send_text("ok")
        ws.send_frame(5, b"")
        self.assert_echo(ws, OP_TEXT, b"ok")
        self.assert_fails(ws, 1002)

    def test_control_frame_over_125_bytes_is_1002(self):
        for op, payload in ((OP_PING, b"x" * 126), (OP_PONG, b"x" * 126), (OP_CLOSE, close_payload(1000, b"r" * 124))):
            with self.subTest(op=op):
                ws = self.ws()
                ws.send_frame(op, payload)
                self.assert_fails(ws, 1002)

    def test_fragmented_control_frames_are_1002(self):
        for op, payload in ((OP_PING, b"frag"), (OP_PONG, b"frag"), (OP_CLOSE, close_payload(1000))):
            with self.subTest(op=op):
                ws = self.ws()
                ws.send_frame(op, payload, fin=False)
                self.assert_fails(ws, 1002)

    def test_continuation_without_start_is_1002(self):
        for fin in (True, False):
            with self.subTest(fin=fin):
                ws = self.ws()
                ws.send_frame(OP_CONT, b"orphan", fin=fin)
                self.assert_fails(ws, 1002)

    def test_continuation_after_a_finished_message_is_1002(self):
        ws = self.ws()
        ws.send_text("a", fin=False)
        ws.send_frame(OP_CONT, b"b", fin=True)
        ws.send_frame(OP_CONT, b"c", fin=True)
        self.assert_echo(ws, OP_TEXT, b"ab")
        self.assert_fails(ws, 1002)

    def test_new_data_frame_during_a_fragmented_message_is_1002(self):
        for first, second, fin in ((OP_TEXT, OP_TEXT, True), (OP_TEXT, OP_BINARY, False), (OP_BINARY, OP_TEXT, True)):
            with self.subTest(first=first, second=second, fin=fin):
                ws = self.ws()
                ws.send_frame(first, b"part", fin=False)
                ws.send_frame(second, b"new", fin=fin)
                self.assert_fails(ws, 1002)

    def test_64bit_length_with_the_top_bit_set_is_rejected(self):
        ws = self.ws()
        ws.send_raw(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + os.urandom(4))
        code, _ = ws.read_close()
        self.assertIn(code, (1002, 1009))

    def test_empty_messages_are_echoed(self):
        ws = self.ws()
        ws.send_text(b"")
        self.assert_echo(ws, OP_TEXT, b"")
        ws.send_binary(b"")
        self.assert_echo(ws, OP_BINARY, b"")
        ws.send_text(b"", fin=False)
        ws.send_frame(OP_CONT, b"", fin=False)
        ws.send_frame(OP_CONT, b"", fin=True)
        self.assert_echo(ws, OP_TEXT, b"")

    def test_fragmented_message_with_pings_between_fragments(self):
        ws = self.ws()
        ws.send_text(b"Hel", fin=False)
        ws.send_frame(OP_PING, b"p1")
        ws.send_frame(OP_CONT, b"lo ", fin=False)
        ws.send_frame(OP_PING, b"")
        ws.send_frame(OP_PONG, b"unsolicited")
        ws.send_frame(OP_CONT, b"", fin=False)
        ws.send_frame(OP_PING, b"z" * 125)
        ws.send_frame(OP_CONT, b"World", fin=True)
        self.assert_echo(ws, OP_PONG, b"p1")
        self.assert_echo(ws, OP_PONG, b"")
        self.assert_echo(ws, OP_PONG, b"z" * 125)
        self.assert_echo(ws, OP_TEXT, b"Hello World")
        # Binary, fragmented the same way.
        ws.send_binary(b"\x00\x01", fin=False)
        ws.send_frame(OP_PING, b"p2")
        ws.send_frame(OP_CONT, b"\xff", fin=True)
        self.assert_echo(ws, OP_PONG, b"p2")
        self.assert_echo(ws, OP_BINARY, b"\x00\x01\xff")

    def test_pings_are_answered_with_the_same_payload(self):
        ws = self.ws()
        for p in (b"", b"a", os.urandom(125)):
            ws.send_frame(OP_PING, p)
            self.assert_echo(ws, OP_PONG, p)
        ws.send_frame(OP_PONG, b"nobody asked")
        ws.expect_no_frame(0.2)
        ws.send_text("still fine")
        self.assert_echo(ws, OP_TEXT, b"still fine")

    def test_frames_fed_one_byte_at_a_time(self):
        ws = self.ws()
        text = ("byte-by-byte " * 25).encode()  # 325 bytes: a 16-bit length
        data = (encode_frame(OP_PING, b"slow ping")
                + encode_frame(OP_TEXT, text)
                + encode_frame(OP_BINARY, b"\x01\x02", fin=False)
                + encode_frame(OP_CONT, b"\x03", fin=True))
        for i in range(len(data)):
            ws.send_raw(data[i:i + 1])
            time.sleep(0.001)
        self.assert_echo(ws, OP_PONG, b"slow ping")
        self.assert_echo(ws, OP_TEXT, text)
        self.assert_echo(ws, OP_BINARY, b"\x01\x02\x03")

    def test_many_messages_in_one_write_are_echoed_in_order(self):
        ws = self.ws()
        batch = []
        expect = []
        for i in range(500):
            if i % 50 == 0:
                batch.append(encode_frame(OP_PING, b"ping%d" % i))
                expect.append((OP_PONG, b"ping%d" % i))
            if i % 3 == 0:
                batch.append(encode_frame(OP_BINARY, b"b%d" % i))
                expect.append((OP_BINARY, b"b%d" % i))
            elif i % 3 == 1:
                batch.append(encode_frame(OP_TEXT, b"t%d" % i))
                expect.append((OP_TEXT, b"t%d" % i))
            else:
                batch.append(encode_frame(OP_TEXT, b"f", fin=False) + encode_frame(OP_CONT, b"%d" % i))
                expect.append((OP_TEXT, b"f%d" % i))
        ws.send_raw(b"".join(batch))
        got = [(f.opcode, f.payload) for f in (ws.read_frame() for _ in expect)]
        self.assertEqual(got, expect)


class TestUtf8(ProtocolTestCase):
    BAD = [
        b"\xff",
        b"\xfe",
        b"ab\x80",              # lone continuation byte
        b"\xc0\xaf",            # overlong '/'
        b"\xe0\x80\xaf",        # overlong, 3 bytes
        b"\xf0\x80\x80\xaf",    # overlong, 4 bytes
        b"\xed\xa0\x80",        # surrogate U+D800
        b"\xed\xbf\xbf",        # surrogate U+DFFF
        b"\xf4\x90\x80\x80",    # U+110000
        b"\xf5\x80\x80\x80",
        b"ab\xe2\x82",          # truncated at the end of the message
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    ]

    def test_invalid_utf8_text_is_1007(self):
        for bad in self.BAD:
            with self.subTest(bad=bad):
                ws = self.ws()
                ws.send_text(bad)
                self.assert_fails(ws, 1007)
        self.srv.wait_for_log(r"DISCONNECTED .*reason=badencoding")

    def test_invalid_utf8_split_over_fragments_is_1007(self):
        for bad in self.BAD:
            for cut in range(1, len(bad)):
                with self.subTest(bad=bad, cut=cut):
                    ws = self.ws()
                    ws.send_text(bad[:cut], fin=False)
                    ws.send_frame(OP_CONT, bad[cut:], fin=True)
                    self.assert_fails(ws, 1007)

    def test_valid_utf8_split_inside_code_points_is_echoed(self):
        ws = self.ws()
        text = "κόσμε 𝄞 €uro \U0010FFFF".encode()
        for cut in range(1, len(text)):
            ws.send_text(text[:cut], fin=False)
            ws.send_frame(OP_PING, b"between")
            ws.send_frame(OP_CONT, text[cut:], fin=True)
            self.assert_echo(ws, OP_PONG, b"between")
            self.assert_echo(ws, OP_TEXT, text)
        # One byte per fragment.
        ws.send_text(text[:1], fin=False)
        for i in range(1, len(text)):
            ws.send_frame(OP_CONT, text[i:i + 1], fin=i == len(text) - 1)
        self.assert_echo(ws, OP_TEXT, text)

    def test_1007_at_the_first_bad_byte_in_the_middle_of_a_fragment(self):
        ws = self.ws()
        ws.send_text(b"hello, ", fin=False)
        # A continuation that claims 200 bytes; send only the first 4, the last invalid.
        ws.send_raw(encode_frame(OP_CONT, b"ab\xc3\x28", fin=True, length=200))
        code, _ = ws.read_close(3)
        self.assertEqual(code, 1007)

    def test_1007_at_the_first_bad_byte_in_the_middle_of_a_single_frame(self):
        ws = self.ws()
        ws.send_raw(encode_frame(OP_TEXT, b"abc\xff", fin=True, length=500))
        code, _ = ws.read_close(3)
        self.assertEqual(code, 1007)

    def test_1007_when_the_second_fragment_breaks_a_code_point(self):
        ws = self.ws()
        ws.send_text(b"a\xe2\x82", fin=False)       # '€' cut after 2 of its 3 bytes
        ws.send_raw(encode_frame(OP_CONT, b"X", fin=True, length=100))  # not a continuation byte
        code, _ = ws.read_close(3)
        self.assertEqual(code, 1007)

    def test_binary_is_not_utf8_checked(self):
        ws = self.ws()
        ws.send_binary(b"\xff\xfe\xc0\xaf")
        self.assert_echo(ws, OP_BINARY, b"\xff\xfe\xc0\xaf")


class TestSizeLimit(ProtocolTestCase):
    def test_1009_at_the_frame_header(self):
        for op in (OP_TEXT, OP_BINARY):
            with self.subTest(op=op):
                ws = self.ws()
                ws.send_raw(encode_frame(op, b"", length=MAX + 1))  # header and mask only
                code, _ = ws.read_close(3)
                self.assertEqual(code, 1009)
        self.srv.wait_for_log(r"DISCONNECTED .*reason=badsize")

    def test_1009_for_a_huge_64bit_length(self):
        ws = self.ws()
        ws.send_raw(encode_frame(OP_BINARY, b"", length=1 << 40))
        code, _ = ws.read_close(3)
        self.assertEqual(code, 1009)

    def test_1009_across_fragments_at_the_header(self):
        ws = self.ws()
        ws.send_binary(b"a" * 600, fin=False)
        ws.send_raw(encode_frame(OP_CONT, b"", fin=True, length=MAX - 600 + 1))
        code, _ = ws.read_close(3)
        self.assertEqual(code, 1009)

    def test_1009_across_many_small_fragments(self):
        ws = self.ws()
        ws.send_text(b"x" * 100, fin=False)
        for _ in range(8):
            ws.send_frame(OP_CONT, b"y" * 100, fin=False)
        ws.send_frame(OP_CONT, b"z" * 101, fin=True)  # 1001 in total
        code, _ = ws.read_close(3)
        self.assertEqual(code, 1009)

    def test_a_message_of_exactly_max_is_echoed(self):
        ws = self.ws()
        ws.send_text(b"m" * MAX)
        self.assert_echo(ws, OP_TEXT, b"m" * MAX)
        data = os.urandom(MAX)
        ws.send_binary(data)
        self.assert_echo(ws, OP_BINARY, data)
        ws.send_binary(data[:300], fin=False)
        ws.send_frame(OP_PING, b"x")
        ws.send_frame(OP_CONT, data[300:], fin=True)
        self.assert_echo(ws, OP_PONG, b"x")
        self.assert_echo(ws, OP_BINARY, data)
        # Control frames do not count towards the message size.
        ws.send_text(b"c" * (MAX - 1), fin=False)
        ws.send_frame(OP_PING, b"p" * 125)
        ws.send_frame(OP_CONT, b"d", fin=True)
        self.assert_echo(ws, OP_PONG, b"p" * 125)
        self.assert_echo(ws, OP_TEXT, b"c" * (MAX - 1) + b"d")


class TestClose(ProtocolTestCase):
    VALID = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
    INVALID = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]

    def test_valid_close_is_echoed_and_the_server_closes_tcp(self):
        for code in self.VALID:
            with self.subTest(code=code):
                ws = self.ws()
                ws.send_close(code, "bye %d" % code)
                got, _ = ws.read_close()
                self.assertEqual(got, code)
                ws.expect_eof(2)  # without our closing first
        self.srv.wait_for_log(r"DISCONNECTED .*reason=remote", count=len(self.VALID))

    def test_empty_close_is_answered(self):
        ws = self.ws()
        ws.send_close()
        code, reason = ws.read_close()
        self.assertIn(code, (None, 1000))
        ws.expect_eof(2)

    def test_close_with_a_utf8_reason_is_accepted(self):
        ws = self.ws()
        reason = "ünïcødé 𝄞".encode()
        ws.send_close(1000, reason)
        self.assertEqual(ws.read_close()[0], 1000)
        ws.expect_eof(2)

    def test_invalid_close_codes_are_1002(self):
        for code in self.INVALID:
            with self.subTest(code=code):
                ws = self.ws()
                ws.send_close(code, "x")
                self.assert_fails(ws, 1002)

    def test_close_with_a_1_byte_payload_is_1002(self):
        ws = self.ws()
        ws.send_frame(OP_CLOSE, b"\x03")
        self.assert_fails(ws, 1002)

    def test_close_reason_invalid_utf8_is_1007(self):
        for reason in (b"\xff", b"ok\xc0\xaf", b"\xed\xa0\x80", b"trunc\xe2\x82"):
            with self.subTest(reason=reason):
                ws = self.ws()
                ws.send_close(1000, reason)
                self.assert_fails(ws, 1007)

    def test_close_between_fragments_is_echoed(self):
        ws = self.ws()
        ws.send_text(b"unfinished", fin=False)
        ws.send_close(1000, "stop")
        self.assertEqual(ws.read_close()[0], 1000)
        ws.expect_eof(2)

    def test_data_after_the_close_is_ignored(self):
        ws = self.ws()
        ws.send_raw(encode_frame(OP_TEXT, b"before") + encode_frame(OP_CLOSE, close_payload(1000))
                    + encode_frame(OP_TEXT, b"after") + encode_frame(OP_PING, b"after"))
        self.assert_echo(ws, OP_TEXT, b"before")
        self.assertEqual(ws.read_close()[0], 1000)
        ws.expect_eof(2)

    def test_server_close_then_client_answer_ends_tcp(self):
        ws = self.ws("/testgear/ws?name=closer")
        ws.send_text("close:4000:done")
        self.assertEqual(ws.read_close(), (4000, b"done"))
        ws.send_close(4000)
        ws.expect_eof(2)


class TestCloseTimeout(ServerTestCase):
    CLOSE_TIMEOUT_MS = 500 * SLOW

    def setUp(self):
        self.srv = self.start_server(close_timeout_ms=self.CLOSE_TIMEOUT_MS)

    def test_unanswered_gear_close_is_dropped_after_close_timeout(self):
        ws = self.open_ws(self.srv, "/testgear/ws?name=t")
        ws.send_text("close:4000:bye")
        self.assertEqual(ws.read_close(), (4000, b"bye"))
        took = ws.expect_eof(self.CLOSE_TIMEOUT_MS / 1000 + 2)
        self.assertGreaterEqual(took, self.CLOSE_TIMEOUT_MS / 1000 * 0.8, "TCP closed before close_timeout_ms")
        self.assertLessEqual(took, self.CLOSE_TIMEOUT_MS / 1000 + 1.5 * SLOW)
        self.srv.wait_for_log(r"DISCONNECTED .*reason=stop")

    def test_unanswered_protocol_error_close_is_dropped(self):
        ws = self.open_ws(self.srv)
        ws.send_text("x", mask=False)
        self.assertEqual(ws.read_close()[0], 1002)
        ws.expect_eof(self.CLOSE_TIMEOUT_MS / 1000 + 1.5)

    def test_frames_after_the_server_close_are_discarded(self):
        ws = self.open_ws(self.srv, "/testgear/ws?name=t")
        ws.send_text("close:1000:")
        self.assertEqual(ws.read_close()[0], 1000)
        ws.send_text("echo:ignored")
        ws.send_frame(OP_PING, b"ignored")
        ws.send_close(1000)
        ws.expect_eof(2)


class TestIdleTimeout(ServerTestCase):
    def test_bytes_of_an_unfinished_frame_keep_the_connection_alive(self):
        idle = 500 * SLOW
        srv = self.start_server(idle_timeout_ms=idle)
        ws = self.open_ws(srv)
        frame = encode_frame(OP_TEXT, b"trickled")
        t0 = time.monotonic()
        for i in range(len(frame)):
            ws.send_raw(frame[i:i + 1])
            time.sleep(idle / 1000 / 4)
        self.assertGreater(time.monotonic() - t0, idle / 1000 * 2)
        self.assert_frame(ws.read_frame(), OP_TEXT, b"trickled")
        code, _ = ws.read_close(idle / 1000 + 2)
        self.assertEqual(code, 1000)
        ws.send_close(1000)
        ws.expect_eof(2)
        srv.wait_for_log(r"DISCONNECTED .*reason=timeout")

    def assert_frame(self, f, op, payload):
        self.assertEqual((f.opcode, f.payload), (op, payload))


if __name__ == "__main__":
    unittest.main()


class TestHttpPipelining(ProtocolTestCase):
    def test_pipelined_requests_with_head_are_answered_in_order(self):
        import socket
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5 * SLOW)
        self.addCleanup(s.close)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        responses = data.split(b"HTTP/1.1 ")[1:]
        self.assertEqual([r[:3] for r in responses], [b"200", b"200", b"404", b"200"], data)
        self.assertTrue(responses[0].endswith(b"\r\n\r\nok\n"), responses[0])
        self.assertTrue(responses[1].endswith(b"\r\n\r\n"), "HEAD has no body: %r" % responses[1])
        self.assertIn(b"Content-Length: 3", responses[1])
        self.assertIn(b"Connection: close", responses[3])
