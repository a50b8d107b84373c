#!/usr/bin/env node
'use strict';
// app_proto_noop.js - the no-op application of bench/app_proto.sh over the
// application protocol (Node SDK): the same work as worker/apps/noop (a
// SHA-256 chain over offset and record, a count, the same result JSON, the
// state and LPI in one small file fsync'd on each sync).
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { serve } = require('../worker/apps/sdk/node');

let file, fd, lpi = -1, count = 0, chain = Buffer.alloc(32);
const off8 = Buffer.alloc(8);
const SCAN = /"client":"([A-Za-z0-9._-]{1,64})","seq":([0-9]{1,16})[,}]/;
const OP = /"op":"([a-z][a-z0-9_]{0,31})"/;

function line() { return `br2k-noop-js 1 ${lpi} ${count} ${chain.toString('hex')}\n`; }

serve({
  name: 'noop-js',
  open(dir) {
    file = path.join(dir, 'noop.state');
    if (fs.existsSync(file)) {
      const f = fs.readFileSync(file, 'utf8').trim().split(' ');
      [lpi, count, chain] = [Number(f[2]), Number(f[3]), Buffer.from(f[4], 'hex')];
    }
    fd = fs.openSync(file, 'w+');
    fs.writeSync(fd, line(), 0);
    return lpi;
  },
  apply(offset, rec) {
    off8.writeBigInt64BE(BigInt(offset));
    chain = crypto.createHash('sha256').update(chain).update(off8).update(rec).digest();
    lpi = offset;
    count++;
    // the id and op by a plain scan, as the C no-op's fast path (the
    // bench's records are compact JSON); a full parse when that fails
    const s = rec.toString('latin1');
    let id = null, op = null;
    const m = SCAN.exec(s), o = OP.exec(s);
    if (m && o) {
      id = `${m[1]}:${m[2]}`;
      op = o[1];
    } else {
      try {
        const r = JSON.parse(rec);
        id = `${r.id.client}:${r.id.seq}`;
        op = r.op;
      } catch (_) { /* a result naming no request */ }
    }
    return {
      applied: true,
      result: `{"data":{},"id":${JSON.stringify(id)},"offset":${offset},"op":${JSON.stringify(op)},"repeat":false,"status":"ok","v":1}`,
    };
  },
  sync() {
    fs.writeSync(fd, line(), 0);
    fs.fdatasyncSync(fd);
  },
  digest() { return crypto.createHash('sha256').update(line()).digest('hex'); },
  snapshot() { return { lpi, chunks: [Buffer.from(line())] }; },
  async restore(chunks) {
    const parts = [];
    for await (const c of chunks) parts.push(c);
    const f = Buffer.concat(parts).toString().trim().split(' ');
    [lpi, count, chain] = [Number(f[2]), Number(f[3]), Buffer.from(f[4], 'hex')];
    this.sync();
    return lpi;
  },
});
