import { test } from 'node:test'
import assert from 'node:assert/strict'
import { backoffDelay, parseRetryAfter } from '../src/ranges.js'

test('back-off doubles from retryDelay, without jitter', () => {
  const o = { retryDelay: 2000, maxRetryDelay: 60000, jitter: 0 }
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, o)),
    [2000, 4000, 8000, 16000, 32000, 60000, 60000])
})

test('jitter adds at most its fraction and stays under the cap', () => {
  const o = { retryDelay: 2000, maxRetryDelay: 60000, jitter: 0.25 }
  assert.equal(backoffDelay(1, o, () => 0), 2000)
  assert.equal(backoffDelay(1, o, () => 0.999999), 2500)
  assert.equal(backoffDelay(2, o, () => 0.5), 4500)
  assert.equal(backoffDelay(6, o, () => 0.99), 60000)
  let s = 7
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32)
  for (let n = 1; n < 40; n++) {
    const d = backoffDelay(n, o, rnd)
    const base = Math.min(60000, 2000 * 2 ** (n - 1))
    assert.ok(d >= base && d <= Math.min(60000, base * 1.25), `${n}: ${d}`)
  }
  // default options are the issue's: 2 s, doubling, capped
  assert.equal(backoffDelay(1, {}, () => 0), 2000)
  assert.equal(backoffDelay(100, {}, () => 0.5), 60000)
})

test('Retry-After in seconds or as a date', () => {
  assert.equal(parseRetryAfter('2'), 2000)
  assert.equal(parseRetryAfter(null), null)
  assert.equal(parseRetryAfter('soon'), null)
  const now = Date.parse('Sat, 05 Dec 2026 09:00:00 GMT')
  assert.equal(parseRetryAfter('Sat, 05 Dec 2026 09:00:07 GMT', now), 7000)
  assert.equal(parseRetryAfter('Sat, 05 Dec 2026 08:00:00 GMT', now), 0)
})
