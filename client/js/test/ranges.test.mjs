import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseRanges, formatRanges, normalize, addRange, missingRanges,
  planChunks, heldBytes, isFinalStatus } from '../src/ranges.js'

test('X-Upload-Ranges parses to merged half-open ranges', () => {
  assert.deepEqual(parseRanges('0-1048575,3145728-4194303'),
    [[0, 1048576], [3145728, 4194304]])
  assert.deepEqual(parseRanges(' 10-19 , 0-4,5-9'), [[0, 20]])
  assert.deepEqual(parseRanges(''), [])
  assert.deepEqual(parseRanges(null), [])
  assert.throws(() => parseRanges('5-4'))
  assert.throws(() => parseRanges('a-b'))
  assert.equal(formatRanges(parseRanges('0-4,10-19')), '0-4,10-19')
})

test('normalize and addRange merge touching and overlapping ranges', () => {
  assert.deepEqual(normalize([[5, 10], [0, 5], [20, 20], [8, 12]]), [[0, 12]])
  assert.deepEqual(addRange([[0, 5], [10, 15]], 5, 10), [[0, 15]])
  assert.equal(heldBytes([[0, 5], [10, 15]]), 10)
})

test('missing ranges are the gaps, held bytes never reappear', () => {
  assert.deepEqual(missingRanges([], 100), [[0, 100]])
  assert.deepEqual(missingRanges([[0, 100]], 100), [])
  assert.deepEqual(missingRanges([[10, 20], [50, 60]], 100),
    [[0, 10], [20, 50], [60, 100]])
  assert.deepEqual(missingRanges([[0, 30], [20, 40]], 40), [])
})

test('the plan cuts gaps at the chunk grid and never crosses a held byte', () => {
  assert.deepEqual(planChunks([], 25, 10), [[0, 10], [10, 20], [20, 25]])
  // a cut connection left chunk 1 half held: one short piece fills it
  assert.deepEqual(planChunks([[0, 14]], 25, 10), [[14, 20], [20, 25]])
  assert.deepEqual(planChunks([[0, 10], [20, 25]], 25, 10), [[10, 20]])
  assert.deepEqual(planChunks([[3, 7]], 10, 10), [[0, 3], [7, 10]])
  assert.deepEqual(planChunks([[0, 25]], 25, 10), [])
  assert.throws(() => planChunks([], 10, 0))
})

test('plans are exact for random held sets (property)', () => {
  let s = 12345
  const rnd = (n) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n)
  for (let k = 0; k < 500; k++) {
    const total = 1 + rnd(5000), cs = 1 + rnd(700)
    const held = []
    for (let i = rnd(6); i > 0; i--) { const a = rnd(total); held.push([a, a + rnd(total - a + 1)]) }
    const plan = planChunks(held, total, cs)
    const mark = new Uint8Array(total)
    for (const [a, b] of normalize(held)) mark.fill(1, a, Math.min(b, total))
    for (const [a, b] of plan) {
      assert.ok(b > a && b - a <= cs, 'piece within chunkSize')
      for (let i = a; i < b; i++) { assert.equal(mark[i], 0, 'held byte re-sent'); mark[i] = 2 }
    }
    assert.ok(mark.every((x) => x !== 0), 'a byte is neither held nor planned')
  }
})

test('which answers are final', () => {
  for (const s of [400, 401, 403, 404, 410, 413, 460, 501]) assert.equal(isFinalStatus(s), true, s)
  for (const s of [408, 409, 423, 429, 500, 502, 503, 504, 507]) assert.equal(isFinalStatus(s), false, s)
})
