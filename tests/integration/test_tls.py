"""wss:// from an independent client: Debian's python3-websockets (10.4) with an ssl context
trusting a test CA made here with the openssl CLI; echo, deflate, a large message, the drain."""

import asyncio
import os
import shutil
import ssl
import subprocess
import tempfile
import unittest

import websockets.client

from orrery_harness import SHUTDOWN_REASON, SLOW, Server


def T(seconds):
    return seconds * SLOW


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class TlsTestCase(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="orrery-tls-py-")
        p = lambda n: os.path.join(cls.dir, n)  # noqa: E731
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=Orrery Test CA",
                "-keyout", p("ca.key"), "-out", p("ca.pem"))
        openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", p("srv.key"), "-out", p("srv.csr"))
        with open(p("ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", p("srv.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
                "-set_serial", "4242", "-days", "2", "-extfile", p("ext"), "-out", p("srv.pem"))
        cls.ssl = ssl.create_default_context(cafile=p("ca.pem"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.srv = Server({"drain_ms": 200, "tls": {"cert": os.path.join(self.dir, "srv.pem"),
                                                     "key": os.path.join(self.dir, "srv.key")}})
        self.addCleanup(self.srv.kill)

    def connect(self, path="/echo/ws", **kw):
        kw.setdefault("ping_interval", None)
        kw.setdefault("max_size", None)
        kw.setdefault("open_timeout", T(5))
        kw.setdefault("close_timeout", T(5))
        kw.setdefault("ssl", self.ssl)
        return websockets.client.connect("wss://localhost:%d%s" % (self.srv.port, path), **kw)

    async def recv(self, ws, timeout=5):
        return await asyncio.wait_for(ws.recv(), T(timeout))

    async def test_echo_over_wss(self):
        async with self.connect() as ws:
            self.assertEqual(ws.transport.get_extra_info("ssl_object").version(), "TLSv1.3")
            for n in (0, 125, 65536, 1 << 20):
                s = ("tls€" * n)[:n]
                await ws.send(s)
                self.assertEqual(await self.recv(ws), s)
                b = os.urandom(n)
                await ws.send(b)
                self.assertEqual(await self.recv(ws), b)

    async def test_deflate_negotiated_over_wss(self):
        async with self.connect() as ws:
            self.assertEqual([e.name for e in ws.extensions], ["permessage-deflate"])
            s = "compressible " * 5000
            await ws.send(s)
            self.assertEqual(await self.recv(ws), s)

    async def test_tls12_client(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        async with self.connect(ssl=ctx) as ws:
            self.assertEqual(ws.transport.get_extra_info("ssl_object").version(), "TLSv1.2")
            await ws.send("twelve")
            self.assertEqual(await self.recv(ws), "twelve")

    async def test_drain_over_wss(self):
        async with self.connect() as ws:
            await ws.send("x")
            self.assertEqual(await self.recv(ws), "x")
            self.srv.signal()
            await asyncio.wait_for(ws.wait_closed(), T(5))
            self.assertEqual((ws.close_code, ws.close_reason), (1001, SHUTDOWN_REASON))
        self.assertEqual(self.srv.wait_exit(T(10)), 0)


if __name__ == "__main__":
    unittest.main()
