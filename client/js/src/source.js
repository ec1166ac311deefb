// What an uploader reads from: a Blob/File (browsers, Node 20 too), bytes,
// a file path (Node) or a stream of known size (Node Readable, a web
// ReadableStream or any async iterable of byte chunks).
//
// A source has: size, name, id (to recognise the same file after a
// restart), read(start, end) -> body for fetch, and sha256() -> hex.
// A stream can only go forward: read() may skip bytes but never rewind;
// a chunk that must be re-sent is kept by the uploader until it is held.

import { Sha256 } from './sha256.js'

const hex = (buf) => Array.from(new Uint8Array(buf),
  (b) => b.toString(16).padStart(2, '0')).join('')

async function webDigest(bytes) {
  return hex(await globalThis.crypto.subtle.digest('SHA-256', bytes))
}

function blobSource(blob) {
  return {
    size: blob.size,
    name: blob.name || 'blob',
    id: `blob:${blob.name || ''}:${blob.size}:${blob.lastModified || 0}`,
    sequential: false,
    read: async (a, b) => blob.slice(a, b),
    async sha256() {
      // WebCrypto has no incremental digest: up to 64 MiB it is given the
      // whole file; beyond, the file is hashed piece by piece in JS.
      if (blob.size <= 64 * 1024 * 1024 && globalThis.crypto?.subtle)
        return webDigest(await blob.arrayBuffer())
      const h = new Sha256()
      for (let a = 0; a < blob.size; a += 4 * 1024 * 1024)
        h.update(await blob.slice(a, a + 4 * 1024 * 1024).arrayBuffer())
      return h.hex()
    },
  }
}

function bytesSource(u8) {
  return {
    size: u8.byteLength,
    name: 'bytes',
    id: `bytes:${u8.byteLength}`,
    sequential: false,
    read: async (a, b) => u8.subarray(a, b),
    sha256: () => webDigest(u8),
  }
}

async function pathSource(path) {
  const fs = await import('node:fs/promises')
  const nodePath = await import('node:path')
  const st = await fs.stat(path)
  let fh = null
  return {
    size: st.size,
    name: nodePath.basename(path),
    id: `file:${nodePath.resolve(path)}:${st.size}:${Math.floor(st.mtimeMs)}`,
    sequential: false,
    async read(a, b) {
      if (!fh) fh = await fs.open(path, 'r')
      const buf = Buffer.allocUnsafe(b - a)
      let off = 0
      while (off < buf.length) {
        const { bytesRead } = await fh.read(buf, off, buf.length - off, a + off)
        if (bytesRead === 0) throw new Error(`${path} shrank while uploading`)
        off += bytesRead
      }
      return buf
    },
    async sha256() {
      const { createHash } = await import('node:crypto')
      const { createReadStream } = await import('node:fs')
      const h = createHash('sha256')
      for await (const piece of createReadStream(path)) h.update(piece)
      return h.digest('hex')
    },
    async close() { if (fh) { const f = fh; fh = null; await f.close() } },
  }
}

function streamSource(stream, size, name) {
  if (!Number.isSafeInteger(size) || size < 0)
    throw new TypeError('a stream source needs options.size')
  const it = (typeof stream.getReader === 'function' && !stream[Symbol.asyncIterator])
    ? (async function* () {
        const r = stream.getReader()
        for (;;) { const { done, value } = await r.read(); if (done) return; yield value }
      })()
    : stream[Symbol.asyncIterator]()
  let pos = 0          // bytes consumed from the stream
  let pending = null   // leftover of the last piece (Uint8Array)
  let hasher = null    // incremental digest while the stream is read
  let digest = null
  const src = {
    size,
    name: name || 'stream',
    id: `stream:${name || ''}:${size}`,
    sequential: true,
    async read(a, b) {
      if (a < pos) throw new Error(`a stream cannot rewind (to ${a}, at ${pos})`)
      const out = new Uint8Array(b - a)
      let filled = 0
      while (pos < b) {
        let piece = pending
        pending = null
        if (!piece) {
          const r = await it.next()
          if (r.done) throw new Error(`the stream ended at ${pos} of ${size} bytes`)
          piece = r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value)
          if (hasher) hasher.update(piece)
        }
        const take = Math.min(piece.length, b - pos)
        const used = piece.subarray(0, take)
        if (pos + take > a) {
          const from = Math.max(0, a - pos)
          out.set(used.subarray(from), pos + from - a)
          filled += take - from
        }
        pos += take
        if (take < piece.length) pending = piece.subarray(take)
      }
      if (hasher && pos === size) digest = hasher.digest('hex')
      return out
    },
    // Hashed as it is read; known once the last byte has been read.
    async startDigest() {
      const { createHash } = await import('node:crypto')
      if (pos === 0) hasher = createHash('sha256')
    },
    digestSoFar: () => digest,
    sha256: null,
  }
  return src
}

/** Wraps what the caller passed. options: {size, name} for streams. */
export async function toSource(source, options = {}) {
  if (typeof source === 'string') return pathSource(source)
  if (typeof Blob !== 'undefined' && source instanceof Blob) return blobSource(source)
  if (source instanceof Uint8Array) return bytesSource(source)
  if (source instanceof ArrayBuffer) return bytesSource(new Uint8Array(source))
  if (source && (typeof source[Symbol.asyncIterator] === 'function'
      || typeof source.getReader === 'function'))
    return streamSource(source, options.size, options.name)
  throw new TypeError('source: a File/Blob, bytes, a file path or a stream with options.size')
}
