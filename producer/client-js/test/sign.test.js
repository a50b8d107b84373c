'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Wallet } = require('ethers');
const { signRequest, recoverSigner, canonical } = require('..');

const ROOT = path.join(__dirname, '../../..');
const FIX = path.join(ROOT, 'tests/unit/fixtures/infodid');
const read = (f) => fs.readFileSync(path.join(FIX, f), 'utf8');
// anvil's first development key (the fixtures' signer)
const KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const ADDR = '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266';
// the binary itself (as lib.sh runs it), else npm's launcher
const CAST = ['node_modules/@foundry-rs/cast-linux-amd64/bin/cast', 'node_modules/.bin/cast']
  .map((p) => path.join(ROOT, p))
  .find((p) => fs.existsSync(p));

test('signRequest reproduces the fixtures: canonical string and signature', async () => {
  const w = new Wallet(KEY);
  const reg = await signRequest(w, {
    client: 'fixture', seq: 1, op: 'register', payload: { attrs: { name: 'Alice', email: 'alice@example.org' } }, ts: 1700000000000,
  });
  assert.equal(reg.signer, ADDR);
  assert.equal(canonical(reg), read('register.canonical'));
  assert.equal(reg.sig, read('register.sig').trim());
  assert.deepEqual(reg, JSON.parse(read('register.json')));
  const upd = await signRequest(w, {
    client: 'fixture', seq: 2, op: 'update', payload: { attrs: { city: 'Daejeon', email: null } }, ts: 1700000001000,
  });
  assert.equal(canonical(upd), read('update.canonical'));
  assert.equal(upd.sig, read('update.sig').trim());
  assert.equal(recoverSigner(JSON.parse(read('update.json'))), ADDR);
});

const NO_CAST = CAST ? false : 'no cast in node_modules';
test('a fresh signature is accepted by `cast wallet verify`, a changed one is not', { skip: NO_CAST }, async () => {
  const w = Wallet.createRandom();
  const req = await signRequest(w, {
    client: 'js-test', seq: 42, op: 'update', payload: { did: 'did:br2k:x', attrs: { 'z\tkey': 'é/"\\\u0001', a: [1, true, null] } },
  });
  assert.equal(req.signer, w.address.toLowerCase());
  assert.match(req.sig, /^0x[0-9a-f]{128}(1b|1c)$/);
  const msg = canonical(req);
  const out = execFileSync(CAST, ['wallet', 'verify', '--address', w.address, msg, req.sig], { encoding: 'utf8' });
  assert.match(out, /Validation succeeded/);
  // the same signature over a message one byte different is refused
  const other = msg.replace('"seq":42', '"seq":43');
  assert.throws(() => execFileSync(CAST, ['wallet', 'verify', '--address', w.address, other, req.sig], { stdio: 'pipe' }));
  // and our own recovery agrees
  assert.equal(recoverSigner(req), req.signer);
  assert.notEqual(recoverSigner({ ...req, id: { client: 'js-test', seq: 43 } }), req.signer);
});

test('signRequest: any signer with signMessage and getAddress; v 0/1 written as 27/28', async () => {
  const w = new Wallet(KEY);
  const low = {
    getAddress: async () => w.address,
    signMessage: async (m) => {
      const s = await w.signMessage(m);
      return s.slice(0, 130) + (parseInt(s.slice(130), 16) - 27).toString(16).padStart(2, '0');
    },
  };
  const r = await signRequest(low, {
    client: 'fixture', seq: 1, op: 'register', payload: { attrs: { name: 'Alice', email: 'alice@example.org' } }, ts: 1700000000000,
  });
  assert.equal(r.sig, read('register.sig').trim());
  await assert.rejects(signRequest({}, { client: 'c', seq: 1, op: 'x', payload: {}, ts: 1 }), /signMessage\(\) and getAddress\(\)/);
  // a signer that signs with another key than it claims is caught
  const liar = { getAddress: async () => Wallet.createRandom().address, signMessage: (m) => w.signMessage(m) };
  await assert.rejects(signRequest(liar, { client: 'c', seq: 1, op: 'x', payload: {}, ts: 1 }), /does not recover/);
  const t0 = Date.now();
  const d = await signRequest(w, { client: 'c', seq: 1, op: 'x' });
  assert.ok(d.ts >= t0 && d.ts <= Date.now(), 'ts defaults to now');
  assert.deepEqual(d.payload, {});
});
