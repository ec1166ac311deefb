// Drives ResilientUploader's API in Node the way an application would
// (test_client_js.py): callbacks, parallel requests, an AbortSignal. It
// records what the callbacks reported and how many requests were in flight
// at once (through the `fetch` option, wrapping Node's own fetch).
//
//   node api.mjs JOB.json
//
// JOB: {file, url, chunkSize, parallel, storage?, abortAt?: FRACTION}
// Prints one JSON line: {result | error: {name, message}, state,
// progress: [[held, total], ...], chunks: [{start, end, status, error?}],
// maxInFlight, storageLeft?: keys left in the storage file}.
import fs from 'node:fs'
import { ResilientUploader } from '../../../client/js/src/index.js'

const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const out = { progress: [], chunks: [], maxInFlight: 0 }
let inFlight = 0
const ctl = new AbortController()

const opts = {
  chunkSize: job.chunkSize,
  parallel: job.parallel,
  retryDelay: 20,
  signal: ctl.signal,
  onProgress(held, total) {
    out.progress.push([held, total])
    if (job.abortAt != null && held >= job.abortAt * total) ctl.abort()
  },
  onChunk(c) {
    out.chunks.push({ start: c.start, end: c.end, status: c.status,
      error: c.error ? c.error.message : undefined })
  },
  async fetch(url, init) {
    inFlight++
    out.maxInFlight = Math.max(out.maxInFlight, inFlight)
    try {
      const res = await fetch(url, init)
      // Wait for the body too: the request is in flight until answered.
      const body = await res.arrayBuffer()
      return new Response(res.status === 204 || res.status === 304 ||
        init.method === 'HEAD' ? null : body,
      { status: res.status, statusText: res.statusText, headers: res.headers })
    } finally {
      inFlight--
    }
  },
}
if (job.storage) opts.storage = job.storage

const up = new ResilientUploader(job.file, job.url, opts)
try {
  out.result = await up.upload()
} catch (e) {
  out.error = { name: e.name, message: e.message }
}
out.state = up.state
if (job.storage) {
  try {
    out.storageLeft = Object.keys(JSON.parse(fs.readFileSync(job.storage, 'utf8')))
  } catch (e) {
    out.storageLeft = String(e.code || e)
  }
}
process.stdout.write(JSON.stringify(out) + '\n')
