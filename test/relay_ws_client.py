#!/usr/bin/python3
"""relay_ws_client.py - WebSocket clients of relayd for test/relay_ws_test.sh.

Debian's python3-websockets is the client; relayd's side is wslay.  Each
command prints what it saw on standard output and exits 0 if it saw what
it should, 1 otherwise:

  recv PORT OUT COUNT      subscribe, print "subscribed" after the greeting,
                           take COUNT binary messages into OUT
  stall PORT N GO          N subscribers that read nothing until the file GO
                           exists, then each must find its connection closed;
                           with --readers K, K more that read slowly all the
                           time, and must get relayd's close frame (1008)
  compare OUT DB COUNT     the messages in OUT are the rows of relayd's
                           database DB in their order, byte for byte, COUNT
                           of them, each client's frames 0, 1, 2... in turn
  http PORT                the page, a 404, a refused handshake
  browser PORT DIR         headless Chromium shows the page; through the
                           DevTools protocol, waits until it shows frames
                           arriving, and saves DIR/page.png and DIR/dom.html

Every wait is bounded by --timeout (30 s).
"""

import argparse
import asyncio
import base64
import http.client
import json
import os
import re
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

GREETING = "RELAYD1"


def url(port):
    return "ws://127.0.0.1:%d/" % port


async def subscribe(port, rcvbuf=0, max_queue=32):
    """A WebSocket to relayd, up to its greeting."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    ws = await websockets.connect(url(port), sock=sock, max_size=None,
                                  max_queue=max_queue, compression=None)
    greeting = await ws.recv()
    if greeting != GREETING:
        raise RuntimeError("the first message is %r, not %r"
                           % (greeting, GREETING))
    return ws


async def cmd_recv(a):
    ws = await subscribe(a.port)
    print("subscribed", flush=True)
    n = 0
    with open(a.out, "wb") as out:
        while n < a.count:
            m = await ws.recv()
            if not isinstance(m, bytes):
                print("a text message after the greeting: %r" % m)
                return 1
            out.write(struct.pack(">I", len(m)) + m)
            n += 1
    print("received %d messages" % n)
    await ws.close()
    return 0


async def drain(ws):
    """Reads until the end; the close code, 1006 if there was none."""
    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed as e:
        return e.rcvd.code if e.rcvd is not None else 1006


async def slow_reader(ws, go):
    """Reads a message every 5 ms, then once GO exists at full speed,
    until the end; the close code."""
    try:
        while True:
            await ws.recv()
            if not os.path.exists(go):
                await asyncio.sleep(0.005)
    except websockets.ConnectionClosed as e:
        return e.rcvd.code if e.rcvd is not None else 1006


async def cmd_stall(a):
    # A small receive buffer and a queue of one message: the library
    # stops reading at once, and the kernel's buffer fills.
    subs = [await subscribe(a.port, rcvbuf=4096, max_queue=1)
            for _ in range(a.n)]
    readers = [await subscribe(a.port, max_queue=1)
               for _ in range(a.readers)]
    reading = [asyncio.ensure_future(slow_reader(ws, a.go))
               for ws in readers]
    print("subscribed %d" % (len(subs) + len(readers)), flush=True)
    while not os.path.exists(a.go):
        await asyncio.sleep(0.1)
    codes = await asyncio.gather(*(drain(ws) for ws in subs))
    rcodes = await asyncio.gather(*reading)
    print("closed: stalled %s; slow readers %s"
          % (" ".join(str(c) for c in codes),
             " ".join(str(c) for c in rcodes)))
    # A stalled one gets 1008 if relayd's close frame got through, 1006
    # if relayd had to close the connection without it; a slow reader
    # reads on to the close frame.
    return 0 if all(c in (1008, 1006) for c in codes) and \
        all(c == 1008 for c in rcodes) else 1


def read_messages(path):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        yield data[pos + 4:pos + 4 + n]
        pos += 4 + n


def cmd_compare(a):
    db = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True)
    rows = db.execute("SELECT id, payload FROM frames ORDER BY id")
    msgs = read_messages(a.out)
    nextidx = {}
    n = bad = 0
    for (rowid, payload), m in zip(rows, msgs):
        n += 1
        if bytes(payload) != m:
            bad += 1
            if bad <= 5:
                print("message %d differs from row %d" % (n, rowid))
            continue
        client, index = struct.unpack_from(">II", m)
        if index != nextidx.get(client, 0):
            bad += 1
            if bad <= 5:
                print("message %d: client %d frame %d where %d was due"
                      % (n, client, index, nextidx.get(client, 0)))
        nextidx[client] = index + 1
    extra_rows = sum(1 for _ in rows)
    extra_msgs = sum(1 for _ in msgs)
    print("%d messages compared with the database, %d wrong, %d rows "
          "not received, %d messages not in the database"
          % (n, bad, extra_rows, extra_msgs))
    return 0 if bad == 0 and n == a.count and extra_rows == 0 and \
        extra_msgs == 0 else 1


def cmd_http(a):
    problems = []

    def get(path, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r, body

    r, body = get("/")
    if r.status != 200 or "text/html" not in r.getheader("Content-Type") \
            or b"new WebSocket" not in body:
        problems.append("GET / is %d, not the page" % r.status)
    r, _ = get("/nothing-here")
    if r.status != 404:
        problems.append("GET /nothing-here is %d, not 404" % r.status)
    r, _ = get("/", {"Upgrade": "websocket", "Connection": "Upgrade",
                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                     "Sec-WebSocket-Version": "8"})
    if r.status != 426 or r.getheader("Sec-WebSocket-Version") != "13":
        problems.append("a handshake of version 8 is %d, not 426"
                        % r.status)
    # RFC 6455's own example of a key and its accept value.
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: keep-alive, Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    s.close()
    if not head.startswith(b"HTTP/1.1 101") or \
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" not in head:
        problems.append("the handshake of RFC 6455's example: %r"
                        % head[:200])
    for p in problems:
        print(p)
    print("http: %d problems" % len(problems))
    return 0 if not problems else 1


class Browser:
    """Headless Chromium on a page, driven through the DevTools protocol."""

    def __init__(self, page, profile, log):
        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--remote-debugging-port=0",
             "--user-data-dir=" + profile, "--window-size=900,700", page],
            stdout=subprocess.DEVNULL, stderr=log)
        self.next_id = 0

    def devtools_port(self, profile, deadline):
        # Chromium writes its port into the profile once it listens.
        path = os.path.join(profile, "DevToolsActivePort")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chromium exited with status %d"
                                   % self.proc.returncode)
            try:
                with open(path) as f:
                    return int(f.readline())
            except (OSError, ValueError):
                time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    async def call(self, ws, method, **params):
        self.next_id += 1
        await ws.send(json.dumps({"id": self.next_id, "method": method,
                                  "params": params}))
        while True:
            m = json.loads(await ws.recv())
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m["result"]

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


SHOWN = """JSON.stringify({state: document.getElementById('state').textContent,
 frames: +document.getElementById('frames').textContent,
 rate: +document.getElementById('rate').textContent})"""


async def cmd_browser(a):
    deadline = time.monotonic() + a.timeout
    page = "http://127.0.0.1:%d/" % a.port
    profile = tempfile.mkdtemp(prefix="chromium.", dir=a.dir)
    with open(os.path.join(a.dir, "chromium.log"), "wb") as log:
        b = Browser(page, profile, log)
        try:
            port = b.devtools_port(profile, deadline)
            targets = []
            while not targets and time.monotonic() < deadline:
                with urllib.request.urlopen("http://127.0.0.1:%d/json/list"
                                            % port, timeout=10) as r:
                    targets = [t for t in json.load(r)
                               if t["type"] == "page"]
                if not targets:
                    await asyncio.sleep(0.1)
            if not targets:
                raise RuntimeError("chromium shows no page")
            async with websockets.connect(
                    targets[0]["webSocketDebuggerUrl"], max_size=None,
                    compression=None) as ws:
                shown = {}
                while time.monotonic() < deadline:
                    r = await b.call(ws, "Runtime.evaluate",
                                     expression=SHOWN, returnByValue=True)
                    shown = json.loads(r["result"].get("value") or "{}")
                    if shown.get("frames", 0) > 0 and \
                            shown.get("rate", 0) > 0:
                        break
                    await asyncio.sleep(0.25)
                shot = await b.call(ws, "Page.captureScreenshot",
                                    format="png")
                with open(os.path.join(a.dir, "page.png"), "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
                r = await b.call(ws, "Runtime.evaluate",
                                 expression="document.documentElement."
                                 "outerHTML", returnByValue=True)
                with open(os.path.join(a.dir, "dom.html"), "w") as f:
                    f.write(r["result"]["value"])
        finally:
            b.close()
    print("the page shows: state %r, %s frames, %s frames/s"
          % (shown.get("state"), shown.get("frames"), shown.get("rate")))
    ok = shown.get("frames", 0) > 0 and shown.get("rate", 0) > 0 and \
        re.match(r"subscribed", shown.get("state", "")) is not None
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--timeout", type=float, default=30)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("recv")
    s.add_argument("port", type=int)
    s.add_argument("out")
    s.add_argument("count", type=int)
    s = sub.add_parser("stall")
    s.add_argument("port", type=int)
    s.add_argument("n", type=int)
    s.add_argument("go")
    s.add_argument("--readers", type=int, default=0)
    s = sub.add_parser("compare")
    s.add_argument("out")
    s.add_argument("db")
    s.add_argument("count", type=int)
    s = sub.add_parser("http")
    s.add_argument("port", type=int)
    s = sub.add_parser("browser")
    s.add_argument("port", type=int)
    s.add_argument("dir")
    a = p.parse_args()
    if a.cmd == "compare":
        return cmd_compare(a)
    if a.cmd == "http":
        return cmd_http(a)
    run = {"recv": cmd_recv, "stall": cmd_stall, "browser": cmd_browser}
    try:
        return asyncio.run(asyncio.wait_for(run[a.cmd](a), a.timeout))
    except asyncio.TimeoutError:
        print("%s: gave up after %g s" % (a.cmd, a.timeout))
        return 1
    except (OSError, RuntimeError, websockets.WebSocketException) as e:
        print("%s: %s" % (a.cmd, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
