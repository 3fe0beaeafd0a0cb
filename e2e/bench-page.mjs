// Page weight and speed of the notebook page, in headless Chromium against a
// running `quire dev` (bash e2e/bench-page.sh starts a release build and runs this):
//   - the bundle's size (raw and gzip -9) of each variant measured,
//   - time to open a 500-cell notebook with outputs, from navigation start
//     (performance.now() in the page):
//       first cells  the first animation frame in which the first FIRST_CELLS
//                    cells are complete (see below), i.e. they paint in that frame;
//       every cell   the first animation frame in which all cells are complete,
//                    plus the frame after it (so the time includes painting it).
//     A cell is complete when its content is in the DOM, checked against what the
//     fixture holds, not against any flag of the app: a markdown cell has its
//     heading and as many `.katex` formulas as its source; a code cell has its
//     highlighted source (lezer `tok-*` spans or a CodeMirror view) and as many
//     `.output` elements as it has display items (an image's <img>, an HTML
//     output's table, a traceback's coloured spans included).
//
//   QUIRE_URL=http://127.0.0.1:PORT node e2e/bench-page.mjs
//   BENCH_CELLS (500), BENCH_RUNS (7 per variant),
//   BENCH_VARIANTS="new=web/dist base=/tmp/old-dist"  bundles to compare; each
//     is served in place of the server's /assets/app.{js,css}; runs alternate
//     between variants so both see the same machine load. Default: what the
//     server serves, as one variant "served".
//   BENCH_PROFILE=dir   also write one CPU profile per variant (.cpuprofile,
//     opens in Chromium's DevTools) and print the top self-time functions.
//
// Prints one line per variant: median, min and max of each time, the load
// average (1 min) during the runs.

import { chromium } from 'playwright-core';
import { gzipSync } from 'node:zlib';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

const BASE = (process.env.QUIRE_URL || '').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CELLS = Number(process.env.BENCH_CELLS || 500);
const RUNS = Number(process.env.BENCH_RUNS || 7);
const FIRST_CELLS = 4;
const USER = 'user_bench';

if (!/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(BASE)) {
  console.error('QUIRE_URL must be a loopback http URL of a running `quire dev`');
  process.exit(2);
}

const VARIANTS = (process.env.BENCH_VARIANTS || 'served').split(/\s+/).filter(Boolean).map((v) => {
  const [name, dir] = v.includes('=') ? v.split('=') : [v, null];
  return { name, dir: dir ? path.resolve(dir) : null, scripts: [], readys: [], firsts: [], alls: [], loads: [] };
});

// A 16x16 PNG (a real plot is bigger; image decoding is asynchronous and not what is measured here).
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAF0lEQVR42mP4f4YBL2IYVTCqYFTBMAUAq+ov0ZM8ANoAAAAASUVORK5CYII=';
const ESC = '\u001b';

function dataFrame(i) {
  const rows = Array.from({ length: 5 }, (_, r) =>
    `<tr><th>${r}</th><td>${(i * r) % 97}</td><td>${(i + r) / 4}</td><td>name_${i}_${r}</td></tr>`).join('');
  return `<div><style scoped>.dataframe tbody tr th { vertical-align: top; }</style><table border="1" class="dataframe"><thead><tr style="text-align: right;"><th></th><th>a</th><th>b</th><th>c</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

function traceback(i) {
  return [
    `${ESC}[0;31m---------------------------------------------------------------------------${ESC}[0m`,
    `${ESC}[0;31mZeroDivisionError${ESC}[0m                         Traceback (most recent call last)`,
    `Cell ${ESC}[0;32mIn[${i}], line 3${ESC}[0m`,
    `${ESC}[1;32m      1${ESC}[0m ${ESC}[38;5;28;01mdef${ESC}[39;00m ${ESC}[38;5;21mf${ESC}[39m(x):`,
    `${ESC}[0;32m----> 3${ESC}[0m ${ESC}[38;5;28;01mreturn${ESC}[39;00m x ${ESC}[38;5;241m/${ESC}[39m ${ESC}[38;5;241m0${ESC}[39m`,
    `${ESC}[0;31mZeroDivisionError${ESC}[0m: division by zero`,
  ];
}

/**
 * A notebook like a course's: markdown with inline and display math, lists
 * and tables; code with streams, DataFrame-like HTML tables, images and now
 * and then a traceback. Returns the notebook and what each cell must show.
 */
function notebook(n) {
  const cells = [];
  const expect = [];
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      const source = `## Step ${i}\n\nWe compute $x_{${i}} = \\sum_{k=1}^{${i}} k^2$ and compare it with $\\frac{n(n+1)(2n+1)}{6}$:\n\n` +
        `$$\\int_0^{${i}} t^2\\,dt = \\frac{${i}^3}{3}$$\n\n- a **bold** point and \`code\`\n- a [link](https://example.org/${i})\n\n| k | value |\n|---|---|\n| 1 | 1 |\n| 2 | 4 |`;
      cells.push({ cell_type: 'markdown', id: `m${i}`, metadata: {}, source });
      expect.push({ type: 'markdown', katex: 3 });
    } else {
      const outputs = [{ output_type: 'stream', name: 'stdout', text: `${i}\n${i * i}\n` }];
      if (i % 50 === 25) {
        outputs.push({ output_type: 'error', ename: 'ZeroDivisionError', evalue: 'division by zero', traceback: traceback(i) });
      } else if (i % 10 === 1) {
        outputs.push({ output_type: 'display_data', metadata: {}, data: { 'image/png': PNG, 'text/plain': '<Figure size 640x480 with 1 Axes>' } });
      } else {
        outputs.push({ output_type: 'execute_result', execution_count: i, metadata: {}, data: { 'text/html': dataFrame(i), 'text/plain': `   a  b  c\n0  ${i}` } });
      }
      cells.push({
        cell_type: 'code', id: `c${i}`, metadata: {}, execution_count: i,
        source: `import math\n\ndef step_${i}(xs):\n    """Sum of squares."""\n    return sum(x * x for x in xs)  # ${i}\n\nprint(${i})\nprint(step_${i}(range(${i})))\nstep_${i}`,
        outputs,
      });
      expect.push({ type: 'code', outputs: outputs.length });
    }
  }
  return {
    nb: { nbformat: 4, nbformat_minor: 5, metadata: { kernelspec: { name: 'python3', language: 'python', display_name: 'Python 3' } }, cells },
    expect,
  };
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

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => sorted(xs)[Math.floor(xs.length / 2)];
const load1 = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;

async function bundle(variant, file) {
  if (variant.dir) return readFileSync(path.join(variant.dir, file));
  return Buffer.from(await (await fetch(`${BASE}/assets/${file}`)).arrayBuffer());
}

/** The page's scripts: app.js and the chunks it imports, statically (at start) or on demand. */
async function scripts(variant) {
  const seen = new Map();
  const visit = async (file, lazy) => {
    if (seen.has(file) && (lazy || !seen.get(file).lazy)) return;
    const body = await bundle(variant, file);
    seen.set(file, { body, lazy });
    const text = body.toString('utf8');
    for (const m of text.matchAll(/import\(\s*"\.\/([\w.-]+\.js)"\s*\)/g)) await visit(m[1], true);
    for (const m of text.matchAll(/(?:from|import)\s*"\.\/([\w.-]+\.js)"/g)) await visit(m[1], lazy);
  };
  await visit('app.js', false);
  return seen;
}

for (const v of VARIANTS) {
  const all = await scripts(v);
  all.set('app.css', { body: await bundle(v, 'app.css'), lazy: false });
  const size = (files) => {
    const raw = files.reduce((n, [, f]) => n + f.body.length, 0);
    const gz = files.reduce((n, [, f]) => n + gzipSync(f.body, { level: 9 }).length, 0);
    return `${kib(raw)} (gzip -9 ${kib(gz)})`;
  };
  const start = [...all].filter(([, f]) => !f.lazy);
  const lazy = [...all].filter(([, f]) => f.lazy);
  console.log(`bundle [${v.name}]: at start ${size(start)}: ${start.map(([n, f]) => `${n} ${kib(f.body.length)}`).join(', ')}` +
    (lazy.length ? `; on demand ${size(lazy)}: ${lazy.map(([n]) => n).join(', ')}` : ''));
}

/**
 * In the page: how many cells, from the first, are complete (see the header),
 * going on from `done` (those before it were complete already and stay so).
 * Stops at the first incomplete one.
 */
function completePrefix(expect, done) {
  const cells = document.getElementById('cells')?.children ?? [];
  for (; done < expect.length && done < cells.length; done++) {
    const cell = cells[done];
    const want = expect[done];
    if (want.type === 'markdown') {
      const preview = cell.querySelector('.md-preview');
      if (!preview || preview.hidden || !preview.querySelector('h2')) break;
      if (preview.querySelectorAll('.katex').length !== want.katex) break;
    } else {
      const code = cell.querySelector('.code-view');
      if (!code || code.hidden || !code.querySelector('.tok-keyword, .cm-content')) break;
      if (cell.querySelectorAll('.output').length !== want.outputs) break;
    }
  }
  return done;
}

async function openOnce(browser, variant, nbId, expect, profileTo, traceTo = null) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript((user) => {
    sessionStorage.setItem('quire.dev.user', user);
    // When the notebook's `ready` message arrived (what comes before it is the
    // server's and the socket's; what comes after, the page's).
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (ev) => {
          if (window.__readyAt === undefined && typeof ev.data === 'string' && /"type":\s*"ready"/.test(ev.data)) window.__readyAt = performance.now();
        });
      }
    };
  }, USER);
  if (variant.dir) {
    // The variant's scripts and stylesheet instead of the server's (fonts and icon: the server's).
    await context.route(/\/assets\/[\w.-]+\.(js|css)$/, (route) => {
      const file = path.join(variant.dir, new URL(route.request().url()).pathname.split('/').pop());
      if (!existsSync(file)) return route.fulfill({ status: 404, body: 'not in this variant' });
      return route.fulfill({ path: file, contentType: file.endsWith('.js') ? 'text/javascript' : 'text/css' });
    });
  }
  const page = await context.newPage();
  let cdp = null;
  if (profileTo) {
    cdp = await context.newCDPSession(page);
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
  }
  if (traceTo) await browser.startTracing(page, { path: traceTo, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'] });
  const load = load1();
  await page.goto(`${BASE}/#/n/${encodeURIComponent(nbId)}`);
  // Timed in the page, once per animation frame, from navigation start.
  const times = await page.evaluate(({ expect, first, fn }) => new Promise((resolve, reject) => {
    // eslint-disable-next-line no-new-func
    const prefix = new Function(`return (${fn})`)();
    let firstAt = null;
    let done = 0;
    const timeout = setTimeout(() => reject(new Error('not every cell rendered in 120 s')), 120_000);
    const tick = (now) => {
      done = prefix(expect, done);
      if (firstAt === null && done >= first) firstAt = now;
      if (done === expect.length) {
        requestAnimationFrame((painted) => { clearTimeout(timeout); resolve({ script: performance.getEntriesByType('navigation')[0]?.domContentLoadedEventEnd, ready: window.__readyAt, first: firstAt, all: painted }); });
        return;
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }), { expect, first: FIRST_CELLS, fn: completePrefix.toString() });
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    writeFileSync(profileTo, JSON.stringify(profile));
    printTop(profile, variant.name);
  }
  if (traceTo) {
    await browser.stopTracing();
    printTrace(traceTo, variant.name);
  }
  await context.close();
  return { ...times, load: Math.max(load, load1()) };
}

/** The functions with the most self time in a CPU profile. */
function printTop(profile, name) {
  const dt = new Map();
  const { samples, timeDeltas, nodes } = profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (let i = 0; i < samples.length; i++) dt.set(samples[i], (dt.get(samples[i]) || 0) + (timeDeltas[i] || 0));
  const self = new Map();
  for (const [id, us] of dt) {
    const f = byId.get(id).callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) || 0) + us);
  }
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25);
  console.log(`profile [${name}] top self time:`);
  for (const [k, us] of top) console.log(`  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
}

/** Main-thread time of a trace by event name (top-level events only: style, layout, paint, script...). */
function printTrace(file, name) {
  const { traceEvents } = JSON.parse(readFileSync(file, 'utf8'));
  // The busiest renderer main thread (navigation may change the renderer process).
  const mains = traceEvents.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const busy = (m) => traceEvents.reduce((n, e) => n + (e.pid === m.pid && e.tid === m.tid && e.ph === 'X' ? e.dur || 0 : 0), 0);
  const main = mains.map((m) => [busy(m), m]).sort((a, b) => b[0] - a[0])[0]?.[1];
  const byName = new Map();
  let end = 0;
  for (const e of traceEvents) {
    if (!main || e.pid !== main.pid || e.tid !== main.tid || e.ph !== 'X' || !e.dur) continue;
    // Only events not inside another on this thread: sum of children is their parent's.
    if (e.ts < end) continue;
    end = e.ts + e.dur;
    const key = e.name === 'RunTask' ? 'RunTask' : e.name;
    byName.set(key, (byName.get(key) || 0) + e.dur);
  }
  const kids = new Map();
  for (const e of traceEvents) {
    if (!main || e.pid !== main.pid || e.tid !== main.tid || e.ph !== 'X' || !e.dur) continue;
    if (['UpdateLayoutTree', 'Layout', 'Paint', 'PrePaint', 'Layerize', 'ParseHTML', 'FunctionCall', 'EvaluateScript', 'v8.compile', 'MajorGC', 'MinorGC', 'TimerFire', 'FireAnimationFrame', 'HitTest', 'IntersectionObserverController::computeIntersections', 'UpdateLayer', 'Commit'].includes(e.name)) {
      kids.set(e.name, (kids.get(e.name) || 0) + e.dur);
    }
  }
  console.log(`trace [${name}] main thread, ms (nested events counted in each of their kinds):`);
  for (const [k, us] of [...kids].sort((a, b) => b[1] - a[1])) console.log(`  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
}

const { nb: fixture, expect } = notebook(CELLS);
const { token } = await call('POST', '/__dev/token', { user_id: USER, lifetime_secs: 3600 });
const nb = await call('POST', '/api/v1/notebooks/import?title=bench', fixture, token);

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
try {
  // One warm-up load per variant (disk cache, code cache), not counted.
  for (const v of VARIANTS) await openOnce(browser, v, nb.id, expect, null);
  if (process.env.BENCH_PROFILE) {
    mkdirSync(process.env.BENCH_PROFILE, { recursive: true });
    for (const v of VARIANTS) {
      await openOnce(browser, v, nb.id, expect, path.join(process.env.BENCH_PROFILE, `${v.name}.cpuprofile`));
      await openOnce(browser, v, nb.id, expect, null, path.join(process.env.BENCH_PROFILE, `${v.name}.trace.json`));
    }
  }
  for (let run = 0; run < RUNS; run++) {
    for (const v of run % 2 ? [...VARIANTS].reverse() : VARIANTS) {
      const t = await openOnce(browser, v, nb.id, expect, null);
      v.scripts.push(t.script);
      v.readys.push(t.ready);
      v.firsts.push(t.first);
      v.alls.push(t.all);
      v.loads.push(t.load);
    }
  }
} finally {
  await browser.close();
  await call('DELETE', `/api/v1/notebooks/${nb.id}`, undefined, token).catch(() => {});
}

const stat = (xs) => `${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;
for (const v of VARIANTS) {
  console.log(`open ${CELLS} cells [${v.name}]: app script ran ${stat(v.scripts)}, notebook arrived ${stat(v.readys)}, first ${FIRST_CELLS} cells ${stat(v.firsts)}, every cell ${stat(v.alls)}; ` +
    `median of ${RUNS}; load average (1 min) ${Math.min(...v.loads).toFixed(1)}–${Math.max(...v.loads).toFixed(1)}`);
  console.log(`  every cell, each run: ${v.alls.map((t) => t.toFixed(0)).join(', ')} ms`);
}
