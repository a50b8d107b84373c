'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { backoffDelay, retryDelay, retrySchedule, parseRetryAfter } = require('..');

test('backoff: doubling from backoffMs, capped at backoffMaxMs', () => {
  assert.deepEqual(retrySchedule({ backoffMs: 100, backoffMaxMs: 2000 }, 8), [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
  assert.deepEqual(retrySchedule({}, 6), [100, 200, 400, 800, 1600, 2000], 'the defaults');
  assert.deepEqual(retrySchedule({ backoffMs: 50, backoffMaxMs: 300 }, 5), [50, 100, 200, 300, 300]);
  assert.equal(backoffDelay(0), 0);
  assert.equal(backoffDelay(1000, { backoffMs: 100, backoffMaxMs: 2000 }), 2000, 'no overflow after many failures');
});

test('retryDelay: Retry-After wins when longer; -1 when past the deadline', () => {
  const o = { backoffMs: 100, backoffMaxMs: 2000 };
  assert.equal(retryDelay(1, o, 0, 60000), 100);
  assert.equal(retryDelay(3, o, 1000, 60000), 1000, 'Retry-After: 1 beats 400 ms');
  assert.equal(retryDelay(6, o, 1000, 60000), 2000, 'the backoff beats a shorter Retry-After');
  assert.equal(retryDelay(1, o, 0, 100), -1, 'a pause that ends at the deadline is not taken');
  assert.equal(retryDelay(1, o, 5000, 3000), -1, 'a Retry-After beyond the deadline gives up');
  assert.equal(retryDelay(2, o, 0, 201), 200);
});

test('the whole schedule within a deadline: the pauses taken before giving up', () => {
  // with instant failures, a 5 s deadline allows these pauses
  const o = { backoffMs: 100, backoffMaxMs: 2000 };
  const pauses = [];
  let t = 0;
  for (let n = 1; ; n++) {
    const d = retryDelay(n, o, 0, 5000 - t);
    if (d < 0) break;
    pauses.push(d);
    t += d;
  }
  assert.deepEqual(pauses, [100, 200, 400, 800, 1600]);
  assert.equal(t, 3100);
});

test('parseRetryAfter: seconds or an HTTP-date', () => {
  assert.equal(parseRetryAfter('1'), 1000);
  assert.equal(parseRetryAfter(' 3 '), 3000);
  assert.equal(parseRetryAfter(null), 0);
  assert.equal(parseRetryAfter('soon'), 0);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:02 GMT', now), 2000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now), 0, 'a date in the past: no wait');
});
