"""Orrery driven by an independent client: Debian's python3-websockets (10.4), asyncio API."""

import asyncio
import os
import unittest

import websockets
import websockets.client
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from orrery_harness import DEFLATE_OFF, SHUTDOWN_REASON, SLOW, Server


def T(seconds):
    return seconds * SLOW


class PyClientTestCase(unittest.IsolatedAsyncioTestCase):
    config = {}

    def setUp(self):
        self.srv = Server(dict(self.config))
        self.addCleanup(self.srv.kill)

    def uri(self, path="/echo/ws"):
        return "ws://127.0.0.1:%d%s" % (self.srv.port, path)

    def connect(self, path="/echo/ws", **kw):
        kw.setdefault("ping_interval", None)  # no pings of the client's own
        kw.setdefault("max_size", None)
        kw.setdefault("open_timeout", T(5))
        kw.setdefault("close_timeout", T(5))
        return websockets.client.connect(self.uri(path), **kw)

    async def recv(self, ws, timeout=5):
        return await asyncio.wait_for(ws.recv(), T(timeout))

    async def closed(self, ws, timeout=5):
        """Wait for the connection to end; return (code, reason) received from the server."""
        try:
            await asyncio.wait_for(ws.wait_closed(), T(timeout))
        except asyncio.TimeoutError:
            self.fail("connection still open after %ss" % T(timeout))
        return ws.close_code, ws.close_reason


class TestEcho(PyClientTestCase):
    async def test_text_and_binary_echo(self):
        async with self.connect() as ws:
            for n in (0, 1, 125, 126, 65535, 65536, 1 << 20):
                s = ("ab€" * (n // 3 + 1)).encode()[:n].decode("utf-8", "ignore")
                await ws.send(s)
                self.assertEqual(await self.recv(ws), s)
                b = os.urandom(n)
                await ws.send(b)
                self.assertEqual(await self.recv(ws), b)

    async def test_host_route(self):
        async with websockets.client.connect(
                "ws://echo.localhost:%d/ws" % self.srv.port, host="127.0.0.1", ping_interval=None) as ws:
            await ws.send("by host")
            self.assertEqual(await self.recv(ws), "by host")

    async def test_fragmented_send_from_an_async_iterator(self):
        async with self.connect() as ws:
            async def text_fragments():
                for part in ("Hel", "lo", ", ", "", "wörld €"):
                    yield part

            await ws.send(text_fragments())
            self.assertEqual(await self.recv(ws), "Hello, wörld €")

            async def binary_fragments():
                for i in range(20):
                    yield bytes([i]) * (i * 100)

            await ws.send(binary_fragments())
            self.assertEqual(await self.recv(ws), b"".join(bytes([i]) * (i * 100) for i in range(20)))

            # A sync iterable works too.
            await ws.send(["a", "b", "c"])
            self.assertEqual(await self.recv(ws), "abc")

    async def test_pings_between_fragments(self):
        async with self.connect() as ws:
            pongs = []

            async def fragments():
                yield "one "
                pongs.append(await ws.ping(b"between-1"))
                yield "two "
                pongs.append(await ws.ping(b"between-2"))
                yield "three"

            await ws.send(fragments())
            # Both pongs come back (the server answers pings mid-message), then the message.
            await asyncio.wait_for(asyncio.gather(*pongs), T(5))
            self.assertEqual(await self.recv(ws), "one two three")

    async def test_ping_pong(self):
        async with self.connect() as ws:
            for payload in (b"", b"hello", os.urandom(125)):
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, T(5))
            waiter = await ws.ping()  # random payload chosen by websockets
            await asyncio.wait_for(waiter, T(5))

    async def test_order_and_many_messages(self):
        async with self.connect() as ws:
            for i in range(300):
                await ws.send("m%d" % i)
            for i in range(300):
                self.assertEqual(await self.recv(ws), "m%d" % i)

    async def test_concurrent_clients(self):
        async def one(i):
            async with self.connect() as ws:
                for k in range(10):
                    await ws.send("%d-%d" % (i, k))
                    self.assertEqual(await self.recv(ws), "%d-%d" % (i, k))

        await asyncio.gather(*(one(i) for i in range(30)))


class TestLuaGearIsolation(PyClientTestCase):
    """luatestgear, a Lua gear: an error (raised, deep inside, not a string),
    an endless loop and a memory hog each close their own connection with an
    empty close frame; another connection of the gear goes on."""

    async def test_each_failure_costs_its_connection_alone(self):
        async with self.connect("/luatestgear/ws?name=bystander") as by:
            for cmd in ("crash", "error", "error:object", "spin", "hog"):
                with self.subTest(cmd=cmd):
                    ws = await self.connect("/luatestgear/ws?name=victim")
                    await ws.send(cmd)
                    with self.assertRaises(ConnectionClosed):
                        await self.recv(ws, timeout=10)
                    self.assertEqual((await self.closed(ws))[0], 1005)
                    await by.send("echo:still here")
                    self.assertEqual(await self.recv(by), "still here")
        self.srv.wait_for_log(r"stack traceback:")
        self.srv.wait_for_log(r"over its time limit")


class TestCloseCodes(PyClientTestCase):
    async def test_client_close_is_echoed(self):
        for code, reason in ((1000, ""), (1000, "done"), (1001, "bye"), (3000, "x"), (4000, "ünï"), (4999, "")):
            with self.subTest(code=code, reason=reason):
                ws = await self.connect()
                await ws.close(code, reason)
                self.assertEqual((await self.closed(ws))[0], code)

    async def test_testgear_close_command(self):
        ws = await self.connect("/testgear/ws?name=py")
        await ws.send("close:4321:see you")
        with self.assertRaises(ConnectionClosed):
            await self.recv(ws)
        self.assertEqual(await self.closed(ws), (4321, "see you"))

    async def test_testgear_crash_closes_with_an_empty_payload(self):
        ws = await self.connect("/testgear/ws?name=py")
        await ws.send("echo:hi")
        self.assertEqual(await self.recv(ws), "hi")
        await ws.send("crash")
        with self.assertRaises(ConnectionClosed):
            await self.recv(ws)
        code, reason = await self.closed(ws)
        self.assertEqual(code, 1005)  # websockets' code for "no status received"
        self.assertEqual(reason, "")
        self.srv.wait_for_log(r"DISCONNECTED .*reason=error")

    async def test_testgear_commands(self):
        async with self.connect("/testgear/ws?name=py") as ws:
            await ws.send("noop")
            await ws.send("echo:a")
            self.assertEqual(await self.recv(ws), "a")
            await ws.send(b"\x00\xff")
            self.assertEqual(await self.recv(ws), b"\x00\xff")
            for cmd, answer in (("send:x:y", "sent:false"), ("join:g", "joined:g"),
                                ("publish:g:m", "published:1"), ("leave:g", "left:g")):
                await ws.send(cmd)
                self.assertEqual(await self.recv(ws), answer)
                if cmd.startswith("publish"):
                    self.assertEqual(await self.recv(ws), "m")

    async def test_testgear_requires_a_name(self):
        with self.assertRaises(InvalidStatusCode) as cm:
            await self.connect("/testgear/ws")
        self.assertEqual(cm.exception.status_code, 400)

    async def test_luatestgear_commands(self):
        # The same commands, answered by the Lua gear.
        async with self.connect("/luatestgear/ws?name=py") as ws:
            await ws.send("echo:a")
            self.assertEqual(await self.recv(ws), "a")
            await ws.send(b"\x00\xff")
            self.assertEqual(await self.recv(ws), b"\x00\xff")
            for cmd, answer in (("send:x:y", "sent:false"), ("join:g", "joined:g"),
                                ("publish:g:m", "published:1"), ("leave:g", "left:g")):
                await ws.send(cmd)
                self.assertEqual(await self.recv(ws), answer)
                if cmd.startswith("publish"):
                    self.assertEqual(await self.recv(ws), "m")

    async def test_subprotocol_chosen_by_the_gear(self):
        for g in ("testgear", "luatestgear"):
            with self.subTest(gear=g):
                async with self.connect("/%s/ws?name=sp&proto=v2" % g, subprotocols=["v1", "v2"]) as ws:
                    self.assertEqual(ws.subprotocol, "v2")
                    await ws.send("echo:x")
                    self.assertEqual(await self.recv(ws), "x")

    async def test_permessage_deflate_negotiated_and_used(self):
        # websockets offers permessage-deflate by default and compresses
        # every message: the server inflates them and compresses its long
        # answers (deflate_min_bytes, 1024) without context takeover. With
        # ORR_DEFLATE=off (the [nodeflate] variant) the offer is declined.
        async with self.connect("/echo/ws") as ws:
            names = [e.name for e in ws.extensions]
            self.assertEqual(names, [] if DEFLATE_OFF else ["permessage-deflate"])
            if not DEFLATE_OFF:
                ext = ws.extensions[0]
                self.assertTrue(ext.remote_no_context_takeover)
                self.assertTrue(ext.local_no_context_takeover)
            for n in (1, 100, 5000, 300000):
                text = ("ab\u00e9" * n)[:n]
                await ws.send(text)
                self.assertEqual(await self.recv(ws), text)
                await ws.send(text.encode())
                self.assertEqual(await self.recv(ws), text.encode())

    async def test_unknown_route_is_404(self):
        with self.assertRaises(InvalidStatusCode) as cm:
            await self.connect("/nothing/here")
        self.assertEqual(cm.exception.status_code, 404)


class TestLimits(PyClientTestCase):
    config = {"max_message_bytes": 50000}

    async def test_max_is_echoed_and_max_plus_one_is_1009(self):
        ws = await self.connect()
        await ws.send(b"x" * 50000)
        self.assertEqual(await self.recv(ws), b"x" * 50000)
        await ws.send("y" * 50000)
        self.assertEqual(await self.recv(ws), "y" * 50000)
        try:
            await ws.send(b"z" * 50001)
        except ConnectionClosed:
            pass
        with self.assertRaises(ConnectionClosed):
            await self.recv(ws)
        code, _ = await self.closed(ws)
        self.assertEqual(code, 1009)

    async def test_fragments_over_max_are_1009(self):
        ws = await self.connect()
        try:
            await ws.send(["a" * 30000, "b" * 20001])
        except ConnectionClosed:
            pass
        code, _ = await self.closed(ws)
        self.assertEqual(code, 1009)


class TestIdle(PyClientTestCase):
    config = {"idle_timeout_ms": 500 * SLOW}

    async def test_idle_timeout_closes_with_1000(self):
        ws = await self.connect()
        code, _ = await self.closed(ws, timeout=3)
        self.assertEqual(code, 1000)
        self.srv.wait_for_log(r"DISCONNECTED .*reason=timeout")

    async def test_keepalive_pings_keep_the_connection(self):
        # websockets' own keepalive: a ping every 0.15 s.
        ws = await self.connect(ping_interval=0.15 * SLOW, ping_timeout=T(2))
        await asyncio.sleep(1.5 * SLOW)
        self.assertTrue(ws.open, "closed despite pings")
        await ws.send("still here")
        self.assertEqual(await self.recv(ws), "still here")
        await ws.close()


class TestDrain(PyClientTestCase):
    config = {"drain_ms": 400 * SLOW, "close_timeout_ms": 1000 * SLOW}

    async def test_sigterm_closes_with_1001(self):
        clients = [await self.connect() for _ in range(5)]
        self.srv.signal()
        for ws in clients:
            code, reason = await self.closed(ws, timeout=4)
            self.assertEqual((code, reason), (1001, SHUTDOWN_REASON))
        rc = await asyncio.get_running_loop().run_in_executor(None, self.srv.wait_exit, T(4))
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
