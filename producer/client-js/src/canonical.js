'use strict';
// The canonical form of a BR2K request (schemas/README.md, "The canonical
// form (what is signed)"): the request without "sig", keys sorted at every
// depth by their UTF-8 bytes, no whitespace, integers in plain decimal, and
// strings escaped exactly as jansson writes them with
// JSON_SORT_KEYS | JSON_COMPACT (common/chain/request.c).

const CLIENT_RE = /^[A-Za-z0-9._-]{1,64}$/;
const OP_RE = /^[a-z][a-z0-9_]{0,31}$/;
const SIGNER_RE = /^0x[0-9a-f]{40}$/;
const SIG_RE = /^0x[0-9a-fA-F]{130}$/;
const MAX_INT = 9007199254740991; // 2^53 - 1: id.seq and ts (request.schema.json)
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n; // jansson's json_int_t
const FIELDS = new Set(['v', 'id', 'op', 'payload', 'ts', 'signer', 'sig']);

function fail(path, what) {
  const e = new Error(`request ${path}: ${what}`);
  e.code = 'bad_request';
  return e;
}

// A JSON string as jansson writes it: only '"', '\', and the controls below
// U+0020 are escaped (\b \f \n \r \t, the others \u00XX in upper-case hex);
// '/', U+007F and everything non-ASCII are written as is (UTF-8).
function quote(s, path) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      // a surrogate must be half of a pair: a lone one has no UTF-8 form
      const d = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff))
        throw fail(path, `a lone surrogate U+${c.toString(16).toUpperCase()} is not valid UTF-8`);
      out += s[i] + s[i + 1];
      i++;
      continue;
    }
    switch (c) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += '\\\\'; break;
      case 0x08: out += '\\b'; break;
      case 0x0c: out += '\\f'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x09: out += '\\t'; break;
      default:
        if (c < 0x20) out += '\\u' + c.toString(16).toUpperCase().padStart(4, '0');
        else out += s[i];
    }
  }
  return out + '"';
}

// Plain byte order of the keys' UTF-8 (jansson sorts with strcmp); JS's own
// sort compares UTF-16 code units, which differs above U+FFFF.
function byUtf8(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// encode(value): the compact, key-sorted JSON text of any JSON value whose
// numbers are integers (a fraction or exponent has no canonical form).
function encode(v, path = '$') {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return quote(v, path);
    case 'bigint':
      if (v < INT64_MIN || v > INT64_MAX) throw fail(path, 'an integer outside 64 bits');
      return v.toString();
    case 'number':
      if (!Number.isInteger(v)) throw fail(path, `${v} is not an integer (no fractions or exponents)`);
      if (!Number.isSafeInteger(v)) throw fail(path, `${v} is beyond 2^53-1: pass it as a BigInt`);
      return Object.is(v, -0) ? '0' : String(v);
    case 'object': {
      if (Array.isArray(v)) return '[' + v.map((x, i) => encode(x, `${path}[${i}]`)).join(',') + ']';
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null)
        throw fail(path, `a ${proto && proto.constructor ? proto.constructor.name : 'non-plain'} object is not JSON`);
      const keys = Object.keys(v).sort(byUtf8);
      const parts = [];
      for (const k of keys) {
        if (v[k] === undefined) throw fail(`${path}.${k}`, 'undefined is not JSON');
        parts.push(quote(k, path) + ':' + encode(v[k], `${path}.${k}`));
      }
      return '{' + parts.join(',') + '}';
    }
    default:
      throw fail(path, `a ${typeof v} is not JSON`);
  }
}

function checkInt(v, name, max = MAX_INT) {
  const n = typeof v === 'bigint' ? v : Number.isInteger(v) ? BigInt(v) : null;
  if (n === null || n < 0n || n > BigInt(max)) throw fail(name, `must be an integer from 0 to ${max}`);
}

// envelope(req): the members that are signed, checked against
// request.schema.json (so that a bad request fails here with a clear
// message, not at the gateway after signing).
function envelope(req) {
  if (req === null || typeof req !== 'object' || Array.isArray(req)) throw fail('$', 'must be an object');
  for (const k of Object.keys(req)) if (!FIELDS.has(k)) throw fail(k, 'is not a field of a request (unknown_field)');
  const v = req.v === undefined ? 1 : req.v;
  if (v !== 1) throw fail('v', 'must be 1');
  const id = req.id;
  if (id === null || typeof id !== 'object' || Array.isArray(id)) throw fail('id', 'must be {"client":...,"seq":...}');
  for (const k of Object.keys(id)) if (k !== 'client' && k !== 'seq') throw fail(`id.${k}`, 'is not a field of id');
  if (typeof id.client !== 'string' || !CLIENT_RE.test(id.client))
    throw fail('id.client', 'must be 1 to 64 of A-Z a-z 0-9 . _ -');
  checkInt(id.seq, 'id.seq');
  if (typeof req.op !== 'string' || !OP_RE.test(req.op)) throw fail('op', 'must match ^[a-z][a-z0-9_]{0,31}$');
  const p = req.payload;
  if (p === null || typeof p !== 'object' || Array.isArray(p)) throw fail('payload', 'must be an object');
  checkInt(req.ts, 'ts');
  const o = { id: { client: id.client, seq: id.seq }, op: req.op, payload: p, ts: req.ts, v };
  if (req.signer !== undefined) {
    if (typeof req.signer !== 'string' || !SIGNER_RE.test(req.signer))
      throw fail('signer', 'must be 0x and 40 lower-case hex digits');
    o.signer = req.signer;
  }
  return o;
}

// canonical(req): the string that is signed (without "sig").
function canonical(req) {
  return encode(envelope(req));
}

// serialize(req): the whole request as sent, sig included (the same
// encoder; the receiver re-serializes, so any order would do).
function serialize(req) {
  const o = envelope(req);
  if (typeof req.sig !== 'string' || !SIG_RE.test(req.sig)) throw fail('sig', 'must be 0x and 130 hex digits');
  o.sig = req.sig;
  return encode(o);
}

function requestId(req) {
  return `${req.id.client}:${req.id.seq}`;
}

module.exports = { canonical, serialize, encode, envelope, requestId, quote };
