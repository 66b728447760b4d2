"""Memory no client can grow (issue 8): the per-connection output cap
(max_outbound_bytes counts every byte, pongs too) and the node's budget
(max_buffered_bytes), each attack reproduced with raw sockets while a normal
client (Debian's python3-websockets) keeps getting its echoes."""

import asyncio
import os
import socket
import struct
import threading
import time
import unittest
import urllib.request

import websockets
import websockets.client

from orrery_harness import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, SLOW, Closed, RawWs,
                            Server, encode_frame)

MiB = 1 << 20


def T(seconds):
    return seconds * SLOW


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


def small_rcvbuf_ws(port, path="/echo/ws", rcvbuf=4096):
    return RawWs.connect(port, path, rcvbuf=rcvbuf, timeout=10)


def message_length(ws, timeout=10):
    """Reads one data message (in fragments or not): its length."""
    total = 0
    for fin, op, n, _ in ws.skim_frames(timeout):
        if op in (OP_BINARY, OP_TEXT, 0):
            total += n
            if fin:
                return total


def read_until_close(ws, timeout=10):
    """Reads frames until a close: (close code or None on EOF, {opcode: count})."""
    counts = {}
    try:
        while True:
            f = ws.read_frame(timeout)
            counts[f.opcode] = counts.get(f.opcode, 0) + 1
            if f.opcode == OP_CLOSE:
                return f.close_code, counts
    except Closed:
        return None, counts


class BudgetTestCase(unittest.IsolatedAsyncioTestCase):
    config = {}

    def start(self, **config):
        cfg = {"workers": 2}
        cfg.update(config)
        self.srv = Server(cfg)
        self.addCleanup(self.srv.kill)
        self.rss0 = rss_bytes(self.srv.proc.pid)
        return self.srv

    def http(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.srv.port, path), timeout=T(5)) as r:
            return r.status, r.read().decode()

    def metric(self, name):
        _, text = self.http("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    async def normal_client(self):
        """An echo client that sends a message every 20 ms and checks its
        answer; returns (task, stop event, worst round trip in a list)."""
        ws = await websockets.client.connect("ws://127.0.0.1:%d/echo/ws" % self.srv.port,
                                             ping_interval=None, max_size=None, open_timeout=T(5))
        self.addAsyncCleanup(ws.close)
        stop = asyncio.Event()
        worst = [0.0]
        rounds = [0]

        async def loop():
            i = 0
            while not stop.is_set():
                t0 = time.monotonic()
                await ws.send("normal %d" % i)
                got = await asyncio.wait_for(ws.recv(), T(5))
                self.assertEqual(got, "normal %d" % i)
                worst[0] = max(worst[0], time.monotonic() - t0)
                rounds[0] += 1
                i += 1
                await asyncio.sleep(0.02)

        return asyncio.create_task(loop()), stop, worst, rounds

    async def finish_normal(self, task, stop, worst, rounds):
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, T(10))
        self.assertGreater(rounds[0], 5)
        self.assertLess(worst[0], T(1.0), "the normal client waited %.3f s for an echo" % worst[0])

    def sample_rss(self, seconds, peak):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            peak[0] = max(peak[0], rss_bytes(self.srv.proc.pid))
            time.sleep(0.05)

    def wait_metric_at_most(self, name, limit, timeout=10):
        deadline = time.monotonic() + T(timeout)
        while self.metric(name) > limit:
            self.assertLess(time.monotonic(), deadline, "%s still over %d" % (name, limit))
            time.sleep(0.05)

    async def in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def log_event(self, pattern, timeout=30):
        """An Event set once the server logs `pattern`: cheap to poll from a
        busy loop (joining the whole log there would starve the other
        threads of the GIL, the normal client's too)."""
        ev = threading.Event()

        def watch():
            try:
                self.srv.wait_for_log(pattern, timeout=timeout)
                ev.set()
            except AssertionError:
                pass
        threading.Thread(target=watch, daemon=True).start()
        return ev


class TestPartialMessages(BudgetTestCase):
    async def test_partial_messages_past_the_budget_get_1013(self):
        """Clients that each send a big frame minus its last byte: the first
        ones hold buffers, the rest are refused with 1013 once the node is
        near max_buffered_bytes; RSS stays bounded; others are unaffected."""
        BUDGET = 48 * MiB
        FRAME = 8 * MiB
        N = 20
        self.start(max_buffered_bytes=BUDGET, max_message_bytes=20000000, idle_timeout_ms=T(60000))
        task, stop, worst, rounds = await self.normal_client()

        def attack(i):
            ws = small_rcvbuf_ws(self.srv.port, rcvbuf=65536)
            ws.send_frame_but_last_byte(FRAME)
            return ws

        clients = await asyncio.gather(*(self.in_thread(attack, i) for i in range(N)))
        peak = [0]
        await self.in_thread(self.sample_rss, 1.0, peak)
        held = self.metric("orrery_buffered_bytes")
        self.assertLessEqual(held, BUDGET)
        refused = self.metric('orrery_budget_closes_total{reason="message_refused"}')
        holders = N - int(refused)
        self.assertGreaterEqual(refused, N - BUDGET // FRAME, "refused %d of %d" % (refused, N))
        self.assertGreater(holders, 0)
        self.assertGreaterEqual(held, holders * FRAME)
        if not SLOW:
            grew = peak[0] - self.rss0
            self.assertLess(grew, BUDGET + 32 * MiB, "RSS grew by %d MiB" % (grew // MiB))
        # The refused ones read their close: 1013 (read in a thread: the
        # normal client's loop goes on meanwhile).
        def first_frame(ws):
            try:
                f = ws.read_frame(0.2)
            except AssertionError:
                return "waiting"
            except Closed:
                return None
            return (f.opcode, f.close_code, f.close_reason)
        codes = [await self.in_thread(first_frame, ws) for ws in clients]
        self.assertEqual(codes.count((OP_CLOSE, 1013, b"server busy: try again later")), refused, codes)
        self.assertEqual(codes.count("waiting"), holders, codes)
        await self.in_thread(self.srv.wait_for_log, r"warn .*memory budget: \d+ of %d bytes buffered on this node: "
                             r"a message needing \d+ more refused: closing 1013" % BUDGET)
        # The holders send their last byte and get their message back whole.
        # Buffers that grew in small steps may have taken the node past 7/8
        # (6 holders: the whole budget); an echo landing there is shed by
        # design (budget.c), so holders beyond 7/8 first go away.
        waiting = [ws for ws, code in zip(clients, codes) if code == "waiting"]
        keep = max(1, (BUDGET - BUDGET // 8) // FRAME)
        for ws in waiting[keep:]:
            ws.close_socket()
        await self.in_thread(lambda: self.wait_metric_at_most("orrery_buffered_bytes", keep * FRAME + MiB))
        for ws in waiting[:keep]:
            ws.send_raw(b"\x00")
            self.assertEqual(await self.in_thread(message_length, ws), FRAME)
        await self.finish_normal(task, stop, worst, rounds)
        for ws in clients:
            if ws not in waiting[keep:]:
                ws.close_socket()


class TestOutputShed(BudgetTestCase):
    async def test_largest_backlogs_are_shed_with_1008(self):
        """Many clients that pipeline messages and never read, each under
        max_outbound_bytes: together past the budget, the node closes the
        ones holding the most unsent output (1008) until it is back under
        three quarters; the others keep working."""
        BUDGET = 16 * MiB
        N = 10
        # Each under its max_outbound_bytes (8 MiB; the kernel takes a few of
        # its 6 MiB of echoes), together about twice the budget.
        self.start(max_buffered_bytes=BUDGET, max_outbound_bytes=8 * MiB, workers=2, close_timeout_ms=T(20000))
        task, stop, worst, rounds = await self.normal_client()
        msg = encode_frame(OP_BINARY, b"z" * 32768)

        def attack(i):
            ws = small_rcvbuf_ws(self.srv.port)
            ws.sock.sendall(msg * 192)
            return ws

        clients = await asyncio.gather(*(self.in_thread(attack, i) for i in range(N)))
        peak = [0]
        await self.in_thread(self.sample_rss, 1.0, peak)
        shed = self.metric('orrery_budget_closes_total{reason="output_shed"}')
        self.assertGreater(shed, 0)
        self.assertLess(shed, N, "not every connection is shed")
        self.assertLessEqual(self.metric("orrery_buffered_bytes"), BUDGET)
        await self.in_thread(self.srv.wait_for_log, r"warn .*memory budget: \d+ of %d bytes buffered on this node; "
                             r"this connection holds \d+ unsent: closing 1008" % BUDGET)
        if not SLOW:
            grew = peak[0] - self.rss0
            self.assertLess(grew, BUDGET + 32 * MiB, "RSS grew by %d MiB" % (grew // MiB))
        # Each client now reads: the shed ones get a prefix of echoes then
        # 1008; those refused a buffer when over the budget itself, 1013; the
        # others all their echoes, and they stay open.
        def ending(ws):
            try:
                while True:
                    f = ws.read_frame(0.5)
                    if f.opcode == OP_CLOSE:
                        return (f.close_code, f.close_reason)
                    if f.opcode not in (OP_BINARY, 0):
                        return "opcode %d" % f.opcode
            except AssertionError as e:
                return "open" if "no frame within" in str(e) else str(e)
            except Closed:
                return "TCP closed without a close frame"
        codes = [await self.in_thread(ending, ws) for ws in clients]
        refused = self.metric('orrery_budget_closes_total{reason="message_refused"}')
        # Read again: a slow (sanitized) node may still have been working
        # through the pipelined messages after the first reading, and shed
        # more (a fresh-clone TSan run: 6 then 8, every one of them 1008).
        shed = self.metric('orrery_budget_closes_total{reason="output_shed"}')
        self.assertLess(shed, N, "not every connection is shed")
        self.assertEqual(codes.count((1008, b"server over its memory budget")), shed, codes)
        self.assertEqual(codes.count((1013, b"server busy: try again later")), refused, codes)
        self.assertEqual(codes.count("open"), N - shed - refused, codes)
        await self.finish_normal(task, stop, worst, rounds)
        for ws in clients:
            ws.close_socket()


class TestOwnOutput(BudgetTestCase):
    async def test_pipelining_without_reading_is_closed_at_the_cap(self):
        """Echoes of its own messages count against max_outbound_bytes: past
        it with more than one message, 1008 at once; a backlog that passed it
        by less than one message (reads paused) at the idle timeout."""
        self.start(max_outbound_bytes=65536, close_timeout_ms=T(20000), idle_timeout_ms=T(2000))
        task, stop, worst, rounds = await self.normal_client()
        ws = small_rcvbuf_ws(self.srv.port)
        msg = encode_frame(OP_BINARY, b"e" * 16384)
        slow = self.log_event("slow consumer")

        # In a thread, like every wait below: the normal client's loop must
        # go on meanwhile (its idle timeout here is 2 s).
        def flood():
            ws.sock.setblocking(False)
            end = time.monotonic() + T(5)
            at = 0  # bytes of msg already sent: only whole frames before the close
            while time.monotonic() < end:
                try:
                    at = (at + ws.sock.send(msg[at:])) % len(msg)
                except BlockingIOError:
                    if slow.is_set():
                        break
                    time.sleep(0.01)
                except OSError:
                    break
            ws.sock.setblocking(True)
            return at

        at = await self.in_thread(flood)
        await self.in_thread(lambda: self.srv.wait_for_log(
            r"warn .*slow consumer: \d+ bytes unsent \(max_outbound_bytes 65536\): closing 1008", timeout=10))
        code, counts = await self.in_thread(read_until_close, ws, 5)
        self.assertEqual(code, 1008)
        self.assertGreater(counts.get(OP_BINARY, 0), 0)
        if at:
            ws.sock.sendall(msg[at:])
        ws.send_close(1008)
        await self.in_thread(self.srv.wait_for_log, r"DISCONNECTED .*reason=slow")
        await self.finish_normal(task, stop, worst, rounds)
        ws.close_socket()

    async def test_one_large_echo_over_the_cap_works_for_a_client_that_reads(self):
        self.start(max_outbound_bytes=65536)
        async with websockets.client.connect("ws://127.0.0.1:%d/echo/ws" % self.srv.port, max_size=None,
                                             ping_interval=None) as ws:
            big = os.urandom(3 * MiB)
            for _ in range(3):
                await ws.send(big)
                self.assertEqual(await asyncio.wait_for(ws.recv(), T(10)), big)
        self.assertNotIn("slow consumer", self.srv.log)


class TestPingFlood(BudgetTestCase):
    async def test_ping_flood_gets_coalesced_pongs_and_is_closed_over_the_cap(self):
        """A client that sends pings and never reads: once its output is
        backed up only the newest pong waits, the ones it replaced count as
        unsent output, and past max_outbound_bytes it is closed with 1008.
        RSS does not grow."""
        self.start(close_timeout_ms=T(20000))
        task, stop, worst, rounds = await self.normal_client()
        ws = small_rcvbuf_ws(self.srv.port)
        ping = encode_frame(OP_PING, b"p" * 125)
        batch = ping * 64
        sent = [0]

        slow = self.log_event("slow consumer")

        def flood():
            ws.sock.setblocking(False)
            end = time.monotonic() + T(20)
            at = 0  # whole frames only: a partial one is finished
            while time.monotonic() < end and (at or not slow.is_set()):
                try:
                    k = ws.sock.send(batch[at:])
                    sent[0] += k
                    at = (at + k) % len(batch)
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError:
                    break
            ws.sock.setblocking(True)

        peak = [0]
        sampler = threading.Thread(target=self.sample_rss, args=(2.0, peak))
        sampler.start()
        await self.in_thread(flood)
        await self.in_thread(sampler.join)
        await self.in_thread(self.srv.wait_for_log,
                             r"warn .*slow consumer: \d+ bytes unsent \(max_outbound_bytes 1048576\): closing 1008")
        code, counts = await self.in_thread(read_until_close, ws, 5)
        pings = sent[0] // len(ping)
        pongs = counts.get(OP_PONG, 0)
        self.assertEqual(code, 1008)
        self.assertGreater(pongs, 0)
        # Without coalescing every ping would have its pong before the cap.
        self.assertLess(pongs + (1 << 20) // 127, pings, "%d pongs for %d pings" % (pongs, pings))
        if not SLOW:
            self.assertLess(peak[0] - self.rss0, 16 * MiB)
        await self.finish_normal(task, stop, worst, rounds)
        ws.close_socket()

    async def test_pings_of_a_client_that_reads_are_all_answered(self):
        self.start()
        ws = RawWs.connect(self.srv.port)
        self.addCleanup(ws.close_socket)
        ws.send_raw(b"".join(encode_frame(OP_PING, ("payload-%d" % i).encode()) for i in range(10)))
        for i in range(10):
            f = ws.read_frame(5)
            self.assertEqual((f.opcode, f.payload), (OP_PONG, ("payload-%d" % i).encode()))


if __name__ == "__main__":
    unittest.main()
