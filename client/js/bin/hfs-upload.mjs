#!/usr/bin/env node
// hfs-upload: the Node side of ResilientUploader as a command.
//
//   node client/js/bin/hfs-upload.mjs FILE SIGNED_URL [--state FILE.json]
//        [--chunk-size N] [--parallel N] [--max-retries N] [--retry-delay MS]
//        [--max-retry-delay MS] [--timeout MS] [--sha256 [HEX]] [--session-id ID]
//        [--seed N] [--stdin-size N] [--progress]
//
// FILE "-" reads standard input (then --stdin-size is the byte count).
// --state remembers the session in a JSON file, so the same command run
// again after a kill resumes it. Prints one JSON line on success
// ({"status":201,"url":...,"requests":N}), or the error on stderr and exits
// 1 (final answer from the server: the reason is printed) or 2 (usage).
import { ResilientUploader } from '../src/index.js'

function usage(msg) {
  process.stderr.write(`hfs-upload: ${msg}\nusage: hfs-upload FILE SIGNED_URL [options]\n`)
  process.exit(2)
}

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(`usage: hfs-upload FILE SIGNED_URL [--state FILE.json] [--chunk-size N]
  [--parallel N] [--max-retries N] [--retry-delay MS] [--max-retry-delay MS]
  [--timeout MS] [--sha256 [HEX]] [--session-id ID] [--seed N] [--stdin-size N]
  [--progress]
FILE "-" reads standard input (give its size with --stdin-size). --state
remembers the session so that the same command run again resumes it.
Exit status: 0 uploaded, 1 failed (the server's reason is printed), 2 usage.
`)
  process.exit(0)
}
const pos = []
const opt = {}
const num = (v, name) => {
  const n = Number(v)
  if (!Number.isFinite(n)) usage(`${name} wants a number`)
  return n
}
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  const val = () => (i + 1 < args.length ? args[++i] : usage(`${a} wants a value`))
  switch (a) {
    case '--state': opt.storage = val(); break
    case '--chunk-size': opt.chunkSize = num(val(), a); break
    case '--parallel': opt.parallel = num(val(), a); break
    case '--max-retries': opt.maxRetries = num(val(), a); break
    case '--retry-delay': opt.retryDelay = num(val(), a); break
    case '--max-retry-delay': opt.maxRetryDelay = num(val(), a); break
    case '--timeout': opt.timeout = num(val(), a); break
    case '--session-id': opt.sessionId = val(); break
    case '--stdin-size': opt.size = num(val(), a); break
    case '--progress': opt.progress = true; break
    case '--seed': {
      // Deterministic jitter for tests: a small LCG.
      let s = num(val(), a) >>> 0
      opt.random = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32)
      break
    }
    case '--sha256':
      opt.sha256 = (args[i + 1] && /^[0-9a-fA-F]{64}$/.test(args[i + 1])) ? args[++i] : true
      break
    default:
      if (a.startsWith('--')) usage(`unknown option ${a}`)
      pos.push(a)
  }
}
if (pos.length !== 2) usage('FILE and SIGNED_URL are required')
const source = pos[0] === '-' ? process.stdin : pos[0]
if (opt.storage === undefined) opt.storage = false
if (opt.storage === false) delete opt.storage
const progress = opt.progress
delete opt.progress
if (progress) {
  opt.onProgress = (held, total) =>
    process.stderr.write(`progress ${held} ${total}\n`)
}
opt.onChunk = (c) => {
  if (c.error) process.stderr.write(`chunk ${c.start}-${c.end - 1}: ${c.error.message}\n`)
}

const up = new ResilientUploader(source, pos[1], opt)
process.on('SIGINT', () => up.abort('interrupted'))
try {
  const r = await up.upload()
  process.stdout.write(JSON.stringify({ ...r, requests: up.requests }) + '\n')
} catch (e) {
  process.stderr.write(`hfs-upload: ${e.message}\n`)
  process.exit(1)
}
