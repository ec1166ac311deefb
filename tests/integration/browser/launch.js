// What every browser driver of the tests shares: read the job file named on
// the command line, start Debian's headless Chromium (playwright-core), hand
// both to the driver's own work, and print its result as one JSON line.
// A Chromium that cannot start prints {"launch_error": S} (the test skips);
// a failure of the work prints {"error": S} and exits 1.
const fs = require('fs')
const { chromium } = require('playwright-core')

async function drive(work) {
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
    process.stdout.write(JSON.stringify(await work(browser, job)) + '\n')
  } finally {
    await browser.close()
  }
}

function runDriver(work) {
  drive(work).catch((err) => {
    process.stdout.write(JSON.stringify({ error: String(err && err.stack || err) }) + '\n')
    process.exit(1)
  })
}

module.exports = { runDriver }
