// Where an uploader remembers its session (the session ID, nothing the
// server does not know better) so that a page reload or a restarted
// process resumes it. A store is any object with async-or-sync
// get(key) -> value|null, set(key, value), remove(key); values are plain
// JSON objects.

/** In memory: survives pause/resume, not a reload. */
export function memoryStorage() {
  const m = new Map()
  return {
    get: (k) => (m.has(k) ? structuredClone(m.get(k)) : null),
    set: (k, v) => { m.set(k, structuredClone(v)) },
    remove: (k) => { m.delete(k) },
  }
}

/** window.localStorage (or any Web Storage), one item per upload. */
export function webStorage(ls = globalThis.localStorage,
  prefix = 'hfs-upload:') {
  return {
    get(k) {
      const s = ls.getItem(prefix + k)
      if (s == null) return null
      try { return JSON.parse(s) } catch { return null }
    },
    set(k, v) { ls.setItem(prefix + k, JSON.stringify(v)) },
    remove(k) { ls.removeItem(prefix + k) },
  }
}

/**
 * Node: one JSON file holding every remembered upload ({key: value}),
 * rewritten whole through a temporary file and rename, so a process killed
 * while writing leaves the old or the new content, never a torn one.
 */
export function fileStorage(path) {
  let chain = Promise.resolve()
  const fsP = import('node:fs/promises')
  async function load() {
    const fs = await fsP
    try {
      return JSON.parse(await fs.readFile(path, 'utf8'))
    } catch (e) {
      if (e.code === 'ENOENT' || e instanceof SyntaxError) return {}
      throw e
    }
  }
  async function save(obj) {
    const fs = await fsP
    const tmp = `${path}.${process.pid}.tmp`
    const fh = await fs.open(tmp, 'w', 0o600)
    try {
      await fh.writeFile(JSON.stringify(obj, null, 1) + '\n')
      await fh.sync()
    } finally {
      await fh.close()
    }
    await fs.rename(tmp, path)
  }
  // Serialized: two set()s in flight must not lose one another.
  const queued = (fn) => (chain = chain.then(fn, fn))
  return {
    get: (k) => queued(async () => (await load())[k] ?? null),
    set: (k, v) => queued(async () => {
      const o = await load(); o[k] = v; await save(o)
    }),
    remove: (k) => queued(async () => {
      const o = await load()
      if (k in o) { delete o[k]; await save(o) }
    }),
  }
}

/** The default: localStorage where there is one, else memory. */
export function defaultStorage() {
  try {
    if (globalThis.localStorage) return webStorage(globalThis.localStorage)
  } catch { /* file:// with storage disabled, sandboxed frames */ }
  return memoryStorage()
}
