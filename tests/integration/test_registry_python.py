"""The registry and the push API driven by another client implementation:
Debian's python3-websockets (10.4, asyncio API) and urllib."""

import os
import asyncio
import json
import re
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import websockets
import websockets.client
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from orrery_harness import SLOW, Server

TOKEN = "py-t0ken"
# testgear (C) by default, luatestgear (the same commands in Lua) with ORR_TESTGEAR.
TESTGEAR = os.environ.get("ORR_TESTGEAR", "testgear")
TG = "gear:" + TESTGEAR


def T(seconds):
    return seconds * SLOW


class RegistryTestCase(unittest.IsolatedAsyncioTestCase):
    config = {"workers": 2, "api_token": TOKEN}

    def setUp(self):
        self.srv = Server(dict(self.config))
        self.addCleanup(self.srv.kill)

    def connect(self, name, tenant=None, **kw):
        q = {"name": name}
        if tenant is not None:
            q["tenant"] = tenant
        kw.setdefault("ping_interval", None)
        kw.setdefault("max_size", None)
        kw.setdefault("open_timeout", T(5))
        kw.setdefault("close_timeout", T(5))
        uri = "ws://127.0.0.1:%d/%s/ws?%s" % (self.srv.port, TESTGEAR, urllib.parse.urlencode(q))
        return websockets.client.connect(uri, **kw)

    async def client(self, name, tenant=None):
        """A connected testgear client whose name is registered (an echo round trip done)."""
        ws = await self.connect(name, tenant)
        self.addAsyncCleanup(ws.close)
        await ws.send("echo:ready")
        self.assertEqual(await self.recv(ws), "ready")
        return ws

    async def recv(self, ws, timeout=5):
        return await asyncio.wait_for(ws.recv(), T(timeout))

    async def cmd(self, ws, text):
        await ws.send(text)
        return await self.recv(ws)

    async def quiet(self, *socks, wait=0.2):
        """Nothing more arrives on any of socks within `wait` seconds."""
        await asyncio.sleep(T(wait))
        for ws in socks:
            with self.assertRaises(asyncio.TimeoutError, msg="unexpected message"):
                await asyncio.wait_for(ws.recv(), 0.01)

    # -- HTTP through urllib ------------------------------------------------

    def http(self, method, path, body=None, headers=None):
        """(status, headers, body bytes); HTTP errors are returned, not raised."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.srv.port, path), data=body,
                                     method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=T(5)) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    async def push(self, pool, kind, name, body, token=TOKEN, auth=None):
        headers = {"Content-Type": "application/octet-stream"}
        if auth is not None:
            headers["Authorization"] = auth
        elif token is not None:
            headers["Authorization"] = "Bearer " + token
        # The pool goes in as written (gear:testgear or gear%3Atestgear).
        path = "/_orrery/pools/%s/%s/%s/messages" % (pool, kind, urllib.parse.quote(name, safe=""))
        if isinstance(body, str):
            body = body.encode()
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.http("POST", path, body, headers))

    def metric(self, name, labels=None):
        status, _, text = self.http("GET", "/metrics")
        self.assertEqual(status, 200)
        key = name + ("{%s}" % ",".join('%s="%s"' % kv for kv in labels.items()) if labels else "")
        for line in text.decode().splitlines():
            if line.startswith(key + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    async def wait_metric(self, name, value, labels=None, timeout=5):
        deadline = time.monotonic() + T(timeout)
        while True:
            v = self.metric(name, labels)
            if v == value:
                return
            if time.monotonic() > deadline:
                self.fail("%s is %r, not %r" % (name, v, value))
            await asyncio.sleep(0.02)


class TestUnique(RegistryTestCase):
    async def test_send_between_python_clients(self):
        alice = await self.client("alice")
        bob = await self.client("bob")
        self.assertEqual(await self.cmd(alice, "send:bob:hello from python"), "sent:true")
        self.assertEqual(await self.recv(bob), "alice:hello from python")
        self.assertEqual(await self.cmd(bob, "send:alice:ünïcødé ✓"), "sent:true")
        self.assertEqual(await self.recv(alice), "bob:ünïcødé ✓")
        self.assertEqual(await self.cmd(bob, "send:nobody:x"), "sent:false")
        # Many, in order.
        for i in range(200):
            await alice.send("send:bob:%d" % i)
        for i in range(200):
            self.assertEqual(await self.recv(alice), "sent:true")
        for i in range(200):
            self.assertEqual(await self.recv(bob), "alice:%d" % i)
        await self.quiet(alice, bob)

    async def test_taken_name_is_closed_with_4009_and_freed_on_close(self):
        alice = await self.client("alice")
        dup = await self.connect("alice")
        with self.assertRaises(ConnectionClosed) as cm:
            await self.recv(dup)
        self.assertEqual((cm.exception.code, cm.exception.reason), (4009, "name taken"))
        await asyncio.wait_for(dup.wait_closed(), T(5))
        self.assertEqual(dup.close_code, 4009)

        # The first holder still has it; once it closes, the name is free.
        bob = await self.client("bob")
        self.assertEqual(await self.cmd(bob, "send:alice:still"), "sent:true")
        self.assertEqual(await self.recv(alice), "bob:still")
        await alice.close()
        await self.wait_metric("orrery_registry_names", 1)
        self.assertEqual(await self.cmd(bob, "send:alice:gone"), "sent:false")
        alice2 = await self.client("alice")
        self.assertEqual(await self.cmd(bob, "send:alice:again"), "sent:true")
        self.assertEqual(await self.recv(alice2), "bob:again")

    async def test_tenant_namespaces(self):
        a_gear = await self.client("alice")
        a_t1 = await self.client("alice", tenant="t1")
        b_t1 = await self.client("bob", tenant="t1")
        self.assertEqual(await self.cmd(a_t1, "pool"), "tenant:t1")
        self.assertEqual(await self.cmd(b_t1, "send:alice:in t1"), "sent:true")
        self.assertEqual(await self.recv(a_t1), "bob:in t1")
        self.assertEqual(await self.cmd(a_gear, "send:bob:x"), "sent:false")
        with self.assertRaises(InvalidStatusCode) as cm:
            await self.connect("carol", tenant="no spaces")
        self.assertEqual(cm.exception.status_code, 404)
        await self.quiet(a_gear)


class TestGroups(RegistryTestCase):
    async def test_join_publish_leave(self):
        members = [await self.client("m%d" % i) for i in range(20)]
        pub = await self.client("pub")
        for ws in members:
            self.assertEqual(await self.cmd(ws, "join:room"), "joined:room")
        self.assertEqual(await self.cmd(pub, "publish:room:hello all"), "published:20")
        got = await asyncio.gather(*(self.recv(ws) for ws in members))
        self.assertEqual(got, ["hello all"] * 20)

        self.assertEqual(await self.cmd(members[0], "leave:room"), "left:room")
        self.assertEqual(await self.cmd(members[0], "leave:room"), "not_in_group:room")
        await members[1].close()
        await self.wait_metric("orrery_registry_memberships", 18)
        self.assertEqual(await self.cmd(pub, "publish:room:fewer"), "published:18")
        got = await asyncio.gather(*(self.recv(ws) for ws in members[2:]))
        self.assertEqual(got, ["fewer"] * 18)
        await self.quiet(pub, members[0], *members[2:])


class TestPush(RegistryTestCase):
    config = {"workers": 2, "api_token": TOKEN, "max_message_bytes": 4096}

    async def test_push_unique_and_group(self):
        alice = await self.client("alice")
        bob = await self.client("bob")
        status, headers, body = await self.push(TG, "unique", "alice", "pushed to alice")
        self.assertEqual((status, json.loads(body)), (200, {"delivered": True}))
        self.assertIn("application/json", headers.get("Content-Type"))
        self.assertEqual(await self.recv(alice), "pushed to alice")

        status, _, body = await self.push("gear%3A" + TESTGEAR, "unique", "bob", b"\xff\x00binary")
        self.assertEqual((status, json.loads(body)), (200, {"delivered": True}))
        self.assertEqual(await self.recv(bob), b"\xff\x00binary")  # bytes: a binary frame

        status, _, body = await self.push(TG, "unique", "carol", "nobody")
        self.assertEqual((status, json.loads(body)), (404, {"delivered": False}))

        for ws in (alice, bob):
            self.assertEqual(await self.cmd(ws, "join:news"), "joined:news")
        status, _, body = await self.push(TG, "groups", "news", "extra!")
        self.assertEqual((status, json.loads(body)), (200, {"count": 2}))
        self.assertEqual(await self.recv(alice), "extra!")
        self.assertEqual(await self.recv(bob), "extra!")
        status, _, body = await self.push(TG, "groups", "empty", "x")
        self.assertEqual((status, json.loads(body)), (200, {"count": 0}))
        await self.quiet(alice, bob)

    async def test_push_401_and_413(self):
        alice = await self.client("alice")
        for auth in (None, "Bearer wrong", "Basic " + TOKEN, TOKEN):
            with self.subTest(auth=auth):
                status, headers, _ = await self.push(TG, "unique", "alice", "no",
                                                     token=None if auth is None else TOKEN, auth=auth)
                self.assertEqual(status, 401)
                self.assertTrue(re.match(r"(?i)bearer", headers.get("WWW-Authenticate", "")))
        status, _, _ = await self.push(TG, "unique", "alice", "z" * 4096)
        self.assertEqual(status, 200)
        self.assertEqual(await self.recv(alice), "z" * 4096)
        status, _, _ = await self.push(TG, "unique", "alice", "z" * 4097)
        self.assertEqual(status, 413)
        await self.quiet(alice)


class TestPushOff(RegistryTestCase):
    config = {"workers": 1}

    async def test_no_token_configured_is_404(self):
        alice = await self.client("alice")
        status, _, _ = await self.push(TG, "unique", "alice", "x")
        self.assertEqual(status, 404)
        await self.quiet(alice)


if __name__ == "__main__":
    unittest.main()


class TestParking(RegistryTestCase):
    """Parking (park_ms): a name whose client goes keeps its messages, by
    send and by push, and the client that comes back gets them in order."""

    config = {"workers": 2, "api_token": TOKEN, "pools": {TG: {"park_ms": 10000}}}

    async def test_reconnect_gets_what_was_sent_meanwhile(self):
        bob = await self.client("bob")
        alice = await self.client("alice")
        await alice.close()
        await self.wait_metric("orrery_parked_names", 1, {"pool": TG})
        self.assertEqual(await self.cmd(bob, "send:alice:1"), "sent:parked")
        status, _, body = await self.push(TG, "unique", "alice", "2")
        self.assertEqual((status, json.loads(body)), (202, {"delivered": False, "parked": True}))
        self.assertEqual(await self.cmd(bob, "send:alice:3"), "sent:parked")
        alice = await self.connect("alice")
        self.addAsyncCleanup(alice.close)
        self.assertEqual([await self.recv(alice) for _ in range(3)], ["bob:1", "2", "bob:3"])
        self.assertEqual(await self.cmd(bob, "send:alice:4"), "sent:true")
        self.assertEqual(await self.recv(alice), "bob:4")
        self.assertEqual(self.metric("orrery_parked_messages_total",
                                     {"pool": TG, "result": "delivered"}), 3)
