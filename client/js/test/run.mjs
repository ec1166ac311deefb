// Runs node --test on this folder and ends with the summary line
// tests/run.sh reads: "client_js_unit: N passed, N failed".
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const files = readdirSync(here).filter((f) => f.endsWith('.test.mjs')).sort()
  .map((f) => join(here, f))
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files],
  { encoding: 'utf8', timeout: 120000 })
process.stdout.write(r.stdout || '')
process.stderr.write(r.stderr || '')
const pass = Number(/ℹ pass (\d+)/.exec(r.stdout || '')?.[1] ?? 0)
let fail = Number(/ℹ fail (\d+)/.exec(r.stdout || '')?.[1] ?? 0)
if (r.status !== 0 && fail === 0) fail = 1
if (pass + fail === 0) fail = 1
console.log(`client_js_unit: ${pass} passed, ${fail} failed`)
process.exit(fail ? 1 : 0)
