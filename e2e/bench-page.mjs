// Page weight and speed of the notebook page, in headless Chromium against a
// running `quire dev`:
//   - the bundle's size (raw and gzip) as served,
//   - time to open a 500-cell notebook with outputs: first cells painted, and
//     every cell rendered (highlighted code, markdown with math, outputs).
//
//   bash e2e/run.sh bench-page.mjs      (or QUIRE_URL=http://127.0.0.1:PORT node e2e/bench-page.mjs)
//
// Prints one line per measurement; times are medians of BENCH_RUNS page loads.

import { chromium } from 'playwright-core';
import { gzipSync } from 'node:zlib';

const BASE = (process.env.QUIRE_URL || '').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CELLS = Number(process.env.BENCH_CELLS || 500);
const RUNS = Number(process.env.BENCH_RUNS || 5);
const USER = 'user_bench';

if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(BASE)) {
  console.error('QUIRE_URL must be a loopback http URL of a running `quire dev`');
  process.exit(2);
}

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAF0lEQVR42mP4f4YBL2IYVTCqYFTBMAUAq+ov0ZM8ANoAAAAASUVORK5CYII=';

/** A notebook like a course's: markdown with math and tables, code with streams, HTML and images. */
function notebook(n) {
  const cells = [];
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      cells.push({ cell_type: 'markdown', id: `m${i}`, metadata: {}, source: `## Step ${i}\n\nWe compute $x_{${i}} = \\sum_{k=1}^{${i}} k^2$ and compare:\n\n| k | value |\n|---|---|\n| 1 | 1 |\n| 2 | 4 |` });
    } else {
      cells.push({
        cell_type: 'code', id: `c${i}`, metadata: {}, execution_count: i,
        source: `def step_${i}(xs):\n    """Sum of squares."""\n    return sum(x * x for x in xs)  # ${i}\n\nprint(step_${i}(range(${i})))\nstep_${i}`,
        outputs: [
          { output_type: 'stream', name: 'stdout', text: `${i}\n` },
          i % 10 === 1
            ? { output_type: 'display_data', metadata: {}, data: { 'image/png': PNG, 'text/plain': '<Image>' } }
            : { output_type: 'execute_result', execution_count: i, metadata: {}, data: { 'text/html': `<table><tr><th>i</th><td>${i}</td></tr></table>`, 'text/plain': String(i) } },
        ],
      });
    }
  }
  return { nbformat: 4, nbformat_minor: 5, metadata: { kernelspec: { name: 'python3', language: 'python', display_name: 'Python 3' } }, cells };
}

async function call(method, url, body, token) {
  const r = await fetch(`${BASE}${url}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${await r.text()}`);
  return r.status === 204 ? null : r.json();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const file of ['app.js', 'app.css']) {
  const body = Buffer.from(await (await fetch(`${BASE}/assets/${file}`)).arrayBuffer());
  console.log(`bundle ${file}: ${(body.length / 1024).toFixed(0)} KiB, gzip -9 ${(gzipSync(body, { level: 9 }).length / 1024).toFixed(0)} KiB`);
}

const { token } = await call('POST', '/__dev/token', { user_id: USER, lifetime_secs: 600 });
const nb = await call('POST', '/api/v1/notebooks/import?title=bench', notebook(CELLS), token);

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
const firsts = [];
const alls = [];
try {
  for (let run = 0; run < RUNS; run++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript((user) => sessionStorage.setItem('quire.dev.user', user), USER);
    if (process.env.BENCH_LOCAL_DIST) {
      // Measure web/dist as built now, without rebuilding the server.
      await context.route('**/assets/app.*', (route) => {
        const file = route.request().url().endsWith('.js') ? 'app.js' : 'app.css';
        route.fulfill({ path: new URL(`../web/dist/${file}`, import.meta.url).pathname, contentType: file.endsWith('.js') ? 'text/javascript' : 'text/css' });
      });
    }
    const page = await context.newPage();
    await page.goto(`${BASE}/#/n/${encodeURIComponent(nb.id)}`);
    const first = await page.waitForFunction(
      () => document.querySelector('#cells .cell .md-preview h2') && performance.now(),
      null, { polling: 'raf', timeout: 60_000 });
    const all = await page.waitForFunction((n) => document.querySelectorAll('#cells .cell').length === n &&
      document.querySelector('#cells[data-filled="true"]') && performance.now(), CELLS, { polling: 'raf', timeout: 120_000 });
    // One more frame, so the time includes painting what was rendered.
    const painted = await page.evaluate((t) => new Promise((r) => requestAnimationFrame(() => r(Math.max(t, performance.now())))), await all.jsonValue());
    firsts.push(await first.jsonValue());
    alls.push(painted);
    await context.close();
  }
} finally {
  await browser.close();
}
await call('DELETE', `/api/v1/notebooks/${nb.id}`, undefined, token).catch(() => {});
console.log(`open ${CELLS} cells: first cells ${median(firsts).toFixed(0)} ms, every cell ${median(alls).toFixed(0)} ms ` +
  `(from navigation start; median of ${RUNS}: ${alls.map((t) => t.toFixed(0)).join(', ')} ms)`);
