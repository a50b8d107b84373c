'use strict';
// br2k-app - serve a BR2K application over the application protocol
// (schemas/app-protocol.md): the framing and nothing else. No dependencies.
//
//   const { serve } = require('br2k-app');
//   serve({
//     name: 'ledger',
//     open(dir) { return lpi; },                 // open or create the state
//     apply(offset, record) { return { applied, result }; }, // record: Buffer,
//                                                // result: JSON text or null
//     sync() {},                                 // state and LPI durable together
//     digest() { return hex64; },
//     snapshot() { return { lpi, chunks }; },    // chunks: iterable of Buffers
//     restore(chunks) { return lpi; },           // chunks: async iterable
//     close() {},                                // optional
//     external(epoch, offset, result) { return ops; }, // optional: see below
//     republish(epoch) { return { lpi, ops }; },  // optional: see below
//   });
//
// The leader-only external effect (optional): `external` gets the fencing
// token `epoch`, the record's offset and its result (JSON text) and returns
// the writes to make, as ops on keys under the service's br2k:{svc}:ext:
// namespace, which the worker makes fenced and once per offset:
//   {op:'set', key, value}  {op:'del', key}  {op:'hset', key, field, value}
//   {op:'hdel', key, field} {op:'incrby', key, by}
// (or [] after making the effect in your own system, with (epoch, offset)
// as the idempotency key). `externalMany(epoch, items)`, items
// [{offset, result}], may answer for a whole batch at once. It runs on the
// leader only, between other calls: it must not read or change the state.
//
// `republish(epoch)` (optional, with `external`) rebuilds that view from
// the state after a Redis failover lost some of its writes (records whose
// results are gone with them). It returns { lpi, ops }: lpi the state's
// current LPI, ops (as above) that build the WHOLE view `external` of every
// record up to lpi would have left (a counter: set it to its final value).
// The worker deletes every ext: key, runs the ops and records lpi, in one
// fenced atomic step. It is called on a leader only, with no apply meanwhile,
// so it may read the state (not change it). `epoch` (a BigInt, as for
// external) is the new leader's fencing token. With it defined, the Open
// reply says "republish": true and the engine may send Republish (0x09).
//
// Any method may return a Promise. A thrown error answers the engine with an
// Error frame: the worker treats the application as crashed and recovers (I6).
const net = require('net');
const fs = require('fs');

const PROTOCOL = 1;
const T = { OPEN: 1, APPLY: 2, SYNC: 3, DIGEST: 4, SNAPSHOT: 5, RESTORE: 6, CLOSE: 7, EXTERNAL: 8, REPUBLISH: 9 };
const EXT_KIND = { set: 1, del: 2, hset: 3, hdel: 4, incrby: 5 };
const REPLY = 0x80, CHUNK = 0x10, END = 0x11, ERROR = 0x7f;
const FRAME_MAX = 256 << 20;
const CHUNK_SIZE = 1 << 20;

// Frames in, from a stream: `await next()` gives {type, payload} or null at EOF.
class FrameReader {
  constructor(stream) {
    this.bufs = [];
    this.have = 0;
    this.ended = false;
    this.waiter = null;
    stream.on('data', (b) => { this.bufs.push(b); this.have += b.length; this.wake(); });
    stream.on('end', () => { this.ended = true; this.wake(); });
    stream.on('error', () => { this.ended = true; this.wake(); });
  }
  wake() { const w = this.waiter; this.waiter = null; if (w) w(); }
  take(n) {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const b = this.bufs[0];
      const k = Math.min(b.length, n - off);
      b.copy(out, off, 0, k);
      off += k;
      if (k === b.length) this.bufs.shift(); else this.bufs[0] = b.subarray(k);
    }
    this.have -= n;
    return out;
  }
  peek4() {
    if (this.bufs[0].length < 4) { const b = Buffer.concat(this.bufs); this.bufs = [b]; }
    return this.bufs[0].readUInt32BE(0);
  }
  async next() {
    for (;;) {
      if (this.have >= 5) {
        const n = this.peek4();
        if (n < 1 || n > FRAME_MAX) throw new Error(`bad frame length ${n}`);
        if (this.have >= 4 + n) {
          const f = this.take(4 + n);
          return { type: f[4], payload: f.subarray(5) };
        }
      }
      if (this.ended) return null;
      await new Promise((r) => { this.waiter = r; });
    }
  }
}

function frame(type, ...parts) {
  const n = 1 + parts.reduce((a, p) => a + p.length, 0);
  const h = Buffer.allocUnsafe(5);
  h.writeUInt32BE(n, 0);
  h[4] = type;
  return Buffer.concat([h, ...parts]);
}

function i64(v) { const b = Buffer.allocUnsafe(8); b.writeBigInt64BE(BigInt(v)); return b; }

// An Apply payload in, the whole Apply-reply frame out (one buffer, grown
// as needed: no per-result allocation).
async function applyBatch(app, p) {
  const count = p.readUInt32BE(0);
  let out = Buffer.allocUnsafe(9 + count * 256), o = 9;
  out.writeUInt32BE(count, 5);
  let pos = 4;
  for (let i = 0; i < count; i++) {
    const off = p.readUInt32BE(pos) * 4294967296 + p.readUInt32BE(pos + 4);
    const len = p.readUInt32BE(pos + 8);
    pos += 12;
    const rec = p.subarray(pos, pos + len);
    pos += len;
    let r = app.apply(off, rec);
    if (r && typeof r.then === 'function') r = await r;
    const res = r.result == null ? '' : r.result;
    const max = 5 + (typeof res === 'string' ? res.length * 3 : res.length);
    if (o + max > out.length) {
      const n = Buffer.allocUnsafe(Math.max(out.length * 2, o + max));
      out.copy(n, 0, 0, o);
      out = n;
    }
    out[o] = r.applied ? 1 : 0;
    const k = typeof res === 'string' ? out.write(res, o + 5, 'utf8') : Buffer.from(res).copy(out, o + 5);
    out.writeUInt32BE(k, o + 1);
    o += 5 + k;
  }
  out.writeUInt32BE(o - 4, 0);
  out[4] = T.APPLY | REPLY;
  return out.subarray(0, o);
}

// One op list out, as the External-reply and the Republish-reply both
// carry it: u32 nops, then per op u8 kind, u32 len + key, u32 len + field,
// u32 len + value, i64 by (pushed onto `parts`). `where(j)` names op j in
// an error ("external: offset 12").
function encodeOps(parts, ops, where) {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(ops.length);
  parts.push(h);
  ops.forEach((op, j) => {
    const kind = op && EXT_KIND[op.op];
    if (!kind) throw new Error(`${where(j)}: unknown op ${JSON.stringify(op && op.op)} (set, del, hset, hdel, incrby)`);
    if (typeof op.key !== 'string' || op.key === '') throw new Error(`${where(j)}: ${op.op} without a key`);
    if ((kind === 3 || kind === 4) && typeof op.field !== 'string') throw new Error(`${where(j)}: ${op.op} without a field`);
    if ((kind === 1 || kind === 3) && op.value == null) throw new Error(`${where(j)}: ${op.op} without a value`);
    if (kind === 5 && !Number.isSafeInteger(op.by)) throw new Error(`${where(j)}: incrby without an integer 'by'`);
    const k = Buffer.from(op.key), f = Buffer.from(op.field || ''), v = Buffer.from(op.value == null ? '' : String(op.value));
    const b = Buffer.alloc(1 + 12 + k.length + f.length + v.length + 8);
    let o = 0;
    b[o++] = kind;
    for (const s of [k, f, v]) { b.writeUInt32BE(s.length, o); s.copy(b, o + 4); o += 4 + s.length; }
    b.writeBigInt64BE(BigInt(kind === 5 ? op.by : 0), o);
    parts.push(b);
  });
}

// An External payload in (i64 epoch, u32 count, count x (i64 offset, u32 len,
// result)), the External-reply frame out (count x (u32 nops, nops x op)).
async function externalBatch(app, p) {
  const epoch = p.readBigInt64BE(0);
  const count = p.readUInt32BE(8);
  const items = [];
  let pos = 12;
  for (let i = 0; i < count; i++) {
    const offset = p.readUInt32BE(pos) * 4294967296 + p.readUInt32BE(pos + 4);
    const len = p.readUInt32BE(pos + 8);
    items.push({ offset, result: p.toString('utf8', pos + 12, pos + 12 + len) });
    pos += 12 + len;
  }
  let answers;
  if (app.externalMany) answers = await app.externalMany(epoch, items);
  else {
    answers = [];
    for (const it of items) answers.push(await app.external(epoch, it.offset, it.result));
  }
  if (!Array.isArray(answers) || answers.length !== count)
    throw new Error(`external: ${Array.isArray(answers) ? answers.length : 'no'} answers for ${count} records`);
  const parts = [Buffer.alloc(4)];
  parts[0].writeUInt32BE(count);
  answers.forEach((ops, i) => {
    ops = ops || [];
    if (!Array.isArray(ops)) throw new Error(`external: the answer for offset ${items[i].offset} is not an array of ops`);
    encodeOps(parts, ops, () => `external: offset ${items[i].offset}`);
  });
  return frame(T.EXTERNAL | REPLY, ...parts);
}

// A Republish payload in (i64 epoch), the Republish-reply frame out (i64
// lpi, u32 nops, nops x op): the whole external view as of the state's LPI.
async function republishView(app, p) {
  if (p.length !== 8) throw new Error(`republish: a payload of ${p.length} bytes, not 8 (i64 epoch)`);
  const r = await app.republish(p.readBigInt64BE(0));
  if (!r || typeof r !== 'object') throw new Error('republish: the answer is not {lpi, ops}');
  const { lpi, ops } = r;
  if (!(Number.isSafeInteger(lpi) || typeof lpi === 'bigint') || lpi < -1)
    throw new Error(`republish: lpi ${JSON.stringify(typeof lpi === 'bigint' ? String(lpi) : lpi)} is not an integer >= -1`);
  if (!Array.isArray(ops)) throw new Error('republish: ops is not an array of ops');
  const parts = [i64(lpi)];
  encodeOps(parts, ops, (j) => `republish: op ${j}`);
  const n = 1 + parts.reduce((a, b) => a + b.length, 0);
  if (n > FRAME_MAX) throw new Error(`republish: a view of ${n} bytes, more than a frame's ${FRAME_MAX}`);
  return frame(T.REPUBLISH | REPLY, ...parts);
}

async function* restoreChunks(reader) {
  for (;;) {
    const f = await reader.next();
    if (f === null) throw new Error('the engine closed the connection during restore');
    if (f.type === END) return;
    if (f.type !== CHUNK) throw new Error(`frame 0x${f.type.toString(16)} in a restore stream`);
    yield f.payload;
  }
}

// Serve one connection until Close or EOF; resolves true after a Close.
async function handle(app, sock) {
  const reader = new FrameReader(sock);
  const send = (buf) => new Promise((res, rej) => sock.write(buf, (e) => (e ? rej(e) : res())));
  for (;;) {
    const f = await reader.next();
    if (f === null) return false;
    try {
      switch (f.type) {
        case T.OPEN: {
          const req = JSON.parse(f.payload.toString());
          if (req.protocol !== PROTOCOL) throw new Error(`protocol ${req.protocol}, not ${PROTOCOL}`);
          const lpi = await app.open(req.dir);
          const rep = { protocol: PROTOCOL, name: app.name || 'app', lpi: Number(lpi) };
          if (app.external || app.externalMany) {
            rep.external = true;
            if (typeof app.republish === 'function') rep.republish = true;
          }
          await send(frame(T.OPEN | REPLY, Buffer.from(JSON.stringify(rep))));
          break;
        }
        case T.APPLY:
          await send(await applyBatch(app, f.payload));
          break;
        case T.SYNC:
          await app.sync();
          await send(frame(T.SYNC | REPLY));
          break;
        case T.DIGEST:
          await send(frame(T.DIGEST | REPLY, Buffer.from(await app.digest())));
          break;
        case T.SNAPSHOT: {
          const { lpi, chunks } = await app.snapshot();
          await send(frame(T.SNAPSHOT | REPLY, i64(lpi)));
          for await (const c of chunks) {
            for (let i = 0; i < c.length; i += CHUNK_SIZE)
              await send(frame(CHUNK, Buffer.from(c.subarray(i, i + CHUNK_SIZE))));
          }
          await send(frame(END));
          break;
        }
        case T.RESTORE: {
          const it = restoreChunks(reader);
          const lpi = await app.restore(it);
          for await (const _ of it); // eslint-disable-line no-unused-vars
          await send(frame(T.RESTORE | REPLY, i64(lpi)));
          break;
        }
        case T.EXTERNAL:
          if (!app.external && !app.externalMany) throw new Error('External to an application with no external effect');
          await send(await externalBatch(app, f.payload));
          break;
        case T.REPUBLISH:
          if (!(app.external || app.externalMany) || typeof app.republish !== 'function')
            throw new Error('Republish to an application with no republish');
          await send(await republishView(app, f.payload));
          break;
        case T.CLOSE:
          if (app.close) await app.close();
          await send(frame(T.CLOSE | REPLY));
          return true;
        default:
          throw new Error(`unknown request type 0x${f.type.toString(16)}`);
      }
    } catch (e) {
      const msg = String(e && e.stack ? e.message : e).replace(/\n/g, ' ');
      console.error(`br2k-app: ${msg}`);
      try { await send(frame(ERROR, Buffer.from(msg.slice(0, 1000)))); } catch (_) { /* gone */ }
      return false;
    }
  }
}

// Serve `app`: on the fd of --app exec:... ($BR2K_APP_FD), or else listening
// on the Unix socket opts.listen / $BR2K_APP_LISTEN (--app unix:PATH), one
// connection at a time. Resolves when an fd connection ends.
function serve(app, opts = {}) {
  const fd = opts.fd != null ? opts.fd : process.env.BR2K_APP_FD;
  if (fd != null && fd !== '') {
    const sock = new net.Socket({ fd: Number(fd), readable: true, writable: true });
    return handle(app, sock).then(
      () => { sock.destroy(); },
      (e) => { console.error(`br2k-app: ${e.message}`); sock.destroy(); process.exitCode = 1; });
  }
  const path = opts.listen || process.env.BR2K_APP_LISTEN;
  if (!path) throw new Error('br2k-app: no BR2K_APP_FD (run me with br2k-worker --app exec:...) and no socket to listen on (BR2K_APP_LISTEN)');
  try { fs.unlinkSync(path); } catch (_) { /* none */ }
  let busy = Promise.resolve();
  const server = net.createServer((sock) => {
    busy = busy.then(() => handle(app, sock)).catch(() => {}).then(() => sock.destroy());
  });
  server.listen(path);
  return server;
}

module.exports = { serve, handle, FrameReader, frame, PROTOCOL };
