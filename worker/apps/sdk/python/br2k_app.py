"""br2k_app - serve a BR2K application over the application protocol.

The framing of schemas/app-protocol.md and nothing else. Write a class with
these methods and call serve(app):

    open(dir) -> lpi                  open or create the state in dir
    apply(offset, record) -> (applied, result)
                                      record: bytes; applied: bool; result:
                                      str (JSON text) or None
    sync()                            make state and LPI durable together
    digest() -> str                   64 lowercase hex
    snapshot() -> (lpi, chunks)       chunks: an iterable of bytes
    restore(chunks) -> lpi            chunks: an iterator of bytes; replace
                                      the state durably
    close()                           optional
    name                              attribute, "app" if absent
    external(epoch, offset, result) -> ops
                                      optional: the leader-only external
                                      effect (below)
    republish(epoch) -> (lpi, ops)    optional, with external: the whole
                                      external view from the state (below)

The external effect gets the fencing token `epoch`, the record's offset and
its result (JSON text) and returns the writes to make, as dicts on keys
under the service's br2k:{svc}:ext: namespace, which the worker makes
fenced and once per offset:
    {"op": "set", "key": k, "value": v}      {"op": "del", "key": k}
    {"op": "hset", "key": k, "field": f, "value": v}
    {"op": "hdel", "key": k, "field": f}     {"op": "incrby", "key": k, "by": n}
(or [] after making the effect in your own system, with (epoch, offset) as
the idempotency key). external_many(epoch, items), items a list of
(offset, result), may answer a whole batch. It runs on the leader only,
between other calls: it must not read or change the state.

republish(epoch) rebuilds that view from the state after a Redis failover
lost some of its writes (records whose results are gone with them). It
returns (lpi, ops): lpi the state's current LPI, ops (as above) that build
the WHOLE view that external of every record up to lpi would have left (a
counter: set it to its final value). The worker deletes every ext: key,
runs the ops and records lpi, in one fenced atomic step. It is called on a
leader only, with no apply meanwhile, so it may read the state (not change
it); epoch is the new leader's fencing token. With it defined, the Open
reply says "republish": true and the engine may send Republish (0x09).

An exception in a method answers the engine with an Error frame (the worker
then treats the application as crashed and recovers, I6). Standard library
only; Python 3.8 or later.
"""
import os
import socket
import struct
import sys

__all__ = ["serve", "Conn", "PROTOCOL"]

PROTOCOL = 1
OPEN, APPLY, SYNC, DIGEST, SNAPSHOT, RESTORE, CLOSE, EXTERNAL, REPUBLISH = 1, 2, 3, 4, 5, 6, 7, 8, 9
EXT_KIND = {"set": 1, "del": 2, "hset": 3, "hdel": 4, "incrby": 5}
REPLY, CHUNK, END, ERROR = 0x80, 0x10, 0x11, 0x7F
FRAME_MAX = 256 << 20
CHUNK_SIZE = 1 << 20


class Conn:
    """One connection to the engine: whole frames in and out."""

    def __init__(self, sock):
        self.sock = sock
        self.rbuf = bytearray()

    def _fill(self, n):
        while len(self.rbuf) < n:
            b = self.sock.recv(max(1 << 16, n - len(self.rbuf)))
            if not b:
                return False
            self.rbuf += b
        return True

    def recv(self):
        """(type, payload) of the next frame, or None at the end."""
        if not self._fill(5):
            return None
        (n,) = struct.unpack_from(">I", self.rbuf, 0)
        if n < 1 or n > FRAME_MAX:
            raise ValueError("bad frame length %d" % n)
        if not self._fill(4 + n):
            return None
        t = self.rbuf[4]
        payload = bytes(self.rbuf[5 : 4 + n])
        del self.rbuf[: 4 + n]
        return t, payload

    def send(self, t, *parts):
        n = 1 + sum(len(p) for p in parts)
        self.sock.sendall(b"".join((struct.pack(">IB", n, t),) + parts))


def _apply(app, payload):
    (count,) = struct.unpack_from(">I", payload, 0)
    pos, out = 4, [struct.pack(">I", count)]
    mv = memoryview(payload)
    for _ in range(count):
        off, ln = struct.unpack_from(">qI", payload, pos)
        pos += 12
        applied, result = app.apply(off, bytes(mv[pos : pos + ln]))
        pos += ln
        r = b"" if result is None else (result.encode() if isinstance(result, str) else result)
        out.append(struct.pack(">BI", 1 if applied else 0, len(r)))
        out.append(r)
    return b"".join(out)


def _encode_ops(out, ops, where):
    """One op list, as the External-reply and the Republish-reply both carry
    it: u32 nops, then per op u8 kind, u32 len + key, u32 len + field, u32
    len + value, i64 by (appended to `out`). where(j) names op j in an error
    ("external: offset 12")."""
    out.append(struct.pack(">I", len(ops)))
    for j, op in enumerate(ops):
        kind = EXT_KIND.get(op.get("op")) if isinstance(op, dict) else None
        if kind is None:
            raise ValueError("%s: unknown op %r (set, del, hset, hdel, incrby)"
                             % (where(j), op.get("op") if isinstance(op, dict) else op))
        key = op.get("key")
        if not isinstance(key, str) or not key:
            raise ValueError("%s: %s without a key" % (where(j), op["op"]))
        if kind in (3, 4) and not isinstance(op.get("field"), str):
            raise ValueError("%s: %s without a field" % (where(j), op["op"]))
        if kind in (1, 3) and op.get("value") is None:
            raise ValueError("%s: %s without a value" % (where(j), op["op"]))
        by = op.get("by", 0) if kind == 5 else 0
        if not isinstance(by, int):
            raise ValueError("%s: incrby without an integer 'by'" % where(j))
        out.append(struct.pack(">B", kind))
        for s in (key, op.get("field") or "", "" if op.get("value") is None else str(op["value"])):
            b = s.encode()
            out.append(struct.pack(">I", len(b)))
            out.append(b)
        out.append(struct.pack(">q", by))


def _external(app, payload):
    epoch, count = struct.unpack_from(">qI", payload, 0)
    pos, items = 12, []
    for _ in range(count):
        off, ln = struct.unpack_from(">qI", payload, pos)
        items.append((off, payload[pos + 12 : pos + 12 + ln].decode()))
        pos += 12 + ln
    if hasattr(app, "external_many"):
        answers = list(app.external_many(epoch, items))
    else:
        answers = [app.external(epoch, off, res) for off, res in items]
    if len(answers) != count:
        raise ValueError("external: %d answers for %d records" % (len(answers), count))
    out = [struct.pack(">I", count)]
    for (off, _), ops in zip(items, answers):
        _encode_ops(out, list(ops or []), lambda j, off=off: "external: offset %d" % off)
    return b"".join(out)


def _republish(app, payload):
    """A Republish payload in (i64 epoch), the Republish-reply out (i64 lpi,
    u32 nops, nops x op): the whole external view as of the state's LPI."""
    if len(payload) != 8:
        raise ValueError("republish: a payload of %d bytes, not 8 (i64 epoch)" % len(payload))
    (epoch,) = struct.unpack(">q", payload)
    answer = app.republish(epoch)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ValueError("republish: the answer is not (lpi, ops)")
    lpi, ops = answer
    if not isinstance(lpi, int) or isinstance(lpi, bool) or lpi < -1:
        raise ValueError("republish: lpi %r is not an integer >= -1" % (lpi,))
    try:
        if isinstance(ops, (str, bytes, dict)):
            raise TypeError
        ops = list(ops)
    except TypeError:
        raise ValueError("republish: ops is not a list of ops") from None
    out = [struct.pack(">q", lpi)]
    _encode_ops(out, ops, lambda j: "republish: op %d" % j)
    n = 1 + sum(len(b) for b in out)
    if n > FRAME_MAX:
        raise ValueError("republish: a view of %d bytes, more than a frame's %d" % (n, FRAME_MAX))
    return b"".join(out)


def _chunks_in(conn):
    while True:
        f = conn.recv()
        if f is None:
            raise EOFError("the engine closed the connection during restore")
        if f[0] == END:
            return
        if f[0] != CHUNK:
            raise ValueError("frame 0x%02x in a restore stream" % f[0])
        yield f[1]


def _has_external(app):
    return hasattr(app, "external") or hasattr(app, "external_many")


def _has_republish(app):
    return callable(getattr(app, "republish", None))


def handle(app, conn):
    """Serve one connection until Close or EOF. True after a Close."""
    import json

    while True:
        f = conn.recv()
        if f is None:
            return False
        t, payload = f
        try:
            if t == OPEN:
                req = json.loads(payload)
                if req.get("protocol") != PROTOCOL:
                    raise ValueError("protocol %r, not %d" % (req.get("protocol"), PROTOCOL))
                lpi = app.open(req["dir"])
                rep = {"protocol": PROTOCOL, "name": getattr(app, "name", "app"), "lpi": int(lpi)}
                if _has_external(app):
                    rep["external"] = True
                    if _has_republish(app):
                        rep["republish"] = True
                conn.send(OPEN | REPLY, json.dumps(rep).encode())
            elif t == APPLY:
                conn.send(APPLY | REPLY, _apply(app, payload))
            elif t == SYNC:
                app.sync()
                conn.send(SYNC | REPLY)
            elif t == DIGEST:
                conn.send(DIGEST | REPLY, app.digest().encode())
            elif t == SNAPSHOT:
                lpi, chunks = app.snapshot()
                conn.send(SNAPSHOT | REPLY, struct.pack(">q", lpi))
                for c in chunks:
                    for i in range(0, len(c), CHUNK_SIZE):
                        conn.send(CHUNK, c[i : i + CHUNK_SIZE])
                conn.send(END)
            elif t == RESTORE:
                it = _chunks_in(conn)
                lpi = app.restore(it)
                for _ in it:  # what the application did not read
                    pass
                conn.send(RESTORE | REPLY, struct.pack(">q", lpi))
            elif t == EXTERNAL:
                if not _has_external(app):
                    raise ValueError("External to an application with no external effect")
                conn.send(EXTERNAL | REPLY, _external(app, payload))
            elif t == REPUBLISH:
                if not (_has_external(app) and _has_republish(app)):
                    raise ValueError("Republish to an application with no republish")
                conn.send(REPUBLISH | REPLY, _republish(app, payload))
            elif t == CLOSE:
                if hasattr(app, "close"):
                    app.close()
                conn.send(CLOSE | REPLY)
                return True
            else:
                raise ValueError("unknown request type 0x%02x" % t)
        except (EOFError, BrokenPipeError, ConnectionError):
            raise
        except Exception as e:  # the application cannot go on: say why
            msg = ("%s: %s" % (type(e).__name__, e)).replace("\n", " ")
            print("br2k_app: %s" % msg, file=sys.stderr)
            conn.send(ERROR, msg.encode()[:1000])
            return False


def serve(app, fd=None, listen=None):
    """Serve `app`: on fd (default $BR2K_APP_FD, set by --app exec:...) or,
    when there is none, listening on the Unix socket `listen` (default
    $BR2K_APP_LISTEN; --app unix:PATH), one connection at a time."""
    if fd is None and os.environ.get("BR2K_APP_FD"):
        fd = int(os.environ["BR2K_APP_FD"])
    if fd is not None:
        sock = socket.socket(fileno=fd)
        try:
            handle(app, Conn(sock))
        except (EOFError, ConnectionError):
            pass
        return
    path = listen or os.environ.get("BR2K_APP_LISTEN")
    if not path:
        raise SystemExit("br2k_app: no BR2K_APP_FD (run me with br2k-worker --app exec:...) "
                         "and no socket to listen on (BR2K_APP_LISTEN)")
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    while True:
        c, _ = srv.accept()
        try:
            handle(app, Conn(c))
        except (EOFError, ConnectionError):
            pass
        finally:
            c.close()
