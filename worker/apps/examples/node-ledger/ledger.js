#!/usr/bin/env node
'use strict';
// node-ledger - a token ledger on BR2K (Node SDK example).
//
// Accounts are client ids (a request's id.client). Requests
// (schemas/request.schema.json), op and payload:
//   mint      {"amount": N}            credit the sender (1 <= N <= 1000000)
//   transfer  {"to": C, "amount": N}   move N from the sender to account C
// Anything else, or a transfer beyond the balance, is a rejected result.
// State: <dir>/ledger.json, balances + LPI + the request ids seen, in one
// file replaced atomically on sync. The leader's external effect keeps the
// balances public in Redis (br2k:{svc}:ext:balances, account -> balance)
// with the supply (ext:supply), each written once per request, and
// rebuilt whole from the state by republish after a Redis failover. Run it with
//   br2k-worker --app "exec:node worker/apps/examples/node-ledger/ledger.js" ...
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { serve } = require(process.env.BR2K_APP_SDK || '../../sdk/node');

// JSON with sorted keys and no spaces: the same bytes on every replica (I4).
function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

const CLIENT = /^[A-Za-z0-9._-]{1,64}$/;

class Ledger {
  constructor() { this.name = 'node-ledger'; }

  open(dir) {
    this.file = path.join(dir, 'ledger.json');
    this.s = { lpi: -1, balances: {}, supply: 0, seen: {}, applied: 0, rejected: 0 };
    if (fs.existsSync(this.file)) this.s = JSON.parse(fs.readFileSync(this.file, 'utf8'));
    return this.s.lpi;
  }

  reject(id, offset, op, code, text) {
    return { v: 1, id, offset, op, status: 'rejected', repeat: false, reason: { code, text } };
  }

  run(req, id, offset) {
    const { op, payload: p } = req;
    const from = req.id.client, bal = this.s.balances;
    const amount = p.amount;
    if (!Number.isSafeInteger(amount) || amount < 1 || amount > 1000000)
      return [false, this.reject(id, offset, op, 'bad_payload', 'amount must be an integer from 1 to 1000000')];
    if (op === 'mint') {
      bal[from] = (bal[from] || 0) + amount;
      this.s.supply += amount;
      return [true, { v: 1, id, offset, op, status: 'ok', repeat: false, data: { account: from, amount, balance: bal[from] } }];
    }
    if (op === 'transfer') {
      if (typeof p.to !== 'string' || !CLIENT.test(p.to))
        return [false, this.reject(id, offset, op, 'bad_payload', 'to must be a client id')];
      if ((bal[from] || 0) < amount)
        return [false, this.reject(id, offset, op, 'insufficient_funds', 'balance too low')];
      bal[from] -= amount;
      bal[p.to] = (bal[p.to] || 0) + amount;
      return [true, { v: 1, id, offset, op, status: 'ok', repeat: false,
        data: { account: from, amount, balance: bal[from], to: p.to, to_balance: bal[p.to] } }];
    }
    return [false, this.reject(id, offset, op, 'unknown_op', 'unknown operation')];
  }

  apply(offset, record) {
    const s = this.s;
    if (offset !== s.lpi + 1) throw new Error(`record ${offset} after LPI ${s.lpi}`);
    s.lpi = offset;
    let req, id;
    try {
      req = JSON.parse(record.toString('utf8'));
      id = `${req.id.client}:${req.id.seq}`;
      if (typeof req.op !== 'string' || !req.payload || typeof req.payload !== 'object') throw new Error();
    } catch (_) {
      s.rejected++;
      return { applied: false, result: canon(this.reject(null, offset, null, 'malformed_json', 'not a request')) };
    }
    const first = s.seen[id];
    if (first) // a repeated request id: the first result again (I5)
      return { applied: false, result: canon({ ...first, repeat: true, repeat_offset: offset }) };
    const [applied, res] = this.run(req, id, offset);
    s.seen[id] = res;
    if (applied) s.applied++; else s.rejected++;
    return { applied, result: canon(res) };
  }

  // The leader-only effect of one result (never the state: I5 by the
  // worker's fenced write, once per offset).
  external(epoch, offset, result) {
    const r = JSON.parse(result);
    if (r.status !== 'ok' || r.repeat) return [];
    const d = r.data;
    const ops = [{ op: 'hset', key: 'balances', field: d.account, value: String(d.balance) }];
    if (r.op === 'mint') ops.push({ op: 'incrby', key: 'supply', by: d.amount });
    else ops.push({ op: 'hset', key: 'balances', field: d.to, value: String(d.to_balance) });
    return ops;
  }

  // After a Redis failover lost some of the external writes: the whole
  // view, from the state as of its LPI (the engine deletes every ext: key,
  // runs these and records the LPI, fenced, in one step). Every account in
  // the balances got there by an ok result, whose external HSET it; the
  // supply is SET to its total (external INCRBYs it; the same value for
  // Redis), and left absent while no mint made it, as external would.
  republish(epoch) {
    const bal = this.s.balances;
    const ops = Object.keys(bal).sort().map((a) => ({ op: 'hset', key: 'balances', field: a, value: String(bal[a]) }));
    if (this.s.supply !== 0) ops.push({ op: 'set', key: 'supply', value: String(this.s.supply) });
    return { lpi: this.s.lpi, ops };
  }

  sync() {
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    fs.writeSync(fd, canon(this.s));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, this.file);
    const d = fs.openSync(path.dirname(this.file), 'r');
    fs.fsyncSync(d);
    fs.closeSync(d);
  }

  digest() { return crypto.createHash('sha256').update(canon(this.s)).digest('hex'); }

  snapshot() {
    const data = Buffer.from(canon(this.s));
    const chunks = [];
    for (let i = 0; i < data.length; i += 65536) chunks.push(data.subarray(i, i + 65536));
    return { lpi: this.s.lpi, chunks };
  }

  async restore(chunks) {
    const parts = [];
    for await (const c of chunks) parts.push(c);
    this.s = JSON.parse(Buffer.concat(parts).toString('utf8'));
    this.sync();
    return this.s.lpi;
  }
}

if (require.main === module) serve(new Ledger());
module.exports = { Ledger, canon };
