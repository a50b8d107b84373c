'use strict';
// Client: submit a signed request through a gateway and wait for its result,
// as the paper's client does: on a failure, back off, ask the registry where
// the service is now, try the next gateway, and send the same request again
// (same id, same bytes: the service applies a request id once and answers a
// repeat with the first result), until a deadline.
const { serialize, requestId } = require('./canonical');
const { discoverGateways } = require('./registry');

// backoffDelay(failures, {backoffMs, backoffMaxMs}): the pause after the
// n-th failure in a row (1, 2, ...): backoffMs doubled each time, capped.
function backoffDelay(failures, { backoffMs = 100, backoffMaxMs = 2000 } = {}) {
  if (!(failures >= 1)) return 0;
  const d = backoffMs * 2 ** Math.min(failures - 1, 30);
  return Math.min(d, backoffMaxMs);
}

// retryDelay(failures, opts, retryAfterMs, remainingMs): the pause before the
// next attempt (the longer of the backoff and the gateway's Retry-After), or
// -1 when it would not end before the deadline (give up).
function retryDelay(failures, opts, retryAfterMs, remainingMs) {
  const d = Math.max(backoffDelay(failures, opts), retryAfterMs > 0 ? retryAfterMs : 0);
  return d < remainingMs ? d : -1;
}

// retrySchedule(opts, n): the first n pauses with no Retry-After and no
// deadline, and their sum (to show the policy).
function retrySchedule(opts, n) {
  const delays = [];
  for (let i = 1; i <= n; i++) delays.push(backoffDelay(i, opts));
  return delays;
}

// parseRetryAfter(value, nowMs): RFC 9110 Retry-After, delay-seconds or an
// HTTP-date, in ms (0 when absent or unreadable).
function parseRetryAfter(value, nowMs = Date.now()) {
  if (value == null) return 0;
  const s = String(value).trim();
  if (/^\d+$/.test(s)) return Math.min(Number(s), 86400) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? 0 : Math.max(0, t - nowMs);
}

class Br2kError extends Error {
  constructor(message, { code, status, gateway, retryable = false, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'Br2kError';
    this.code = code;
    this.status = status;
    this.gateway = gateway;
    this.retryable = retryable;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function readError(resp) {
  const text = await resp.text().catch(() => '');
  try {
    const j = JSON.parse(text);
    if (j && j.error && typeof j.error.code === 'string') return { code: j.error.code, message: String(j.error.message || '') };
  } catch {
    /* not our JSON error: report the start of the body */
  }
  return { code: `http_${resp.status}`, message: text.slice(0, 200).replace(/\s+/g, ' ') };
}

// classify an HTTP status that is not 200/202/404-while-polling
function httpFailure(resp, err, gateway) {
  const retryable = resp.status >= 500 || resp.status === 429 || resp.status === 408;
  const e = new Br2kError(`gateway ${gateway}: HTTP ${resp.status} ${err.code}: ${err.message}`, {
    code: err.code,
    status: resp.status,
    gateway,
    retryable,
  });
  e.retryAfterMs = parseRetryAfter(resp.headers.get('retry-after'));
  return e;
}

class Client {
  constructor({
    gateways,
    rpc,
    registry,
    deadlineMs = 60000,
    attemptMs = 10000,
    backoffMs = 100,
    backoffMaxMs = 2000,
    pollMs = 50,
    pollMaxMs = 500,
    discoverTimeoutMs = 3000,
    fetch: fetchFn = globalThis.fetch,
    log = null,
  } = {}) {
    const list = typeof gateways === 'string' ? gateways.split(/[\s,]+/) : gateways || [];
    this.gateways = list.filter((g) => g).map((g) => String(g).replace(/\/+$/, ''));
    this.rpc = rpc;
    this.registry = registry;
    if (this.gateways.length === 0 && !(rpc && registry))
      throw new Error('Client: give gateways, or rpc and registry to find them');
    for (const [k, v] of Object.entries({ deadlineMs, attemptMs, backoffMs, backoffMaxMs, pollMs, pollMaxMs }))
      if (!(Number.isFinite(v) && v >= 0)) throw new Error(`Client: ${k} must be a number >= 0, not ${v}`);
    if (attemptMs <= 0) throw new Error('Client: attemptMs must be > 0');
    Object.assign(this, { deadlineMs, attemptMs, backoffMs, backoffMaxMs, pollMs, pollMaxMs, discoverTimeoutMs });
    this.fetch = fetchFn;
    this.log = log; // optional (line) => void
    this.next = 0; // the gateway to try first
    this.attempts = 0; // HTTP submissions of a request (first tries and retries)
    this.retries = 0; // submissions after a failure
    this.discoveries = 0; // registry reads (the first one included)
    this.rediscoveries = 0; // registry reads after a failure
    this.lastDiscoverError = null;
  }

  async discover() {
    this.discoveries++;
    const urls = await discoverGateways({ rpc: this.rpc, registry: this.registry, timeoutMs: this.discoverTimeoutMs });
    this.gateways = urls;
    return urls;
  }

  // after a failure at gateway `failed`: re-read the registry (when it is
  // known) and move to the gateway after the one that failed
  async _failover(failed) {
    if (this.rpc && this.registry) {
      this.rediscoveries++;
      try {
        await this.discover();
        this.lastDiscoverError = null;
      } catch (e) {
        // the chain may be down too: keep the list we have
        this.lastDiscoverError = e;
        if (this.log) this.log(`rediscover failed: ${e.message}`);
      }
    }
    const i = this.gateways.indexOf(failed);
    this.next = i < 0 ? 0 : (i + 1) % this.gateways.length;
  }

  // one attempt at one gateway, of `budget` ms: the result, or throws
  // a Br2kError (retryable or not)
  async _attempt(gateway, body, id, budget) {
    const end = Date.now() + budget;
    // the gateway answers 202 after wait_ms; leave time to hear it
    const waitMs = Math.max(0, budget - Math.min(1000, Math.floor(budget / 5)));
    let resp;
    try {
      resp = await this.fetch(`${gateway}/v1/requests?wait_ms=${waitMs}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(Math.max(1, budget)),
      });
    } catch (e) {
      throw this._netError(gateway, 'POST', e);
    }
    if (resp.status === 200) return this._result(resp, gateway, id);
    if (resp.status !== 202) throw httpFailure(resp, await readError(resp), gateway);
    // appended; the result is not there yet: poll its location
    const loc = resp.headers.get('location') || `/v1/results/${encodeURIComponent(id)}`;
    await resp.text().catch(() => '');
    const url = new URL(loc, gateway + '/').toString();
    let pause = this.pollMs;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0)
        throw new Br2kError(`gateway ${gateway}: no result for ${id} within ${this.attemptMs} ms`, {
          code: 'attempt_timeout',
          gateway,
          retryable: true,
        });
      await sleep(Math.min(pause, left));
      pause = Math.min(pause * 2, this.pollMaxMs);
      let r;
      try {
        r = await this.fetch(url, { signal: AbortSignal.timeout(Math.max(1, end - Date.now())) });
      } catch (e) {
        throw this._netError(gateway, 'GET', e);
      }
      if (r.status === 200) return this._result(r, gateway, id);
      const err = await readError(r);
      if (r.status === 404 && err.code === 'no_result') continue;
      throw httpFailure(r, err, gateway);
    }
  }

  _giveUp(id, failures, err) {
    return new Br2kError(`${id}: no result within ${this.deadlineMs} ms after ${failures} attempts; last: ${err.message}`, {
      code: 'deadline_exceeded',
      status: err.status,
      gateway: err.gateway,
      cause: err,
    });
  }

  _netError(gateway, method, e) {
    const timeout = e && (e.name === 'TimeoutError' || e.name === 'AbortError');
    const why = timeout ? 'timed out' : (e.cause && (e.cause.code || e.cause.message)) || e.message;
    return new Br2kError(`gateway ${gateway}: ${method}: ${why}`, {
      code: timeout ? 'timeout' : 'connection_failed',
      gateway,
      retryable: true,
      cause: e,
    });
  }

  async _result(resp, gateway, id) {
    let text;
    try {
      text = await resp.text();
    } catch (e) {
      throw this._netError(gateway, 'reading the result', e);
    }
    let res;
    try {
      res = JSON.parse(text);
    } catch {
      throw new Br2kError(`gateway ${gateway}: the answer for ${id} is not JSON`, {
        code: 'bad_answer',
        gateway,
        retryable: true,
      });
    }
    if (res === null || typeof res !== 'object' || res.id !== id)
      throw new Br2kError(`gateway ${gateway}: answered the result of ${res && res.id} for ${id}`, {
        code: 'bad_answer',
        gateway,
        retryable: true,
      });
    return res;
  }

  // submit(request): the result object (schemas/result.schema.json; status
  // "ok" or "rejected", "repeat": true when an earlier attempt was applied).
  // request: a signed request object (signRequest) or its JSON text.
  async submit(request) {
    let req, body;
    if (typeof request === 'string') {
      req = JSON.parse(request);
      serialize(req); // checks it
      body = request; // as given: every attempt sends these bytes
    } else {
      req = request;
      body = serialize(req); // once: every attempt sends these bytes
    }
    const id = requestId(req);
    const deadline = Date.now() + this.deadlineMs;
    for (let tries = 1; this.gateways.length === 0; tries++) {
      try {
        await this.discover();
      } catch (e) {
        const pause = retryDelay(tries, this, 0, deadline - Date.now());
        if (pause < 0)
          throw new Br2kError(`${id}: cannot find a gateway within ${this.deadlineMs} ms: ${e.message}`, {
            code: 'no_gateway',
            cause: e,
          });
        await sleep(pause);
      }
    }
    let failures = 0;
    for (;;) {
      const gateway = this.gateways[this.next % this.gateways.length];
      const budget = Math.max(1, Math.min(this.attemptMs, deadline - Date.now()));
      this.attempts++;
      if (failures > 0) this.retries++;
      let err;
      try {
        return await this._attempt(gateway, body, id, budget);
      } catch (e) {
        if (!(e instanceof Br2kError) || !e.retryable) throw e;
        err = e;
      }
      failures++;
      if (this.log) this.log(`${id}: attempt ${failures} failed: ${err.message}`);
      const pause = retryDelay(failures, this, err.retryAfterMs || 0, deadline - Date.now());
      if (pause < 0) throw this._giveUp(id, failures, err);
      await sleep(pause);
      await this._failover(gateway);
      if (Date.now() >= deadline) throw this._giveUp(id, failures, err);
    }
  }
}

module.exports = { Client, Br2kError, backoffDelay, retryDelay, retrySchedule, parseRetryAfter };
