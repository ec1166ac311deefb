// ResilientUploader: one file to one signed URL of hmac-file-server with
// the chunked protocol (docs/protocol.md, "Chunked uploads with
// X-Upload-Session-ID"): PUTs of byte ranges with Content-Range under one
// X-Upload-Session-ID, any order, any connection. The server keeps every
// acknowledged byte; this client's job is never to throw one away:
//
//   * before sending, and after every failure, it asks the server what it
//     holds (HEAD with the session ID: X-Upload-Ranges) and sends only the
//     gaps (ranges.js planChunks);
//   * failures are retried with exponential back-off and jitter, 503/429
//     after their Retry-After; the retry budget (maxRetries) counts
//     failures in a row without progress, so a link that drops every few
//     seconds still finishes a large file;
//   * a 4xx other than 408/409/423/429 (and 501/505) is final: upload()
//     rejects with the server's reason;
//   * the session ID is remembered (storage) until the file is complete,
//     so a reloaded page or a restarted process resumes the same session.
//
// It sends no X-Chunk-Number/X-Total-Chunks: the daemon checks those
// against its own uploads.chunksize, which a client cannot know, and
// answers 400 when they disagree. Content-Range alone is the whole
// protocol.

import { addRange, backoffDelay, heldBytes, isFinalStatus, normalize,
  parseRanges, parseRetryAfter, planChunks } from './ranges.js'
import { defaultStorage, fileStorage } from './storage.js'
import { toSource } from './source.js'

const MiB = 1024 * 1024

export class UploadError extends Error {
  constructor(message, { status = null, reason = '', final = false,
    retryAfter = null, cause } = {}) {
    super(message, cause ? { cause } : undefined)
    this.name = 'UploadError'
    this.status = status
    this.reason = reason
    this.final = final
    this.retryAfter = retryAfter
  }
}

class Interrupted extends Error {}

function abortError(reason) {
  if (reason instanceof Error) return reason
  const e = new Error(reason ? String(reason) : 'upload aborted')
  e.name = 'AbortError'
  return e
}

/** 128 random bits, 32 hex digits (a valid X-Upload-Session-ID). */
export function newSessionId() {
  const b = new Uint8Array(16)
  globalThis.crypto.getRandomValues(b)
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}

/** The signed URL without its query: where the file can be downloaded. */
export function getUrlOf(signedUrl) {
  const u = new URL(signedUrl, globalThis.location?.href)
  u.search = ''
  u.hash = ''
  return u.href
}

const SESSION_ID_RE = /^[A-Za-z0-9._-]{1,128}$/

export class ResilientUploader {
  /**
   * source: File/Blob, Uint8Array/ArrayBuffer, a file path (Node), or a
   *   stream (Node Readable, ReadableStream, async iterable) with
   *   options.size.
   * signedUrl: the PUT URL the XMPP server handed out.
   */
  constructor(source, signedUrl, options = {}) {
    if (!signedUrl) throw new TypeError('signedUrl is required')
    const o = {
      chunkSize: 5 * MiB, parallel: 1, maxRetries: 5, retryDelay: 2000,
      maxRetryDelay: 60000, jitter: 0.25, maxRetryAfter: 300000,
      timeout: 120000, sessionId: null, sha256: null, signal: null,
      onProgress: null, onChunk: null, storage: undefined,
      contentType: undefined, size: undefined, name: undefined,
      fetch: null, random: Math.random, ...options,
    }
    if (!Number.isSafeInteger(o.chunkSize) || o.chunkSize < 1)
      throw new RangeError('chunkSize must be a positive integer')
    if (!Number.isInteger(o.parallel) || o.parallel < 1 || o.parallel > 4)
      throw new RangeError('parallel must be 1 to 4')
    if (!Number.isInteger(o.maxRetries) || o.maxRetries < 0)
      throw new RangeError('maxRetries must be a non-negative integer')
    if (o.sessionId != null && !SESSION_ID_RE.test(o.sessionId))
      throw new RangeError('sessionId: 1-128 of A-Z a-z 0-9 . _ -')
    if (typeof o.sha256 === 'string' && !/^[0-9a-fA-F]{64}$/.test(o.sha256))
      throw new RangeError('sha256: 64 hex digits, or true to compute it')
    if (typeof o.storage === 'string') o.storage = fileStorage(o.storage)
    else if (o.storage === undefined) o.storage = defaultStorage()
    this.options = o
    this.source = source
    this.signedUrl = signedUrl
    this.url = getUrlOf(signedUrl)
    this.sessionId = o.sessionId
    this.state = 'idle'            // idle running paused done failed aborted
    this.held = []                 // what the server told us it holds
    this.total = null
    this.requests = 0              // HTTP requests sent (PUT and HEAD)
    this._fetch = o.fetch || globalThis.fetch.bind(globalThis)
    this._inflight = new Set()
    this._paused = false
    this._aborted = null
    this._wakers = []
    this._promise = null
    this._cache = []               // bodies of a stream not yet held
    this._readChain = Promise.resolve()
    if (o.signal) {
      if (o.signal.aborted) this.abort(o.signal.reason)
      else o.signal.addEventListener('abort', () => this.abort(o.signal.reason),
        { once: true })
    }
  }

  /** Starts (once) and returns the promise of {status, url, size, sessionId}. */
  upload() {
    if (!this._promise) {
      this._promise = this._run().finally(() => this._detachNetwork())
      this._promise.catch(() => {})
    }
    return this._promise
  }

  /** Stops sending (requests in flight are cut; the server keeps what it got). */
  pause() {
    if (this.state === 'done' || this._aborted) return
    this._paused = true
    if (this.state === 'running') this.state = 'paused'
    this._interruptAll('paused')
  }

  /** Goes on after pause() (asking the server first what it holds). */
  resume() {
    this._paused = false
    if (this.state === 'paused') this.state = 'running'
    this._wake()
  }

  /** Gives up: upload() rejects with an AbortError, the session is forgotten. */
  abort(reason) {
    if (this._aborted || this.state === 'done') return
    this._aborted = abortError(reason)
    this.state = 'aborted'
    this._interruptAll('aborted')
    this._wake()
  }

  // ------------------------------------------------------------ the loop

  async _run() {
    const o = this.options
    this.state = this._paused ? 'paused' : 'running'
    this._attachNetwork()
    try {
      const src = this._src = await toSource(this.source, o)
      const total = this.total = src.size
      this._storageKey = `${this.url}|${total}|${src.id}`
      await this._gate()
      if (total === 0) return await this._finish(await this._putWhole())
      if (!this.sessionId) {
        const saved = await o.storage.get(this._storageKey)
        this.sessionId = saved?.sessionId && SESSION_ID_RE.test(saved.sessionId)
          ? saved.sessionId : newSessionId()
      }
      await o.storage.set(this._storageKey, { sessionId: this.sessionId,
        url: this.url, size: total, name: src.name, started: Date.now() })
      this._digest = typeof o.sha256 === 'string' ? o.sha256.toLowerCase() : null
      if (o.sha256 === true) {
        if (src.sha256) this._digest = await src.sha256()
        else await src.startDigest()      // a stream: hashed as it is read
      }
      let failures = 0
      let best = -1
      let lastError = null
      for (;;) {
        await this._gate()
        let err = null
        try {
          const done = await this._round()
          if (done) return await this._finish(done)
        } catch (e) {
          if (this._aborted) throw this._aborted
          if (e instanceof Interrupted) continue
          if (e instanceof UploadError && e.final) throw e
          err = e
        }
        const have = heldBytes(this.held)
        if (have > best) { best = have; failures = 0 }
        if (err) lastError = err
        failures++
        if (failures > o.maxRetries) {
          const why = lastError ? lastError.message : 'no progress'
          throw new UploadError(`gave up after ${o.maxRetries} retries without progress: ${why}`,
            { status: lastError?.status ?? null, reason: lastError?.reason ?? '',
              final: true, cause: lastError })
        }
        let delay = backoffDelay(failures, o, o.random)
        if (err && err.retryAfter != null) delay = Math.min(err.retryAfter, o.maxRetryAfter)
        await this._sleep(delay)
      }
    } catch (e) {
      this.state = this._aborted ? 'aborted' : 'failed'
      if (this._aborted) await this._forget()
      await this._closeSource()
      throw this._aborted || e
    }
  }

  /** One round: status, then every gap. Returns the final answer or null. */
  async _round() {
    const st = await this._status()
    if (st.complete) return { status: 200 }
    this.held = st.held
    this._report()
    const plan = planChunks(this.held, this.total, this.options.chunkSize)
    if (plan.length === 0) return null   // all held, not yet published: ask again
    let next = 0
    let failure = null
    let deferred = null
    let result = null
    const worker = async (limit = Infinity) => {
      for (let k = 0; k < limit && !failure && !result && next < plan.length; k++) {
        const [a, b] = plan[next++]
        try {
          const r = await this._putChunk(a, b)
          if (r) result = r
        } catch (e) {
          // A 503 on a session that exists is about this range (the
          // server still sees a dead connection writing it): send the
          // other gaps meanwhile, and wait Retry-After only for this one.
          if (st.exists && e.status === 503 && e.retryAfter != null) {
            deferred = e
            continue
          }
          if (!failure || (e.final && !failure.final)) failure = e
          if (e.final) this._interruptAll('failed')
        }
      }
    }
    // A session the server does not have yet is created by one request
    // alone: parallel first chunks would find it "being created" and get a
    // 503 (Retry-After) each.
    if (!st.exists && this.options.parallel > 1) await worker(1)
    const n = Math.min(this.options.parallel, plan.length - next)
    await Promise.all(Array.from({ length: Math.max(n, 0) }, () => worker()))
    if (result) return result
    if (failure) throw failure
    if (deferred) throw deferred
    return null
  }

  /** HEAD with the session ID: {held, complete}. */
  async _status() {
    const res = await this._request('HEAD', {
      'X-Upload-Session-ID': this.sessionId })
    if (res.status === 404) return { held: [], complete: false, exists: false }
    if (res.status !== 200) throw await this._httpError(res, 'status')
    const off = Number(res.headers.get('Upload-Offset'))
    const len = Number(res.headers.get('Upload-Length'))
    const ranges = res.headers.get('X-Upload-Ranges')
    if (res.headers.get('Upload-Offset') == null) {
      // A published file answered, not a session: nothing of ours is held.
      return { held: [], complete: false, exists: false }
    }
    if (len === this.total && off === this.total && ranges == null)
      return { held: [[0, this.total]], complete: true, exists: true }
    let held = ranges != null ? parseRanges(ranges) : (off > 0 ? [[0, off]] : [])
    return { held: normalize(held), complete: false, exists: true }
  }

  /** PUT of [a, b): null while incomplete, the answer once complete. */
  async _putChunk(a, b) {
    const body = await this._read(a, b)
    const headers = {
      'X-Upload-Session-ID': this.sessionId,
      'Content-Range': `bytes ${a}-${b - 1}/${this.total}`,
    }
    const digest = this._digest || this._src.digestSoFar?.()
    if (digest) headers['X-Content-SHA256'] = digest
    let res
    try {
      res = await this._request('PUT', headers, body)
    } catch (e) {
      // No answer (a cut connection, a timeout): still a failed chunk for
      // onChunk. Not a pause or an abort, which are the caller's own.
      if (e instanceof UploadError)
        this.options.onChunk?.({ start: a, end: b, status: null, error: e })
      throw e
    }
    const info = { start: a, end: b, status: res.status }
    if (res.status === 200 || res.status === 201) {
      await res.arrayBuffer().catch(() => {})
      const ranges = res.headers.get('X-Upload-Ranges')
      const off = Number(res.headers.get('Upload-Offset'))
      this.held = addRange(this.held, a, b)
      if (ranges != null) this.held = normalize([...this.held, ...parseRanges(ranges)])
      else if (off > 0) this.held = addRange(this.held, 0, off)
      this._dropCached()
      this._report()
      this.options.onChunk?.(info)
      if (res.status === 201) return { status: 201 }
      if (ranges == null && off === this.total) return { status: 200 }
      return null
    }
    const err = await this._httpError(res, `bytes ${a}-${b - 1}`)
    this.options.onChunk?.({ ...info, error: err })
    throw err
  }

  /** An empty file: one plain PUT (a range of nothing cannot be written). */
  async _putWhole() {
    for (let failures = 0; ; failures++) {
      await this._gate()
      try {
        const res = await this._request('PUT', {}, new Uint8Array(0))
        if (res.status === 200 || res.status === 201) return { status: res.status }
        throw await this._httpError(res, 'PUT')
      } catch (e) {
        if (this._aborted) throw this._aborted
        if (e instanceof Interrupted) continue
        if (e.final || failures >= this.options.maxRetries) throw e
        await this._sleep(e.retryAfter ?? backoffDelay(failures + 1, this.options,
          this.options.random))
      }
    }
  }

  async _finish(done) {
    this.state = 'done'
    this.held = [[0, this.total]]
    this._report()
    await this._forget()
    await this._closeSource()
    return { status: done.status, url: this.url, size: this.total,
      sessionId: this.sessionId }
  }

  async _forget() {
    if (this._storageKey) {
      try { await this.options.storage.remove(this._storageKey) } catch { /* best effort */ }
    }
  }

  async _closeSource() {
    try { await this._src?.close?.() } catch { /* nothing to do */ }
  }

  _report() {
    this.options.onProgress?.(heldBytes(this.held), this.total, this.held)
  }

  // ------------------------------------------------------------ reading

  /** A range of the source; a stream's chunks stay cached until held. */
  _read(a, b) {
    const src = this._src
    if (!src.sequential) return src.read(a, b)
    const run = async () => {
      for (const c of this._cache)
        if (c.a <= a && b <= c.b) return c.body.subarray(a - c.a, b - c.a)
      const body = await src.read(a, b)
      this._cache.push({ a, b, body })
      return body
    }
    return (this._readChain = this._readChain.then(run, run))
  }

  _dropCached() {
    this._cache = this._cache.filter((c) =>
      !this.held.some(([x, y]) => x <= c.a && c.b <= y))
  }

  // ------------------------------------------------------------ HTTP

  async _request(method, headers, body) {
    this._check()
    const ctl = new AbortController()
    this._inflight.add(ctl)
    const t = this.options.timeout > 0
      ? setTimeout(() => ctl.abort('timeout'), this.options.timeout) : null
    const h = { ...headers }
    if (this.options.contentType !== undefined && method === 'PUT')
      h['Content-Type'] = this.options.contentType
    if (body instanceof Blob && !h['Content-Type']) body = body.slice(0, body.size, '')
    this.requests++
    try {
      return await this._fetch(this.signedUrl, {
        method, headers: h, body, signal: ctl.signal, cache: 'no-store',
        ...(body && !(body instanceof Blob) ? { duplex: 'half' } : {}),
      })
    } catch (e) {
      if (this._aborted) throw this._aborted
      if (ctl.signal.aborted && ctl.signal.reason !== 'timeout') {
        if (ctl.signal.reason === 'failed') throw new UploadError('cancelled: another request failed')
        throw new Interrupted(String(ctl.signal.reason))
      }
      throw new UploadError(`${method} failed: ${e.cause?.code || e.cause?.message || e.message}`,
        { cause: e })
    } finally {
      if (t) clearTimeout(t)
      this._inflight.delete(ctl)
    }
  }

  async _httpError(res, what) {
    let text = ''
    try { text = (await res.text()).trim() } catch { /* cut while reading */ }
    const final = isFinalStatus(res.status)
    let retryAfter = null
    if (res.status === 503 || res.status === 429)
      retryAfter = parseRetryAfter(res.headers.get('Retry-After'))
    const reason = text || res.statusText || ''
    return new UploadError(`${what}: HTTP ${res.status}${reason ? ` (${reason})` : ''}`,
      { status: res.status, reason, final, retryAfter })
  }

  // ------------------------------------------------------------ waiting

  _check() {
    if (this._aborted) throw this._aborted
    if (this._paused || this._offline()) throw new Interrupted('paused')
  }

  _offline() {
    const nav = globalThis.navigator
    return !!(nav && nav.onLine === false && globalThis.addEventListener)
  }

  /** Waits while paused or offline; throws once aborted. */
  async _gate() {
    while (!this._aborted && (this._paused || this._offline()))
      await new Promise((r) => this._wakers.push(r))
    if (this._aborted) throw this._aborted
    this.state = 'running'
  }

  _sleep(ms) {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(t)
        this._wakers = this._wakers.filter((w) => w !== done)
        this._aborted ? reject(this._aborted) : resolve()
      }
      const t = setTimeout(done, ms)
      // abort() ends the wait at once; resume() or `online` too (no point
      // waiting out a back-off once the link is known to be back).
      this._wakers.push(done)
    })
  }

  _wake() {
    const w = this._wakers
    this._wakers = []
    for (const f of w) f()
  }

  _interruptAll(reason) {
    for (const c of this._inflight) c.abort(reason)
  }

  _attachNetwork() {
    if (typeof globalThis.addEventListener !== 'function'
        || !globalThis.navigator || !('onLine' in globalThis.navigator)) return
    this._onOffline = () => this._interruptAll('offline')
    this._onOnline = () => this._wake()
    globalThis.addEventListener('offline', this._onOffline)
    globalThis.addEventListener('online', this._onOnline)
  }

  _detachNetwork() {
    if (!this._onOffline) return
    globalThis.removeEventListener('offline', this._onOffline)
    globalThis.removeEventListener('online', this._onOnline)
    this._onOffline = null
  }
}
