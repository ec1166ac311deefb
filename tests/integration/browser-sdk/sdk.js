// Drives Debian's headless Chromium (playwright-core, installed from
// tests/integration/browser/'s lock file by test_client_js.py) through
// client/js/example/index.html: choose a file, optionally pause and resume,
// optionally reload the page in the middle and choose the file again,
// optionally take the browser offline for a while (context.setOffline: the
// page sees navigator.onLine false and an `offline` event), wait for the
// end. The page exposes window.hfsState.
//
//   node sdk.js JOB.json
//
// JOB: {"chromium": PATH, "runs": [{"url": PAGE_URL, "file": PATH,
//        "pauseAt": FRACTION?, "reloadAt": FRACTION?,
//        "offlineAt": FRACTION?, "offlineMs": MS?, "metrics": URL?,
//        "timeout": MS}]}
// Prints one JSON line: {"launch_error": S} or {"runs": [RESULT, ...]} with
// RESULT {state (the page's hfsState at the end), paused: {before, after}?,
// reloadedAt?: bytes held when the page was reloaded, offline: {onLine,
// events, at (bytes held when it went offline), held: [..], received: [..], phase}? (held and the daemon's
// hfs_bytes_received_total from `metrics`, read by node, not the page, at
// the start and the end of the offline spell), console: [...]}.
'use strict'

const { runDriver } = require('../browser/launch.js')

const held = (frac) => `window.hfsState && window.hfsState.total > 0 &&
  window.hfsState.held >= ${frac} * window.hfsState.total`
const ended = `window.hfsState && ['done', 'failed', 'aborted'].includes(window.hfsState.phase)`

// The daemon's hfs_bytes_received_total, read outside the browser.
async function received(url) {
  const text = await (await fetch(url)).text()
  const m = /^hfs_bytes_received_total(?:\{\})? (\d+)/m.exec(text)
  return m ? Number(m[1]) : null
}

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
  if (r.offlineAt != null) {
    await page.evaluate(() => {
      window.offlineEvents = 0
      addEventListener('offline', () => window.offlineEvents++)
    })
    await page.waitForFunction(held(r.offlineAt), null, { timeout, polling: 5 })
    const at = await page.evaluate(() => window.hfsState.held)
    await ctx.setOffline(true)
    const onLine = await page.evaluate(() => navigator.onLine)
    await page.waitForTimeout(300)   // the cut requests end
    const h0 = await page.evaluate(() => window.hfsState.held)
    const r0 = await received(r.metrics)
    await page.waitForTimeout(r.offlineMs || 2000)
    const h1 = await page.evaluate(() => window.hfsState.held)
    const r1 = await received(r.metrics)
    out.offline = { onLine, at, held: [h0, h1], received: [r0, r1],
      events: await page.evaluate(() => window.offlineEvents),
      phase: await page.evaluate(() => window.hfsState.phase) }
    await ctx.setOffline(false)
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

runDriver(async (browser, job) => {
  const runs = []
  for (const r of job.runs) runs.push(await run(browser, r))
  return { runs }
})
