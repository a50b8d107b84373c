#!/usr/bin/env python3
"""app_proto_fake.py MODE - a misbehaving application for app_proto_bad.sh,
speaking the application protocol (schemas/app-protocol.md) on fd 3:
    exit      exits with status 3 before reading anything
    version   answers Open with protocol 2
    garbage   answers Apply with bytes that are not a frame
    short     answers Apply with fewer results than records
    late      never answers Apply
    error     answers Apply with an Error frame
    extbad    applies records (its LPI in a file of its state directory),
              asks for an external effect and answers External with an op
              of an unknown kind
Every mode answers Open, Sync and Digest correctly."""
import json
import os
import socket
import struct
import sys
import time

mode = sys.argv[1]
if mode == "exit":
    sys.exit(3)
s = socket.socket(fileno=int(os.environ["BR2K_APP_FD"]))
lpi, lpi_file = -1, None


def recv(n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            sys.exit(0)
        b += k
    return b


def send(t, p=b""):
    s.sendall(struct.pack(">IB", len(p) + 1, t) + p)


while True:
    (n,) = struct.unpack(">I", recv(4))
    f = recv(n)
    t, p = f[0], f[1:]
    if t == 1:
        v = 2 if mode == "version" else 1
        rep = {"protocol": v, "name": "fake-" + mode, "lpi": -1}
        if mode == "extbad":
            lpi_file = os.path.join(json.loads(p)["dir"], "lpi")
            lpi = int(open(lpi_file).read()) if os.path.exists(lpi_file) else -1
            rep.update(lpi=lpi, external=True)
        send(0x81, json.dumps(rep).encode())
    elif t == 2 and mode == "extbad":
        (count,) = struct.unpack_from(">I", p, 0)
        pos, out = 4, [struct.pack(">I", count)]
        for _ in range(count):
            lpi, ln = struct.unpack_from(">qI", p, pos)
            pos += 12 + ln
            out.append(struct.pack(">BI", 1, 2) + b"{}")
        send(0x82, b"".join(out))
    elif t == 8:  # extbad: op kind 9 on the first record, none on the others
        (count,) = struct.unpack_from(">I", p, 8)
        bad = struct.pack(">BI", 9, 1) + b"k" + struct.pack(">II", 0, 0) + struct.pack(">q", 0)
        send(0x88, struct.pack(">I", count) + struct.pack(">I", 1) + bad + struct.pack(">I", 0) * (count - 1))
    elif t == 3 and lpi_file:
        with open(lpi_file, "w") as f:
            f.write(str(lpi))
        send(0x83)
    elif t == 2:
        if mode == "garbage":
            s.sendall(b"hello, this is not a frame\n")
        elif mode == "short":
            send(0x82, struct.pack(">I", 0))
        elif mode == "late":
            time.sleep(600)
        elif mode == "error":
            send(0x7F, b"disk full")
    elif t in (3, 7):
        send(t | 0x80)
    elif t == 4:
        send(0x84, b"0" * 64)
