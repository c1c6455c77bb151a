// Helper of bench/dashboard_bench.py: opens the live dashboard in headless
// Chromium (playwright-core) and prints one JSON line.
//   node dashboard_page.mjs paint URL N     N fresh loads: first paint with data (ms after navigation)
//   node dashboard_page.mjs hold URL S      keep one page open S seconds (it polls every second)
// NODE_MODULES names playwright-core's node_modules (tests/dashboard/npm_install.sh).
import { createRequire } from "node:module";

const require = createRequire(process.env.NODE_MODULES + "/");
const { chromium } = require("playwright-core");
const [mode, url, arg] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const out = { mode, browser: browser.version() };
try {
  if (mode === "paint") {
    out.first_paint_ms = [];
    for (let i = 0; i < Number(arg); i++) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await ctx.newPage();
      await page.goto(url);
      await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
      out.first_paint_ms.push(await page.evaluate(() => window.brigade.firstPaint));
      await ctx.close();
    }
  } else {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(url);
    await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
    process.stdout.write(JSON.stringify({ open: true }) + "\n");
    await new Promise(r => setTimeout(r, Number(arg) * 1000));
    out.refreshes_seen = await page.evaluate(() => window.brigade.charts[0].chart.data.datasets[0].data.length);
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
