// Drives Debian's headless Chromium through playwright-core (from npm,
// installed by test_browser_cors.py with npm ci under build/) so that a
// page on one origin fetch()es the daemon on another: the browser itself
// sends the CORS preflights and decides what the page may read.
//
//   node cors.js JOB.json
//
// JOB: {"chromium": PATH, "pages": [{"url": PAGE_URL, "base": DAEMON_URL,
//       "steps": [STEP, ...]}, ...]}
// STEP: {"name": S, "method": M, "url": U, "headers": {...}, "body": TEXT,
//        "read": [HEADER, ...], "save": {VAR: HEADER}}
// A url (or header value) of the form "$VAR" is a header saved by an
// earlier step, resolved against "base". The body is sent as bytes, so the
// browser adds no Content-Type of its own. Prints one JSON line:
// {"launch_error": S} if Chromium cannot start, else {"pages": [[RESULT,
// ...], ...]} with RESULT {name, status, headers: {HEADER: value|null},
// text, error} — error is the TypeError fetch() gives when CORS blocks.
'use strict'

const { runDriver } = require('./launch.js')

// Runs inside the page: the origin is the page's, not the daemon's.
async function runSteps({ base, steps }) {
  const vars = {}
  const subst = (v) => (typeof v === 'string' && v.startsWith('$')
    ? new URL(vars[v.slice(1)], base).href : v)
  const out = []
  for (const s of steps) {
    const r = { name: s.name, status: null, headers: {}, text: null,
      error: null }
    try {
      const headers = {}
      for (const [k, v] of Object.entries(s.headers || {})) headers[k] = v
      const res = await fetch(subst(s.url), {
        method: s.method, headers, mode: 'cors', cache: 'no-store',
        body: s.body == null ? undefined : new TextEncoder().encode(s.body),
      })
      r.status = res.status
      for (const h of s.read || []) r.headers[h] = res.headers.get(h)
      for (const [k, h] of Object.entries(s.save || {}))
        vars[k] = res.headers.get(h)
      r.text = await res.text()
    } catch (e) {
      r.error = String(e)
    }
    out.push(r)
  }
  return out
}

runDriver(async (browser, job) => {
  const pages = []
  for (const p of job.pages) {
    const page = await browser.newPage()
    await page.goto(p.url)
    pages.push(await page.evaluate(runSteps, p))
    await page.close()
  }
  return { pages }
})
