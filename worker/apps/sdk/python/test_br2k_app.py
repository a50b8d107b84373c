"""Tests of the Python SDK (br2k_app) and its example (python-kv): the test
plays the engine on one end of a socketpair, the SDK serves the other end
in a thread. Run: python3 -m unittest test_br2k_app (from this folder)."""
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "../../examples/python-kv"))
import br2k_app  # noqa: E402
import kv  # noqa: E402


def decode_ops(p, pos, n):
    """n ops at p[pos:] as [kind, key, field, value, by]: (ops, the position after)."""
    ops = []
    for _ in range(n):
        op = [p[pos]]
        pos += 1
        for _ in range(3):
            (ln,) = struct.unpack_from(">I", p, pos)
            op.append(p[pos + 4 : pos + 4 + ln].decode())
            pos += 4 + ln
        op.append(struct.unpack_from(">q", p, pos)[0])
        pos += 8
        ops.append(op)
    return ops, pos


def req(client, seq, op, payload):
    return json.dumps({"v": 1, "id": {"client": client, "seq": seq}, "op": op,
                       "payload": payload, "ts": 0, "sig": "0x"}).encode()


class Engine:
    """The engine's side of one connection to an application object."""

    def __init__(self, app):
        a, b = socket.socketpair()
        self.conn = br2k_app.Conn(a)
        self.done = []
        self.t = threading.Thread(target=lambda: self.done.append(br2k_app.handle(app, br2k_app.Conn(b))))
        self.t.start()

    def call(self, t, payload=b""):
        self.conn.send(t, payload)
        return self.conn.recv()

    def open(self, d):
        t, p = self.call(br2k_app.OPEN, json.dumps({"protocol": 1, "dir": d}).encode())
        assert t == 0x81, t
        return json.loads(p)

    def apply(self, first, records):
        body = [struct.pack(">I", len(records))]
        for i, r in enumerate(records):
            body.append(struct.pack(">qI", first + i, len(r)) + r)
        t, p = self.call(br2k_app.APPLY, b"".join(body))
        assert t == 0x82, (t, p)
        (n,), pos, out = struct.unpack_from(">I", p, 0), 4, []
        for _ in range(n):
            applied, ln = struct.unpack_from(">BI", p, pos)
            out.append((applied, json.loads(p[pos + 5 : pos + 5 + ln])))
            pos += 5 + ln
        return out

    def snapshot(self):
        t, p = self.call(br2k_app.SNAPSHOT)
        assert t == 0x85
        (lpi,) = struct.unpack(">q", p)
        data = b""
        while True:
            t, p = self.conn.recv()
            if t == br2k_app.END:
                return lpi, data
            assert t == br2k_app.CHUNK
            data += p

    def restore(self, data):
        self.conn.send(br2k_app.RESTORE, struct.pack(">Q", len(data)))
        for i in range(0, len(data), 1000):
            self.conn.send(br2k_app.CHUNK, data[i : i + 1000])
        self.conn.send(br2k_app.END)
        t, p = self.conn.recv()
        assert t == 0x86, (t, p)
        return struct.unpack(">q", p)[0]

    def close(self):
        t, _ = self.call(br2k_app.CLOSE)
        self.t.join(5)
        return t


class TestKV(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def d(self, name):
        p = os.path.join(self.tmp.name, name)
        os.makedirs(p, exist_ok=True)
        return p

    def test_apply_sync_reopen_repeat(self):
        e = Engine(kv.KV())
        self.assertEqual(e.open(self.d("a")),
                         {"protocol": 1, "name": "python-kv", "lpi": -1, "external": True,
                          "republish": True})
        out = e.apply(0, [req("alice", 1, "put", {"key": "k", "value": "v1"}),
                          req("bob", 1, "put", {"key": "k", "value": "x"}),
                          req("alice", 2, "put", {"key": "k", "value": "v2"}),
                          req("alice", 1, "put", {"key": "k", "value": "v1"}),
                          b"not json"])
        self.assertEqual([a for a, _ in out], [1, 0, 1, 0, 0])
        self.assertEqual(out[1][1]["reason"]["code"], "not_owner")
        self.assertEqual(out[2][1]["data"], {"key": "k", "version": 2})
        self.assertTrue(out[3][1]["repeat"])
        self.assertEqual(out[3][1]["offset"], 0)
        self.assertEqual(out[3][1]["repeat_offset"], 3)
        self.assertIsNone(out[4][1]["id"])
        self.assertEqual(e.call(br2k_app.SYNC), (0x83, b""))
        t, dg = e.call(br2k_app.DIGEST)
        self.assertEqual((t, len(dg)), (0x84, 64))
        self.assertEqual(e.close(), 0x87)
        e2 = Engine(kv.KV())
        self.assertEqual(e2.open(self.d("a"))["lpi"], 4)
        self.assertEqual(e2.call(br2k_app.DIGEST)[1], dg)
        e2.close()

    def test_snapshot_restore_same_digest(self):
        e = Engine(kv.KV())
        e.open(self.d("a"))
        e.apply(0, [req("c%d" % (i % 7), i, "put", {"key": "key%d" % i, "value": "v" * 200})
                    for i in range(500)])
        lpi, data = e.snapshot()
        self.assertEqual(lpi, 499)
        self.assertGreater(len(data), 65536)  # more than one chunk
        dg = e.call(br2k_app.DIGEST)[1]
        e.close()
        f = Engine(kv.KV())
        f.open(self.d("b"))
        self.assertEqual(f.restore(data), 499)
        self.assertEqual(f.call(br2k_app.DIGEST)[1], dg)
        f.close()
        g = Engine(kv.KV())  # restore is durable
        self.assertEqual(g.open(self.d("b"))["lpi"], 499)
        g.close()

    def test_error_frame_ends_the_connection(self):
        e = Engine(kv.KV())
        e.open(self.d("a"))
        body = struct.pack(">I", 1) + struct.pack(">qI", 7, 2) + b"{}"  # not LPI + 1
        t, p = e.call(br2k_app.APPLY, body)
        self.assertEqual(t, br2k_app.ERROR)
        self.assertIn("record 7 after LPI -1", p.decode())
        e.t.join(5)
        self.assertEqual(e.done, [False])

    def external(self, e, epoch, items):
        body = [struct.pack(">qI", epoch, len(items))]
        for off, res in items:
            r = res.encode()
            body.append(struct.pack(">qI", off, len(r)) + r)
        t, p = e.call(br2k_app.EXTERNAL, b"".join(body))
        if t != 0x88:
            return t, p
        (n,), pos, out = struct.unpack_from(">I", p, 0), 4, []
        for _ in range(n):
            (k,) = struct.unpack_from(">I", p, pos)
            ops, pos = decode_ops(p, pos + 4, k)
            out.append(ops)
        self.assertEqual(pos, len(p))
        return t, out

    def test_external_ops_from_results(self):
        e = Engine(kv.KV())
        e.open(self.d("a"))
        out = e.apply(0, [req("alice", 1, "put", {"key": "k", "value": "v1"}),
                          req("bob", 1, "put", {"key": "k", "value": "x"}),
                          req("alice", 2, "delete", {"key": "k"}),
                          req("alice", 1, "put", {"key": "k", "value": "v1"})])
        t, ops = self.external(e, 9, [(i, json.dumps(r)) for i, (_, r) in enumerate(out)])
        self.assertEqual(t, 0x88)
        self.assertEqual(ops, [[[3, "kv-version", "k", "1", 0], [5, "puts", "", "", 1]],
                               [],  # rejected
                               [[4, "kv-version", "k", "", 0]],
                               []])  # a repeat
        e.close()

    def test_external_bad_op_is_an_error(self):
        app = kv.KV()
        app.external = lambda epoch, off, res: [{"op": "lpush", "key": "x"}]
        e = Engine(app)
        e.open(self.d("a"))
        t, p = self.external(e, 1, [(0, "{}")])
        self.assertEqual(t, br2k_app.ERROR)
        self.assertIn("offset 0: unknown op 'lpush'", p.decode())

    def test_bad_protocol_version(self):
        e = Engine(kv.KV())
        t, p = e.call(br2k_app.OPEN, json.dumps({"protocol": 2, "dir": self.d("a")}).encode())
        self.assertEqual(t, br2k_app.ERROR)
        self.assertIn("protocol 2", p.decode())

    def republish(self, e, epoch):
        t, p = e.call(br2k_app.REPUBLISH, struct.pack(">q", epoch))
        if t != 0x89:
            return t, p
        lpi, n = struct.unpack_from(">qI", p, 0)
        ops, pos = decode_ops(p, 12, n)
        self.assertEqual(pos, len(p))
        return t, (lpi, ops)

    def test_republish_whole_view_from_state(self):
        app = kv.KV()
        seen = []
        orig = app.republish
        app.republish = lambda epoch: seen.append(epoch) or orig(epoch)
        e = Engine(app)
        e.open(self.d("a"))
        e.apply(0, [req("alice", 1, "put", {"key": "k", "value": "v1"}),
                    req("bob", 1, "put", {"key": "b", "value": "x"}),
                    req("alice", 2, "put", {"key": "k", "value": "v2"}),
                    req("bob", 2, "put", {"key": "k", "value": "no"}),  # rejected
                    req("alice", 1, "put", {"key": "k", "value": "v1"})])  # a repeat
        t, p = e.call(br2k_app.REPUBLISH, struct.pack(">q", 12))
        self.assertEqual(t, 0x89, p)
        self.assertEqual(seen, [12])
        # Byte for byte: i64 lpi 4, u32 3 ops, HSET kv-version b 1.
        self.assertEqual(p[:13].hex(), "0000000000000004" "00000003" "03")
        self.assertEqual(p[13:].hex(),
                         "0000000a" + b"kv-version".hex() + "00000001" + b"b".hex()
                         + "00000001" + b"1".hex() + "00" * 8
                         + "03" + "0000000a" + b"kv-version".hex() + "00000001" + b"k".hex()
                         + "00000001" + b"2".hex() + "00" * 8
                         + "01" + "00000004" + b"puts".hex() + "00000000"
                         + "00000001" + b"3".hex() + "00" * 8)
        self.assertEqual(self.republish(e, 13),
                         (0x89, (4, [[3, "kv-version", "b", "1", 0], [3, "kv-version", "k", "2", 0],
                                     [1, "puts", "", "3", 0]])))
        self.assertEqual(e.call(br2k_app.DIGEST)[0], 0x84)  # served on
        self.assertEqual(e.close(), 0x87)

    def test_republish_empty_state(self):
        e = Engine(kv.KV())
        e.open(self.d("a"))
        t, p = e.call(br2k_app.REPUBLISH, struct.pack(">q", 1))
        self.assertEqual((t, p.hex()), (0x89, "ffffffffffffffff" "00000000"))
        e.close()

    def test_republish_only_when_defined(self):
        class NoRepublish(kv.KV):
            republish = None

        class NoExternal:
            name = "plain"

            def open(self, d):
                return -1

            def republish(self, epoch):
                return -1, []

        for app, want in ((NoRepublish(), {"protocol": 1, "name": "python-kv", "lpi": -1,
                                           "external": True}),
                          (NoExternal(), {"protocol": 1, "name": "plain", "lpi": -1})):
            e = Engine(app)
            self.assertEqual(e.open(self.d("a")), want)
            t, p = e.call(br2k_app.REPUBLISH, struct.pack(">q", 1))
            self.assertEqual(t, br2k_app.ERROR)
            self.assertIn("Republish to an application with no republish", p.decode())
            e.t.join(5)
            self.assertEqual(e.done, [False])

    def test_republish_bad_answer_is_an_error(self):
        cases = [
            ((0, [{"op": "hset", "key": "a", "field": "f", "value": "1"}, {"op": "lpush", "key": "x"}]),
             "republish: op 1: unknown op 'lpush'"),
            ((0, [{"op": "set", "value": "1"}]), "republish: op 0: set without a key"),
            ((0, [{"op": "hdel", "key": "h"}]), "republish: op 0: hdel without a field"),
            ((0, [{"op": "hset", "key": "h", "field": "f"}]), "republish: op 0: hset without a value"),
            ((0, [{"op": "incrby", "key": "n", "by": "1"}]),
             "republish: op 0: incrby without an integer 'by'"),
            (("0", []), "republish: lpi '0' is not an integer >= -1"),
            ((0, 5), "republish: ops is not a list of ops"),
            (None, "republish: the answer is not (lpi, ops)"),
        ]
        for answer, msg in cases:
            app = kv.KV()
            app.republish = lambda epoch, answer=answer: answer
            e = Engine(app)
            e.open(self.d("a"))
            t, p = self.republish(e, 1)
            self.assertEqual(t, br2k_app.ERROR, msg)
            self.assertIn(msg, p.decode())
            e.t.join(5)
        e = Engine(kv.KV())
        e.open(self.d("a"))
        t, p = e.call(br2k_app.REPUBLISH, b"\0" * 4)
        self.assertEqual(t, br2k_app.ERROR)
        self.assertIn("republish: a payload of 4 bytes, not 8", p.decode())


def redis_run(db, ops):
    """Redis, simulated: strings and hashes, as the worker's ops leave them."""
    for o in ops:
        if o["op"] == "set":
            db[o["key"]] = str(o["value"])
        elif o["op"] == "del":
            db.pop(o["key"], None)
        elif o["op"] == "incrby":
            db[o["key"]] = str(int(db.get(o["key"], "0")) + o["by"])
        elif o["op"] == "hset":
            db.setdefault(o["key"], {})[o["field"]] = str(o["value"])
        elif o["op"] == "hdel":
            h = db.get(o["key"])
            if h is not None:
                h.pop(o["field"], None)
                if not h:
                    del db[o["key"]]
        else:
            raise ValueError(o["op"])


class TestKVRepublish(unittest.TestCase):
    """python-kv: republish's view equals external() of every result."""

    def test_view_equals_external_of_every_result(self):
        with tempfile.TemporaryDirectory() as d:
            app = kv.KV()
            app.open(d)
            recs = [req("alice", 1, "put", {"key": "k", "value": "v1"}),
                    req("alice", 2, "put", {"key": "k", "value": "v2"}),  # put again
                    req("bob", 1, "put", {"key": "b", "value": "x"}),
                    req("bob", 2, "put", {"key": "k", "value": "no"}),  # rejected: not the owner
                    req("alice", 1, "put", {"key": "k", "value": "v1"}),  # a repeated id
                    req("bob", 3, "delete", {"key": "b"}),
                    req("bob", 4, "delete", {"key": "b"}),  # rejected: no such key
                    req("carol", 1, "put", {"key": "c", "value": "y"}),
                    req("bob", 1, "put", {"key": "z", "value": "z"}),  # a repeated id
                    b"not json"]
            results = [app.apply(i, r)[1] for i, r in enumerate(recs)]
            by_external = {}
            for i, res in enumerate(results):
                redis_run(by_external, app.external(1, i, res))
            self.assertEqual(by_external, {"kv-version": {"k": "2", "c": "1"}, "puts": "4"})
            lpi, ops = app.republish(2)
            self.assertEqual(lpi, len(recs) - 1)
            # A failover lost the last writes and left another key: the
            # engine deletes every ext: key, then runs republish's ops.
            by_republish = {"stale": "x"}
            for i, res in enumerate(results[:2]):
                redis_run(by_republish, app.external(1, i, res))
            self.assertNotEqual(by_republish, by_external)
            by_republish.clear()
            redis_run(by_republish, ops)
            self.assertEqual(by_republish, by_external)
            # Deleted down to nothing, no put left: no keys, as external leaves them.
            empty = kv.KV()
            empty.open(d + "/none")
            self.assertEqual(empty.republish(1), (-1, []))


if __name__ == "__main__":
    unittest.main()
