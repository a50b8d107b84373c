'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { canonical, serialize, encode, requestId } = require('..');

const FIX = path.join(__dirname, '../../../tests/unit/fixtures/infodid');
const read = (f) => fs.readFileSync(path.join(FIX, f), 'utf8');

test('the fixtures: canonical form byte for byte', () => {
  for (const name of ['register', 'update']) {
    const req = JSON.parse(read(`${name}.json`));
    const want = read(`${name}.canonical`);
    assert.equal(canonical(req), want, name);
    assert.ok(Buffer.from(canonical(req), 'utf8').equals(fs.readFileSync(path.join(FIX, `${name}.canonical`))));
    // keys given in any order make the same string
    const { v, ts, signer, payload, op } = req;
    const shuffled = { v, ts, signer, payload, op, id: { seq: req.id.seq, client: req.id.client } };
    assert.equal(canonical(shuffled), want);
  }
});

test('the C test of the canonical form (tests/unit/test_request.c), same bytes', () => {
  const payload = JSON.parse('{"b":"x\\ny\\u0001","a":{"z":1,"c":[true,null]},"\\u00e9":"/\\"\\\\"}');
  const got = canonical({ id: { client: 'c1', seq: 5 }, op: 'register', payload, ts: 1700000000000 });
  const want =
    '{"id":{"client":"c1","seq":5},"op":"register","payload":{"a":{"c":[true,null],"z":1},' +
    '"b":"x\\ny\\u0001","\u00e9":"/\\"\\\\"},"ts":1700000000000,"v":1}';
  assert.equal(got, want);
});

test('keys are sorted at every depth by their UTF-8 bytes', () => {
  assert.equal(encode({ b: { d: 1, c: [{ z: 0, y: { n: 1, m: 2 } }] }, a: 0, B: 1, _: 2 }),
    '{"B":1,"_":2,"a":0,"b":{"c":[{"y":{"m":2,"n":1},"z":0}],"d":1}}');
  // U+FFFF (EF BF BF) before U+10000 (F0 90 80 80) in UTF-8, though UTF-16
  // code units (FFFF vs D800) would order them the other way
  assert.equal(encode({ '\u{10000}': 1, '\uffff': 2, 'é': 3, z: 4 }), '{"z":4,"é":3,"\uffff":2,"\u{10000}":1}');
  // a key that is a prefix sorts first
  assert.equal(encode({ ab: 1, a: 2 }), '{"a":2,"ab":1}');
});

test('escaping: as jansson writes it', () => {
  let all = '';
  for (let c = 0; c < 0x20; c++) all += String.fromCharCode(c);
  const want =
    '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000B\\f\\r\\u000E\\u000F' +
    '\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001A\\u001B\\u001C\\u001D\\u001E\\u001F"';
  assert.equal(encode(all), want);
  assert.equal(encode('"\\'), '"\\"\\\\"');
  // '/', DEL, non-ASCII, U+2028 and astral characters as is (UTF-8)
  const s = '/\x7f é 中 \u2028 😀';
  assert.equal(encode(s), '"' + s + '"');
  assert.equal(encode({ [s]: s }), `{"${s}":"${s}"}`);
  assert.throws(() => encode('a\ud800b'), /lone surrogate U\+D800/);
  assert.throws(() => encode('\udc00'), /lone surrogate/);
});

test('numbers: integers only', () => {
  assert.equal(encode([0, -0, -5, 9007199254740991, 9223372036854775807n, -9223372036854775808n]),
    '[0,0,-5,9007199254740991,9223372036854775807,-9223372036854775808]');
  assert.throws(() => encode(1.5), /1.5 is not an integer/);
  assert.throws(() => encode({ a: [1e21 + 0.5, 1] }), /beyond 2\^53-1/);
  assert.throws(() => encode(NaN), /not an integer/);
  assert.throws(() => encode(2n ** 63n), /outside 64 bits/);
  const req = { id: { client: 'c', seq: 1 }, op: 'x', payload: { p: 0.1 }, ts: 1 };
  assert.throws(() => canonical(req), /payload\.p: 0.1 is not an integer/);
});

test('the envelope is checked before anything is signed', () => {
  const ok = { id: { client: 'c', seq: 1 }, op: 'register', payload: {}, ts: 1 };
  assert.equal(canonical(ok), '{"id":{"client":"c","seq":1},"op":"register","payload":{},"ts":1,"v":1}');
  assert.equal(requestId(ok), 'c:1');
  const bad = [
    [{ ...ok, extra: 1 }, /extra: is not a field/],
    [{ ...ok, id: { client: 'a:b', seq: 1 } }, /id\.client/],
    [{ ...ok, id: { client: 'c', seq: -1 } }, /id\.seq/],
    [{ ...ok, id: { client: 'c', seq: 2 ** 53 } }, /id\.seq/],
    [{ ...ok, op: 'Register' }, /op: must match/],
    [{ ...ok, payload: [] }, /payload: must be an object/],
    [{ ...ok, ts: '1' }, /ts: must be an integer/],
    [{ ...ok, v: 2 }, /v: must be 1/],
    [{ ...ok, signer: '0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266' }, /signer: must be 0x and 40 lower-case/],
    [{ ...ok, payload: { d: new Date(0) } }, /a Date object is not JSON/],
    [{ ...ok, payload: { u: undefined } }, /payload\.u: undefined is not JSON/],
  ];
  for (const [req, re] of bad) assert.throws(() => canonical(req), re);
  assert.throws(() => serialize(ok), /sig: must be 0x and 130 hex/);
});

test('serialize: the request as sent, sig included, parses back to the same', () => {
  const req = JSON.parse(read('register.json'));
  const text = serialize(req);
  assert.deepEqual(JSON.parse(text), req);
  assert.equal(canonical(JSON.parse(text)), read('register.canonical'));
});
