import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Sha256 } from '../src/sha256.js'
import { toSource } from '../src/source.js'

test('the JS SHA-256 equals node:crypto for every length and split', () => {
  let s = 99
  const bytes = new Uint8Array(1000).map(() => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24))
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 999, 1000]) {
    const want = createHash('sha256').update(bytes.subarray(0, n)).digest('hex')
    assert.equal(new Sha256().update(bytes.subarray(0, n)).hex(), want, `length ${n}`)
    const h = new Sha256()
    for (let a = 0; a < n; a += 37) h.update(bytes.subarray(a, Math.min(n, a + 37)))
    assert.equal(h.hex(), want, `length ${n} in pieces`)
  }
  assert.equal(new Sha256().update(new TextEncoder().encode('abc')).hex(),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
})

test('a Blob over 64 MiB is hashed piece by piece, the same digest', async () => {
  const big = new Uint8Array(64 * 1024 * 1024 + 5)
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 255
  const src = await toSource(new Blob([big]))
  assert.equal(await src.sha256(), createHash('sha256').update(big).digest('hex'))
})
