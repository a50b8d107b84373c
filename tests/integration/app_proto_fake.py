#!/usr/bin/env python3
"""app_proto_fake.py MODE - a misbehaving application for app_proto_bad.sh,
speaking the application protocol (schemas/app-protocol.md) on fd 3:
    exit      exits with status 3 before reading anything
    version   answers Open with protocol 2
    garbage   answers Apply with bytes that are not a frame
    short     answers Apply with fewer results than records
    late      never answers Apply
    error     answers Apply with an Error frame
Every mode answers Open (lpi -1), Sync and Digest correctly."""
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
        send(0x81, json.dumps({"protocol": v, "name": "fake-" + mode, "lpi": -1}).encode())
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
