// Drives the stock tus-js-client (from npm, unmodified) for test_tus.py,
// which installs it with npm ci under build/ and sets NODE_PATH.
//
//   node client.js JOB.json
//
// JOB: {"mode": "upload", "uploads": [UPLOAD, ...]}   uploads one by one
//      {"mode": "abort",  "upload": UPLOAD, "abortAfter": BYTES}
//      {"mode": "resume", "upload": UPLOAD, "latest": bool}
// UPLOAD: {"endpoint": URL, "file": PATH, "source": "stream"|"buffer",
//          "chunkSize": N|null, "metadata": {...}, "storage": PATH|null,
//          "uploadDataDuringCreation": bool, "uploadLengthDeferred": bool,
//          "bytesPerSecond": N|null, "parallelUploads": N|null,
//          "metadataForPartialUploads": {...}|null,
//          "retryDelays": [MS, ...]|null,
//          "protocol": "tus-v1"|"ietf-draft-03"|"ietf-draft-05"|null}
// "abort" stops the upload (upload.abort(), no termination) once more than
// BYTES were sent; "resume" finds that upload again in the URL storage
// (findPreviousUploads + resumeFromPreviousUpload), as an app restarted
// after a crash would. bytesPerSecond paces request bodies like a slow
// link, through tus-js-client's own Node HTTP stack, so that an abort cuts
// a PATCH in the middle of its body. Prints one JSON line:
// [{url, ok, error, requests}] where requests lists [method, Upload-Offset
// sent, status, Upload-Offset answered] for every request the client
// started (status null: no answer, the request was cut).
'use strict'

const fs = require('fs')
const { Readable, Transform } = require('stream')
const tus = require('tus-js-client')

class SlowStack {
  constructor(bytesPerSecond) {
    this._inner = new tus.DefaultHttpStack()
    this._rate = bytesPerSecond
  }

  createRequest(method, url) {
    const req = this._inner.createRequest(method, url)
    const send = req.send.bind(req)
    const rate = this._rate
    req.send = (body) => {
      if (!(body instanceof Readable)) return send(body)
      const slow = new Transform({
        transform(chunk, enc, cb) {
          setTimeout(() => cb(null, chunk), (chunk.length / rate) * 1000)
        },
      })
      slow.size = body.size
      body.pipe(slow)
      return send(slow)
    }
    return req
  }

  getName() {
    return 'SlowStack'
  }
}

function source(u) {
  if (u.source === 'buffer') return fs.readFileSync(u.file)
  return fs.createReadStream(u.file)
}

function options(u, log, extra) {
  const o = {
    endpoint: u.endpoint,
    metadata: u.metadata || {},
    retryDelays: [0, 200, 500, 1000],
    uploadDataDuringCreation: !!u.uploadDataDuringCreation,
    uploadLengthDeferred: !!u.uploadLengthDeferred,
    removeFingerprintOnSuccess: true,
    onBeforeRequest(req) {
      req._hfs = [req.getMethod(), req.getHeader('Upload-Offset') ?? null,
        null, null]
      log.push(req._hfs)
    },
    onAfterResponse(req, res) {
      req._hfs[2] = res.getStatus()
      req._hfs[3] = res.getHeader('Upload-Offset') ?? null
    },
    ...extra,
  }
  if (u.chunkSize) o.chunkSize = u.chunkSize
  if (u.parallelUploads) o.parallelUploads = u.parallelUploads
  if (u.metadataForPartialUploads) {
    o.metadataForPartialUploads = u.metadataForPartialUploads
  }
  if (u.retryDelays) o.retryDelays = u.retryDelays
  if (u.protocol) o.protocol = u.protocol
  if (u.bytesPerSecond) o.httpStack = new SlowStack(u.bytesPerSecond)
  if (u.storage) {
    o.urlStorage = new tus.FileUrlStorage(u.storage)
    o.storeFingerprintForResuming = true
  }
  return o
}

function run(u, extra, before) {
  return new Promise((resolve) => {
    const log = []
    let upload
    const done = (ok, error) =>
      resolve({ url: upload.url, ok, error: error ? String(error) : null,
        requests: log })
    upload = new tus.Upload(source(u), options(u, log, {
      onSuccess: () => done(true, null),
      onError: (err) => done(false, err),
      ...extra((ok, err) => done(ok, err), () => upload),
    }))
    Promise.resolve(before ? before(upload) : null)
      .then(() => upload.start())
      .catch((err) => done(false, err))
  })
}

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
  const out = []
  if (job.mode === 'upload') {
    for (const u of job.uploads) out.push(await run(u, () => ({})))
  } else if (job.mode === 'abort') {
    out.push(await run(job.upload, (done, up) => ({
      onProgress(sent) {
        if (sent > job.abortAfter && !up()._hfsAborted) {
          up()._hfsAborted = true
          up().abort(false).then(() => done(false, 'aborted'))
        }
      },
    })))
  } else if (job.mode === 'resume') {
    out.push(await run(job.upload, () => ({}), async (upload) => {
      const prev = await upload.findPreviousUploads()
      // A parallel upload that retried after errors may have stored itself
      // more than once ("latest": take the newest, as an app would).
      if (prev.length < 1 || (prev.length > 1 && !job.latest)) {
        throw new Error(`found ${prev.length} uploads`)
      }
      upload.resumeFromPreviousUpload(prev[prev.length - 1])
    }))
  } else {
    throw new Error(`unknown mode ${job.mode}`)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  process.stdout.write(JSON.stringify([{ ok: false, error: String(err) }]) +
    '\n')
  process.exit(1)
})
