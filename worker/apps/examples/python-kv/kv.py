#!/usr/bin/env python3
"""python-kv - a client-keyed key-value registry on BR2K (Python SDK example).

Requests (schemas/request.schema.json), op and payload:
    put     {"key": K, "value": V}  create or replace K; a key belongs to the
                                    client that created it
    delete  {"key": K}              remove K (its owner only)
A key is 1 to 128 characters, a value a string of at most 4096. Anything
else is a rejected result. State: <dir>/kv.json, the whole state and its
LPI in one file replaced atomically on sync. The leader's external effect
keeps a public index in Redis (br2k:{svc}:ext:kv-version, key -> version)
and a count of the puts (ext:puts), each written once per request, and
rebuilt whole from the state by republish after a Redis failover. Run it
with
    br2k-worker --app "exec:python3 worker/apps/examples/python-kv/kv.py" ...
"""
import hashlib
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../sdk/python"))
import br2k_app  # noqa: E402


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class KV:
    name = "python-kv"

    def open(self, d):
        self.path = os.path.join(d, "kv.json")
        self.state = {"lpi": -1, "kv": {}, "seen": {}, "applied": 0, "rejected": 0}
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                self.state = json.loads(f.read())
        return self.state["lpi"]

    def reject(self, rid, off, op, code, text):
        return {"v": 1, "id": rid, "offset": off, "op": op, "status": "rejected",
                "repeat": False, "reason": {"code": code, "text": text}}

    def run(self, req, rid, off):
        op, p, client = req["op"], req["payload"], req["id"]["client"]
        key = p.get("key")
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            return False, self.reject(rid, off, op, "bad_payload", "key must be 1 to 128 characters")
        kv, cur = self.state["kv"], self.state["kv"].get(key)
        if cur is not None and cur["owner"] != client:
            return False, self.reject(rid, off, op, "not_owner", "key belongs to another client")
        if op == "put":
            v = p.get("value")
            if not isinstance(v, str) or len(v) > 4096:
                return False, self.reject(rid, off, op, "bad_payload", "value must be a string")
            ver = cur["version"] + 1 if cur else 1
            kv[key] = {"owner": client, "value": v, "version": ver}
            data = {"key": key, "version": ver}
        elif op == "delete":
            if cur is None:
                return False, self.reject(rid, off, op, "unknown_key", "no such key")
            del kv[key]
            data = {"key": key, "deleted": True}
        else:
            return False, self.reject(rid, off, op, "unknown_op", "unknown operation")
        return True, {"v": 1, "id": rid, "offset": off, "op": op, "status": "ok",
                      "repeat": False, "data": data}

    def apply(self, off, record):
        st = self.state
        if off != st["lpi"] + 1:
            raise RuntimeError("record %d after LPI %d" % (off, st["lpi"]))
        st["lpi"] = off
        try:
            req = json.loads(record)
            rid = "%s:%d" % (req["id"]["client"], req["id"]["seq"])
            if not isinstance(req.get("op"), str) or not isinstance(req.get("payload"), dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            st["rejected"] += 1
            return False, canon(self.reject(None, off, None, "malformed_json", "not a request"))
        first = st["seen"].get(rid)
        if first is not None:  # a repeated request id: the first result again (I5)
            again = dict(first, repeat=True, repeat_offset=off)
            return False, canon(again)
        applied, res = self.run(req, rid, off)
        st["seen"][rid] = res
        st["applied" if applied else "rejected"] += 1
        return applied, canon(res)

    def external(self, epoch, off, result):
        """The leader-only effect of one result (not the state: I5 by the
        worker's fenced write, once per offset)."""
        r = json.loads(result)
        if r.get("status") != "ok" or r.get("repeat"):
            return []
        d = r["data"]
        if r["op"] == "put":
            return [{"op": "hset", "key": "kv-version", "field": d["key"], "value": str(d["version"])},
                    {"op": "incrby", "key": "puts", "by": 1}]
        return [{"op": "hdel", "key": "kv-version", "field": d["key"]}]

    def republish(self, epoch):
        """After a Redis failover lost some of the external writes: the
        whole view, from the state as of its LPI (the engine deletes every
        ext: key, runs these and records the LPI, fenced, in one step).
        kv-version: every key in the state with its version (external HSETs
        it on each ok put and HDELs it on the delete). puts: the state keeps
        no count, but every ok put result that external counted is the
        first result of its request id, kept once in "seen" (a repeat is
        not counted, nor stored again), so the count is derived from there;
        SET to it, and absent while there is none, as external leaves it."""
        st = self.state
        ops = [{"op": "hset", "key": "kv-version", "field": k, "value": str(st["kv"][k]["version"])}
               for k in sorted(st["kv"])]
        puts = sum(1 for r in st["seen"].values() if r["status"] == "ok" and r["op"] == "put")
        if puts:
            ops.append({"op": "set", "key": "puts", "value": str(puts)})
        return st["lpi"], ops

    def sync(self):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(canon(self.state).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def digest(self):
        return hashlib.sha256(canon(self.state).encode()).hexdigest()

    def snapshot(self):
        data = canon(self.state).encode()
        return self.state["lpi"], (data[i : i + 65536] for i in range(0, len(data), 65536))

    def restore(self, chunks):
        self.state = json.loads(b"".join(chunks))
        self.sync()
        return self.state["lpi"]


if __name__ == "__main__":
    br2k_app.serve(KV())
