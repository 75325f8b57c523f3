// drive.js runs headless Chromium (the system's, never a downloaded one)
// for the Go browser tests in cmd/parkswitch/browser_test.go, which send
// it one JSON command per line on stdin and read one JSON reply per line
// on stdout:
//
//   {"id": 1, "op": "goto", "url": "http://127.0.0.1:8080/"}
//   {"id": 1, "ok": true, "value": ..., "ms": 12.3}
//
// Every command is bounded by its "timeout" (ms, default 5000); the whole
// run by DRIVE_DEADLINE_MS. The browser closes when stdin ends. Chromium
// may reach 127.0.0.1 alone: every other host name fails to resolve and
// no proxy is used.
//
// Environment: CHROMIUM (the executable), USER_DATA_DIR (a fresh, empty
// profile directory the caller removes), DRIVE_DEADLINE_MS.
'use strict';

const readline = require('node:readline');
const { chromium } = require('playwright-core');

const flags = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage', '--no-proxy-server',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

function reply(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

// ops are the commands; each gets the page and the command, and returns
// the reply's value.
const ops = {
  async goto(page, c) {
    const res = await page.goto(c.url, { timeout: c.timeout, waitUntil: 'load' });
    return { status: res ? res.status() : 0, url: page.url() };
  },
  async viewport(page, c) {
    await page.setViewportSize({ width: c.width, height: c.height });
  },
  async fill(page, c) {
    await page.fill(c.selector, c.value, { timeout: c.timeout });
  },
  async select(page, c) {
    return page.selectOption(c.selector, c.value, { timeout: c.timeout });
  },
  // click clicks selector; with nav, it returns once the page it leads
  // to has loaded.
  async click(page, c) {
    if (!c.nav) {
      await page.click(c.selector, { timeout: c.timeout });
      return page.url();
    }
    await Promise.all([
      page.waitForNavigation({ timeout: c.timeout, waitUntil: 'load' }),
      page.click(c.selector, { timeout: c.timeout }),
    ]);
    return page.url();
  },
  // wait waits for selector to reach state (attached, detached, visible,
  // hidden); the reply's ms is how long that took.
  async wait(page, c) {
    await page.waitForSelector(c.selector, { state: c.state || 'attached', timeout: c.timeout });
  },
  async text(page, c) {
    return page.innerText(c.selector, { timeout: c.timeout }); // as shown: cells apart
  },
  async value(page, c) {
    return page.inputValue(c.selector, { timeout: c.timeout });
  },
  async count(page, c) {
    return page.locator(c.selector).count();
  },
  async style(page, c) {
    return page.$eval(c.selector, (el, prop) => getComputedStyle(el).getPropertyValue(prop), c.prop);
  },
  async url(page) {
    return page.url();
  },
  async screenshot(page, c) {
    await page.screenshot({ path: c.path, fullPage: !!c.fullPage, timeout: c.timeout });
  },
};

async function main() {
  const deadline = Number(process.env.DRIVE_DEADLINE_MS || 600000);
  const ctx = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: flags,
    timeout: 30000,
    viewport: { width: 1200, height: 760 },
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await ctx.close().catch(() => {});
  };
  const timer = setTimeout(async () => {
    process.stderr.write(`drive.js: deadline of ${deadline} ms passed\n`);
    await close();
    process.exit(2);
  }, deadline);

  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => process.stderr.write(`console ${m.type()}: ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
  reply({ id: 0, ok: true, value: 'ready' });

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let c;
    try {
      c = JSON.parse(line);
    } catch (e) {
      reply({ id: -1, ok: false, error: 'not JSON: ' + e.message });
      continue;
    }
    const op = ops[c.op];
    if (!op) {
      reply({ id: c.id, ok: false, error: 'unknown op ' + c.op });
      continue;
    }
    c.timeout = c.timeout || 5000;
    const start = performance.now();
    try {
      const value = await op(page, c);
      reply({ id: c.id, ok: true, value, ms: performance.now() - start });
    } catch (e) {
      reply({ id: c.id, ok: false, error: String(e && e.message || e).split('\n')[0], ms: performance.now() - start });
    }
  }
  clearTimeout(timer);
  await close();
}

main().catch((e) => {
  process.stderr.write(`drive.js: ${e && e.stack || e}\n`);
  process.exit(1);
});
