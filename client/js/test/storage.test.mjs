import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileStorage, memoryStorage, webStorage } from '../src/storage.js'
import { ResilientUploader, newSessionId, getUrlOf } from '../src/uploader.js'

test('file storage round-trips and survives a new instance (a restart)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hfs-js-'))
  try {
    const p = join(dir, 'state.json')
    const a = fileStorage(p)
    assert.equal(await a.get('k'), null)
    await Promise.all([a.set('k', { sessionId: 's1', size: 5 }), a.set('j', { sessionId: 's2' })])
    const b = fileStorage(p)
    assert.deepEqual(await b.get('k'), { sessionId: 's1', size: 5 })
    assert.deepEqual(await b.get('j'), { sessionId: 's2' })
    await b.remove('k')
    assert.equal(await fileStorage(p).get('k'), null)
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(p, 'utf8'))), ['j'])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('web storage keeps one item per upload, memory storage copies', () => {
  const m = new Map()
  const ls = { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v),
    removeItem: (k) => m.delete(k) }
  const w = webStorage(ls)
  w.set('u', { sessionId: 'x' })
  assert.deepEqual(w.get('u'), { sessionId: 'x' })
  assert.ok(m.has('hfs-upload:u'))
  w.remove('u')
  assert.equal(w.get('u'), null)
  const mem = memoryStorage()
  const v = { a: 1 }
  mem.set('k', v); v.a = 2
  assert.deepEqual(mem.get('k'), { a: 1 })
})

test('session ids are 128 random bits; options are checked', () => {
  const a = newSessionId(), b = newSessionId()
  assert.match(a, /^[0-9a-f]{32}$/)
  assert.notEqual(a, b)
  assert.equal(getUrlOf('http://h:1/a/b.txt?v=abc#x'), 'http://h:1/a/b.txt')
  const u = 'http://127.0.0.1:1/a?v=1'
  assert.throws(() => new ResilientUploader(new Uint8Array(1), u, { parallel: 5 }), RangeError)
  assert.throws(() => new ResilientUploader(new Uint8Array(1), u, { sessionId: 'a b' }), RangeError)
  assert.throws(() => new ResilientUploader(new Uint8Array(1), u, { sha256: 'xyz' }), RangeError)
  const up = new ResilientUploader(new Uint8Array(1), u, { storage: memoryStorage() })
  assert.equal(up.options.chunkSize, 5 * 1024 * 1024)
  assert.equal(up.options.parallel, 1)
  assert.equal(up.options.maxRetries, 5)
  assert.equal(up.options.retryDelay, 2000)
})

test('dist/hfs-uploader.js (for file:// pages) is the current src/', async () => {
  const { bundle } = await import('../tools/bundle.mjs')
  const { readFileSync } = await import('node:fs')
  const path = new URL('../dist/hfs-uploader.js', import.meta.url)
  assert.equal(readFileSync(path, 'utf8'), bundle(),
    'stale: run node client/js/tools/bundle.mjs')
})
