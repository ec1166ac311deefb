// Pure arithmetic of the chunked protocol: held ranges, what is left to
// send, how to cut it into requests, and the retry back-off. No I/O, so
// node --test checks it exactly (test/ranges.test.mjs, test/backoff.test.mjs).
//
// Ranges are [start, end) pairs, end exclusive; the server's
// X-Upload-Ranges lists inclusive "FIRST-LAST" pairs ("0-1048575,3145728-4194303").

/** "0-4,10-19" -> [[0,5],[10,20]] (sorted, merged). Throws on garbage. */
export function parseRanges(header) {
  const out = []
  if (header == null) return out
  for (const part of String(header).split(',')) {
    const p = part.trim()
    if (p === '') continue
    const m = /^(\d+)-(\d+)$/.exec(p)
    if (!m) throw new Error(`malformed X-Upload-Ranges item "${p}"`)
    const a = Number(m[1]), b = Number(m[2])
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || b < a)
      throw new Error(`malformed X-Upload-Ranges item "${p}"`)
    out.push([a, b + 1])
  }
  return normalize(out)
}

/** [[0,5],[10,20]] -> "0-4,10-19" */
export function formatRanges(ranges) {
  return ranges.map(([a, b]) => `${a}-${b - 1}`).join(',')
}

/** Sorts and merges overlapping or touching ranges; drops empty ones. */
export function normalize(ranges) {
  const rs = ranges.filter(([a, b]) => b > a).map(([a, b]) => [a, b])
  rs.sort((x, y) => x[0] - y[0] || x[1] - y[1])
  const out = []
  for (const r of rs) {
    const last = out[out.length - 1]
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1])
    else out.push(r)
  }
  return out
}

/** held ∪ [[a,b]] */
export function addRange(held, a, b) {
  return normalize([...held, [a, b]])
}

/** Total bytes covered. */
export function heldBytes(held) {
  return held.reduce((n, [a, b]) => n + (b - a), 0)
}

/** The gaps of [0,total) not covered by held. */
export function missingRanges(held, total) {
  const out = []
  let pos = 0
  for (const [a, b] of normalize(held)) {
    if (a >= total) break
    if (a > pos) out.push([pos, a])
    pos = Math.max(pos, b)
  }
  if (pos < total) out.push([pos, total])
  return out
}

/**
 * The requests to send: every gap cut into pieces of at most chunkSize,
 * never crossing a held byte. Pieces start at the chunk grid (multiples of
 * chunkSize) where they can, so a gap left by a cut connection in the
 * middle of a chunk is filled by one short piece and the rest stays
 * aligned with what a numbered-chunk client would send.
 */
export function planChunks(held, total, chunkSize) {
  if (!(chunkSize > 0)) throw new Error('chunkSize must be positive')
  const out = []
  for (const [a, b] of missingRanges(held, total)) {
    let s = a
    while (s < b) {
      const grid = (Math.floor(s / chunkSize) + 1) * chunkSize
      const e = Math.min(b, grid)
      out.push([s, e])
      s = e
    }
  }
  return out
}

/**
 * Delay before retry number `attempt` (1 for the first retry):
 * retryDelay · 2^(attempt−1), capped at maxRetryDelay, plus up to
 * `jitter` (a fraction) of that at random, the whole still capped.
 * rand: () => [0,1).
 */
export function backoffDelay(attempt, { retryDelay = 2000,
  maxRetryDelay = 60000, jitter = 0.25 } = {}, rand = Math.random) {
  const n = Math.max(1, Math.floor(attempt))
  const base = Math.min(maxRetryDelay, retryDelay * 2 ** Math.min(n - 1, 52))
  return Math.round(Math.min(maxRetryDelay, base + base * jitter * rand()))
}

/**
 * Retry-After (seconds or an HTTP date) -> milliseconds, or null.
 * now: ms since the epoch.
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null) return null
  const v = String(value).trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  const t = Date.parse(v)
  if (Number.isNaN(t)) return null
  return Math.max(0, t - now)
}

/** Statuses after which the upload goes on (status, then retry). */
export const RETRYABLE_4XX = new Set([408, 409, 423, 429])

/** Is an HTTP answer final (the upload fails with the server's reason)? */
export function isFinalStatus(status) {
  if (status >= 200 && status < 300) return false
  if (status >= 500) return status === 501 || status === 505
  if (status === 503) return false
  if (RETRYABLE_4XX.has(status)) return false
  return status >= 400
}
