'use strict';
// Tests of the Node SDK and its example (node-ledger): the test plays the
// engine on one end of a socket pair (a Unix socket), the SDK serves the
// other. Run: node --test test/ (from worker/apps/sdk/node).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { handle, FrameReader, frame } = require('..');
const { Ledger } = require('../../../examples/node-ledger/ledger.js');

const req = (client, seq, op, payload) =>
  Buffer.from(JSON.stringify({ v: 1, id: { client, seq }, op, payload, ts: 0, sig: '0x' }));

// Connect an engine to `app` over a fresh Unix socket.
async function engine(app, dir) {
  const sockPath = path.join(dir, `s${Math.random().toString(16).slice(2)}.sock`);
  let served;
  const server = net.createServer((s) => { served = handle(app, s).finally(() => s.destroy()); });
  await new Promise((r) => server.listen(sockPath, r));
  const c = net.connect(sockPath);
  await new Promise((r) => c.on('connect', r));
  const rd = new FrameReader(c);
  const e = {
    send: (t, ...p) => c.write(frame(t, ...p)),
    next: () => rd.next(),
    async call(t, ...p) { this.send(t, ...p); return rd.next(); },
    async open(d) {
      const f = await this.call(1, Buffer.from(JSON.stringify({ protocol: 1, dir: d })));
      assert.strictEqual(f.type, 0x81);
      return JSON.parse(f.payload);
    },
    async apply(first, recs) {
      const parts = [Buffer.alloc(4)];
      parts[0].writeUInt32BE(recs.length);
      recs.forEach((r, i) => {
        const h = Buffer.alloc(12);
        h.writeBigInt64BE(BigInt(first + i));
        h.writeUInt32BE(r.length, 8);
        parts.push(h, r);
      });
      const f = await this.call(2, Buffer.concat(parts));
      assert.strictEqual(f.type, 0x82, f.payload.toString());
      const p = f.payload, out = [];
      let pos = 4;
      for (let i = 0; i < p.readUInt32BE(0); i++) {
        const len = p.readUInt32BE(pos + 1);
        out.push([p[pos], JSON.parse(p.subarray(pos + 5, pos + 5 + len))]);
        pos += 5 + len;
      }
      return out;
    },
    async digest() { return (await this.call(4)).payload.toString(); },
    async end() { c.destroy(); server.close(); await served; },
    async close() {
      const f = await this.call(7);
      c.destroy();
      server.close();
      await served;
      return f.type;
    },
  };
  return e;
}

function tmpdir() { return fs.mkdtempSync(path.join(os.tmpdir(), 'br2k-node-')); }

test('apply, sync, reopen, repeats', async () => {
  const dir = tmpdir();
  const e = await engine(new Ledger(), dir);
  assert.deepStrictEqual(await e.open(dir),
    { protocol: 1, name: 'node-ledger', lpi: -1, external: true, republish: true });
  const out = await e.apply(0, [
    req('alice', 1, 'mint', { amount: 100 }),
    req('alice', 2, 'transfer', { to: 'bob', amount: 30 }),
    req('bob', 1, 'transfer', { to: 'carol', amount: 31 }),
    req('alice', 1, 'mint', { amount: 100 }),
    Buffer.from('garbage'),
  ]);
  assert.deepStrictEqual(out.map((x) => x[0]), [1, 1, 0, 0, 0]);
  assert.strictEqual(out[2][1].reason.code, 'insufficient_funds');
  assert.strictEqual(out[3][1].repeat, true);
  assert.strictEqual(out[3][1].repeat_offset, 3);
  assert.strictEqual(out[4][1].id, null);
  assert.strictEqual((await e.call(3)).type, 0x83);
  const d = await e.digest();
  assert.match(d, /^[0-9a-f]{64}$/);
  assert.strictEqual(await e.close(), 0x87);
  const e2 = await engine(new Ledger(), dir);
  assert.strictEqual((await e2.open(dir)).lpi, 4);
  assert.strictEqual(await e2.digest(), d);
  await e2.close();
});

test('snapshot streams in chunks; restore gives the same digest', async () => {
  const a = tmpdir(), b = tmpdir();
  const e = await engine(new Ledger(), a);
  await e.open(a);
  const recs = [];
  for (let i = 0; i < 3000; i++) recs.push(req(`client-${i}`, i, 'mint', { amount: 1 + (i % 9) }));
  await e.apply(0, recs);
  const h = await e.call(5);
  assert.strictEqual(h.type, 0x85);
  assert.strictEqual(Number(h.payload.readBigInt64BE(0)), 2999);
  const chunks = [];
  for (;;) {
    const f = await e.next();
    if (f.type === 0x11) break;
    assert.strictEqual(f.type, 0x10);
    chunks.push(f.payload);
  }
  assert.ok(chunks.length > 1);
  const d = await e.digest();
  await e.close();
  const f = await engine(new Ledger(), b);
  await f.open(b);
  const data = Buffer.concat(chunks);
  const size = Buffer.alloc(8);
  size.writeBigUInt64BE(BigInt(data.length));
  f.send(6, size);
  for (let i = 0; i < data.length; i += 5000) f.send(0x10, data.subarray(i, i + 5000));
  const r = await f.call(0x11);
  assert.strictEqual(r.type, 0x86);
  assert.strictEqual(Number(r.payload.readBigInt64BE(0)), 2999);
  assert.strictEqual(await f.digest(), d);
  await f.close();
});

// An External request: epoch, then (offset, result) pairs.
function externalReq(epoch, items) {
  const parts = [Buffer.alloc(12)];
  parts[0].writeBigInt64BE(BigInt(epoch));
  parts[0].writeUInt32BE(items.length, 8);
  for (const [off, res] of items) {
    const r = Buffer.from(res), h = Buffer.alloc(12);
    h.writeBigInt64BE(BigInt(off));
    h.writeUInt32BE(r.length, 8);
    parts.push(h, r);
  }
  return Buffer.concat(parts);
}

// n ops at p[pos..] as [kind, key, field, value, by]: [ops, the position after].
function decodeOps(p, pos, n) {
  const ops = [];
  for (let j = 0; j < n; j++) {
    const op = [p[pos]];
    pos += 1;
    for (let f = 0; f < 3; f++) {
      const len = p.readUInt32BE(pos);
      op.push(p.toString('utf8', pos + 4, pos + 4 + len));
      pos += 4 + len;
    }
    op.push(Number(p.readBigInt64BE(pos)));
    pos += 8;
    ops.push(op);
  }
  return [ops, pos];
}

// An External reply: per record, its ops.
function externalOps(p) {
  const out = [];
  let pos = 4;
  for (let i = 0; i < p.readUInt32BE(0); i++) {
    const [ops, next] = decodeOps(p, pos + 4, p.readUInt32BE(pos));
    pos = next;
    out.push(ops);
  }
  assert.strictEqual(pos, p.length);
  return out;
}

test('external: the ledger answers its writes from the results', async () => {
  const dir = tmpdir();
  const e = await engine(new Ledger(), dir);
  await e.open(dir);
  const out = await e.apply(0, [
    req('alice', 1, 'mint', { amount: 100 }),
    req('alice', 2, 'transfer', { to: 'bob', amount: 30 }),
    req('bob', 1, 'transfer', { to: 'carol', amount: 31 }),
    req('alice', 1, 'mint', { amount: 100 }),
  ]);
  const f = await e.call(8, externalReq(7, out.map((x, i) => [i, JSON.stringify(x[1])])));
  assert.strictEqual(f.type, 0x88, f.payload.toString());
  assert.deepStrictEqual(externalOps(f.payload), [
    [[3, 'balances', 'alice', '100', 0], [5, 'supply', '', '', 100]],
    [[3, 'balances', 'alice', '70', 0], [3, 'balances', 'bob', '30', 0]],
    [], // rejected
    [], // a repeat
  ]);
  await e.end();
});

test('external: a bad op is an Error frame naming it', async () => {
  const dir = tmpdir();
  const app = new Ledger();
  app.external = () => [{ op: 'lpush', key: 'x' }];
  const e = await engine(app, dir);
  await e.open(dir);
  const f = await e.call(8, externalReq(1, [[0, '{}']]));
  assert.strictEqual(f.type, 0x7f);
  assert.match(f.payload.toString(), /offset 0: unknown op "lpush"/);
  await e.end();
});

test('an application error is an Error frame', async () => {
  const dir = tmpdir();
  const e = await engine(new Ledger(), dir);
  await e.open(dir);
  const body = Buffer.alloc(4 + 12 + 2);
  body.writeUInt32BE(1);
  body.writeBigInt64BE(7n, 4); // not LPI + 1
  body.writeUInt32BE(2, 12);
  body.write('{}', 16);
  const f = await e.call(2, body);
  assert.strictEqual(f.type, 0x7f);
  assert.match(f.payload.toString(), /record 7 after LPI -1/);
  await e.end();
});

// A Republish request: the new leader's epoch.
function republishReq(epoch) { const b = Buffer.alloc(8); b.writeBigInt64BE(BigInt(epoch)); return b; }

// A Republish reply: {lpi, ops}.
function republishView(p) {
  const lpi = Number(p.readBigInt64BE(0));
  const [ops, pos] = decodeOps(p, 12, p.readUInt32BE(8));
  assert.strictEqual(pos, p.length);
  return { lpi, ops };
}

test('republish: the ledger answers its whole view from the state', async () => {
  const dir = tmpdir();
  let epochSeen;
  const app = new Ledger();
  const orig = app.republish.bind(app);
  app.republish = (epoch) => { epochSeen = epoch; return orig(epoch); };
  const e = await engine(app, dir);
  assert.strictEqual((await e.open(dir)).republish, true);
  await e.apply(0, [
    req('carol', 1, 'mint', { amount: 5 }),
    req('alice', 1, 'mint', { amount: 100 }),
    req('alice', 2, 'transfer', { to: 'bob', amount: 30 }),
    req('bob', 1, 'transfer', { to: 'carol', amount: 31 }), // rejected
    req('alice', 1, 'mint', { amount: 100 }), // a repeat
  ]);
  const f = await e.call(9, republishReq(12));
  assert.strictEqual(f.type, 0x89, f.payload.toString());
  assert.strictEqual(epochSeen, 12n);
  // Byte for byte: i64 lpi 4, u32 4 ops, the first HSET balances alice 70.
  assert.strictEqual(f.payload.subarray(0, 13).toString('hex'), '0000000000000004' + '00000004' + '03');
  assert.deepStrictEqual(republishView(f.payload), {
    lpi: 4,
    ops: [
      [3, 'balances', 'alice', '70', 0],
      [3, 'balances', 'bob', '30', 0],
      [3, 'balances', 'carol', '5', 0],
      [1, 'supply', '', '105', 0],
    ],
  });
  // Calls go on after it: the connection is still served.
  assert.match(await e.digest(), /^[0-9a-f]{64}$/);
  assert.strictEqual(await e.close(), 0x87);
});

test('republish: an empty state is an empty view at LPI -1; a Promise is awaited', async () => {
  const dir = tmpdir();
  const app = new Ledger();
  const orig = app.republish.bind(app);
  app.republish = async (epoch) => orig(epoch);
  const e = await engine(app, dir);
  await e.open(dir);
  const f = await e.call(9, republishReq(1));
  assert.strictEqual(f.type, 0x89, f.payload.toString());
  assert.strictEqual(f.payload.toString('hex'), 'ffffffffffffffff' + '00000000');
  await e.end();
});

test('republish: the Open reply says so only with republish and an external effect', async () => {
  const dir = tmpdir();
  const noRepublish = new Ledger();
  noRepublish.republish = undefined;
  let e = await engine(noRepublish, dir);
  assert.deepStrictEqual(await e.open(dir), { protocol: 1, name: 'node-ledger', lpi: -1, external: true });
  // and a Republish to it is an Error frame
  let f = await e.call(9, republishReq(1));
  assert.strictEqual(f.type, 0x7f);
  assert.match(f.payload.toString(), /Republish to an application with no republish/);
  await e.end();
  const noExternal = new Ledger();
  noExternal.external = undefined;
  e = await engine(noExternal, dir);
  assert.deepStrictEqual(await e.open(dir), { protocol: 1, name: 'node-ledger', lpi: -1 });
  f = await e.call(9, republishReq(1));
  assert.strictEqual(f.type, 0x7f);
  await e.end();
});

test('republish: a bad op or answer is an Error frame naming it', async () => {
  const cases = [
    [{ lpi: 0, ops: [{ op: 'hset', key: 'a', field: 'f', value: '1' }, { op: 'lpush', key: 'x' }] },
      /republish: op 1: unknown op "lpush"/],
    [{ lpi: 0, ops: [{ op: 'set', value: '1' }] }, /republish: op 0: set without a key/],
    [{ lpi: 0, ops: [{ op: 'hdel', key: 'h' }] }, /republish: op 0: hdel without a field/],
    [{ lpi: 0, ops: [{ op: 'hset', key: 'h', field: 'f' }] }, /republish: op 0: hset without a value/],
    [{ lpi: 0, ops: [{ op: 'incrby', key: 'n', by: 1.5 }] },
      /republish: op 0: incrby without an integer 'by'/],
    [{ lpi: 'x', ops: [] }, /republish: lpi "x" is not an integer >= -1/],
    [{ lpi: 0, ops: {} }, /republish: ops is not an array of ops/],
    [null, /republish: the answer is not \{lpi, ops\}/],
  ];
  for (const [answer, re] of cases) {
    const dir = tmpdir();
    const app = new Ledger();
    app.republish = () => answer;
    const e = await engine(app, dir);
    await e.open(dir);
    const f = await e.call(9, republishReq(1));
    assert.strictEqual(f.type, 0x7f, re.source);
    assert.match(f.payload.toString(), re);
    await e.end();
  }
  const dir = tmpdir();
  const e = await engine(new Ledger(), dir);
  await e.open(dir);
  const f = await e.call(9, Buffer.alloc(4));
  assert.strictEqual(f.type, 0x7f);
  assert.match(f.payload.toString(), /republish: a payload of 4 bytes, not 8/);
  await e.end();
});

// Redis, simulated: strings and hashes, as the worker's ops leave them.
function redisRun(db, ops) {
  for (const o of ops) {
    if (o.op === 'set') db.set(o.key, String(o.value));
    else if (o.op === 'del') db.delete(o.key);
    else if (o.op === 'incrby') db.set(o.key, String(BigInt(db.get(o.key) || 0) + BigInt(o.by)));
    else if (o.op === 'hset') {
      if (!db.has(o.key)) db.set(o.key, new Map());
      db.get(o.key).set(o.field, String(o.value));
    } else if (o.op === 'hdel') {
      const h = db.get(o.key);
      if (h) { h.delete(o.field); if (h.size === 0) db.delete(o.key); }
    } else throw new Error(`op ${o.op}`);
  }
}
const redisDump = (db) => [...db.keys()].sort().map((k) => {
  const v = db.get(k);
  return [k, typeof v === 'string' ? v : [...v.entries()].sort()];
});

test('republish (node-ledger): the view equals external() of every result', () => {
  const app = new Ledger();
  app.open(tmpdir());
  const recs = [
    req('alice', 1, 'mint', { amount: 100 }),
    req('alice', 2, 'transfer', { to: 'bob', amount: 30 }),
    req('bob', 1, 'transfer', { to: 'carol', amount: 31 }), // rejected: too low
    req('alice', 1, 'mint', { amount: 100 }), // a repeated id
    req('bob', 2, 'transfer', { to: 'carol', amount: 30 }), // bob down to 0
    req('dave', 1, 'burn', { amount: 1 }), // rejected: unknown op
    req('carol', 1, 'mint', { amount: 7 }),
    Buffer.from('garbage'),
  ];
  const results = recs.map((r, i) => app.apply(i, r).result);
  const byExternal = new Map();
  results.forEach((res, i) => redisRun(byExternal, app.external(1, i, res)));
  // A failover lost the last writes and left another key: the engine
  // deletes every ext: key, then runs republish's ops.
  const view = app.republish(2);
  assert.strictEqual(view.lpi, recs.length - 1);
  const byRepublish = new Map();
  results.slice(0, 2).forEach((res, i) => redisRun(byRepublish, app.external(1, i, res)));
  byRepublish.set('stale', 'x');
  assert.notDeepStrictEqual(redisDump(byRepublish), redisDump(byExternal));
  byRepublish.clear();
  redisRun(byRepublish, view.ops);
  assert.deepStrictEqual(redisDump(byRepublish), redisDump(byExternal));
  assert.deepStrictEqual(redisDump(byExternal), [
    ['balances', [['alice', '70'], ['bob', '0'], ['carol', '37']]],
    ['supply', '107'],
  ]);
  // No mint yet: no supply key, as external leaves it.
  const empty = new Ledger();
  empty.open(tmpdir());
  empty.apply(0, req('bob', 1, 'transfer', { to: 'carol', amount: 1 }));
  assert.deepStrictEqual(empty.republish(1), { lpi: 0, ops: [] });
});
