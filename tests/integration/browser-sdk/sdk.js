// Drives Debian's headless Chromium (playwright-core, installed from
// tests/integration/browser/'s lock file by test_client_js.py) through
// client/js/example/index.html: choose a file, optionally pause and resume,
// optionally reload the page in the middle and choose the file again, wait
// for the end. The page exposes window.hfsState.
//
//   node sdk.js JOB.json
//
// JOB: {"chromium": PATH, "runs": [{"url": PAGE_URL, "file": PATH,
//        "pauseAt": FRACTION?, "reloadAt": FRACTION?, "timeout": MS}]}
// Prints one JSON line: {"launch_error": S} or {"runs": [RESULT, ...]} with
// RESULT {state (the page's hfsState at the end), paused: {before, after}?,
// reloadedAt?: bytes held when the page was reloaded, console: [...]}.
'use strict'

const fs = require('fs')
const { chromium } = require('playwright-core')

const held = (frac) => `window.hfsState && window.hfsState.total > 0 &&
  window.hfsState.held >= ${frac} * window.hfsState.total`
const ended = `window.hfsState && ['done', 'failed', 'aborted'].includes(window.hfsState.phase)`

async function run(browser, r) {
  const ctx = await browser.newContext()
  const page = await ctx.newPage()
  const out = { console: [] }
  page.on('console', (m) => out.console.push(m.text()))
  page.on('pageerror', (e) => out.console.push('pageerror: ' + e.message))
  const timeout = r.timeout || 60000
  await page.goto(r.url)
  await page.setInputFiles('#file', r.file)
  if (r.pauseAt != null) {
    await page.waitForFunction(held(r.pauseAt), null, { timeout, polling: 5 })
    await page.click('#pause')
    await page.waitForTimeout(300)   // requests in flight end
    const before = await page.evaluate(() => window.hfsState.held)
    await page.waitForTimeout(700)
    const after = await page.evaluate(() => window.hfsState.held)
    out.paused = { before, after }
    await page.click('#resume')
  }
  if (r.reloadAt != null) {
    await page.waitForFunction(held(r.reloadAt), null, { timeout, polling: 5 })
    await page.reload()
    out.reloadedAt = null
    out.pending = await page.evaluate(() =>
      Object.keys(localStorage).filter((k) => k.startsWith('hfs-upload:')).length)
    await page.setInputFiles('#file', r.file)
  }
  await page.waitForFunction(ended, null, { timeout, polling: 20 })
  out.state = await page.evaluate(() => window.hfsState)
  out.leftInStorage = await page.evaluate(() =>
    Object.keys(localStorage).filter((k) => k.startsWith('hfs-upload:')).length)
  await ctx.close()
  return out
}

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
  let browser
  try {
    browser = await chromium.launch({
      executablePath: job.chromium, headless: true,
      args: ['--no-sandbox', '--no-proxy-server'],
    })
  } catch (e) {
    process.stdout.write(JSON.stringify({ launch_error: String(e) }) + '\n')
    return
  }
  try {
    const runs = []
    for (const r of job.runs) runs.push(await run(browser, r))
    process.stdout.write(JSON.stringify({ runs }) + '\n')
  } finally {
    await browser.close()
  }
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: String(err && err.stack || err) }) + '\n')
  process.exit(1)
})
