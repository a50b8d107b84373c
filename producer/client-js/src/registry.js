'use strict';
// Finding the gateways: the registry contract (registryd/contracts/
// BR2KRegistry.sol) lists the gateway URLs. Read with ethers.
const { JsonRpcProvider, Contract, FetchRequest, Network, isAddress } = require('ethers');

// The view that lists the gateways. One place to change if the contract's
// signature differs; a string (URLs separated by commas or white space) and
// a string[] are both understood.
const REGISTRY_ABI = ['function gateways() view returns (string)'];
const GATEWAYS_FN = 'gateways';

// parseGatewayList(value): the URLs (http:// or https://, no trailing /),
// de-duplicated in order; anything else is refused naming it.
function parseGatewayList(value) {
  let items;
  if (Array.isArray(value)) items = value.map(String);
  else if (typeof value === 'string') items = value.split(/[\s,]+/);
  else throw new Error(`registry: ${GATEWAYS_FN}() returned a ${typeof value}, not a string or string[]`);
  const out = [];
  for (let s of items) {
    s = s.trim();
    if (s === '') continue;
    let u;
    try {
      u = new URL(s);
    } catch {
      throw new Error(`registry: gateway '${s}' is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new Error(`registry: gateway '${s}' is not http:// or https://`);
    s = s.replace(/\/+$/, '');
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

// chainId(rpc, timeoutMs): asked once with a plain request, so that the
// provider has a static network (ethers' own detection would retry every
// second, forever, against an RPC that is down).
async function chainId(rpc, timeoutMs) {
  const req = new FetchRequest(rpc);
  req.timeout = timeoutMs;
  req.setHeader('content-type', 'application/json');
  req.body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] });
  const resp = await req.send();
  if (resp.statusCode !== 200) throw new Error(`rpc ${rpc}: eth_chainId: HTTP ${resp.statusCode}`);
  const j = resp.bodyJson;
  if (!j || typeof j.result !== 'string') throw new Error(`rpc ${rpc}: eth_chainId: ${JSON.stringify(j && j.error)}`);
  return BigInt(j.result);
}

// discoverGateways({rpc, registry, timeoutMs}): the gateway URLs the
// registry lists (at least one, or an error). rpc: one JSON-RPC URL, or
// several separated by commas (as libbr2k's eth_rpc), tried in order.
async function discoverGateways({ rpc, registry, timeoutMs = 5000 }) {
  const rpcs = typeof rpc === 'string' ? rpc.split(',').map((u) => u.trim()).filter((u) => u) : [];
  if (rpcs.length === 0) throw new Error('discoverGateways: no rpc URL');
  for (const u of rpcs) if (!/^https?:\/\//.test(u)) throw new Error(`discoverGateways: rpc '${u}' is not an http(s) URL`);
  if (!isAddress(registry)) throw new Error(`discoverGateways: registry '${registry}' is not an address`);
  const errors = [];
  for (const u of rpcs) {
    try {
      return await fromOne(u, registry, timeoutMs);
    } catch (e) {
      if (e.final) throw e; // the chain answered: another RPC would say the same
      errors.push(`${u}: ${e.shortMessage || e.message}`);
    }
  }
  throw new Error(`registry ${registry}: no RPC answered (${errors.join('; ')})`);
}

async function fromOne(rpc, registry, timeoutMs) {
  let provider;
  try {
    const id = await chainId(rpc, timeoutMs);
    const req = new FetchRequest(rpc);
    req.timeout = timeoutMs;
    provider = new JsonRpcProvider(req, Network.from(id), { staticNetwork: true, batchMaxCount: 1 });
    const c = new Contract(registry, REGISTRY_ABI, provider);
    let value;
    try {
      value = await c[GATEWAYS_FN]();
    } catch (e) {
      throw new Error(`registry ${registry}: ${GATEWAYS_FN}() failed: ${e.shortMessage || e.message}`);
    }
    const final = (msg) => Object.assign(new Error(msg), { final: true });
    let urls;
    try {
      urls = parseGatewayList(value);
    } catch (e) {
      throw final(e.message);
    }
    if (urls.length === 0) throw final(`registry ${registry}: no gateway is listed`);
    return urls;
  } finally {
    if (provider) provider.destroy();
  }
}

module.exports = { discoverGateways, parseGatewayList, REGISTRY_ABI, GATEWAYS_FN };
