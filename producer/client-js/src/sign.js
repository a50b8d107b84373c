'use strict';
// Signing a request: EIP-191 personal_sign of the canonical form, what
// `cast wallet sign "<canonical>"` and wallets' personal_sign produce.
const { verifyMessage } = require('ethers');
const { canonical } = require('./canonical');

// signRequest(wallet, {client, seq, op, payload, ts}): the request object
// with "signer" and "sig". wallet: an ethers Wallet or any signer with
// signMessage(string) and getAddress(). ts defaults to now (ms).
async function signRequest(wallet, { client, seq, op, payload, ts }) {
  if (wallet == null || typeof wallet.signMessage !== 'function' || typeof wallet.getAddress !== 'function')
    throw new Error('signRequest: the wallet must have signMessage() and getAddress()');
  const signer = (await wallet.getAddress()).toLowerCase();
  const req = {
    id: { client, seq },
    op,
    payload: payload === undefined ? {} : payload,
    signer,
    ts: ts === undefined ? Date.now() : ts,
    v: 1,
  };
  const msg = canonical(req);
  let sig = await wallet.signMessage(msg);
  // some wallets write v as 0/1; the service takes both, cast writes 27/28
  const v = parseInt(sig.slice(130, 132), 16);
  if (v === 0 || v === 1) sig = sig.slice(0, 130) + (v + 27).toString(16);
  if (verifyMessage(msg, sig).toLowerCase() !== signer)
    throw new Error(`signRequest: the signature of ${client}:${seq} does not recover ${signer}`);
  req.sig = sig;
  return req;
}

// recoverSigner(req): the address (lower case) the request's signature
// recovers, over its canonical form.
function recoverSigner(req) {
  return verifyMessage(canonical(req), req.sig).toLowerCase();
}

module.exports = { signRequest, recoverSigner };
