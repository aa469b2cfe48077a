// GraphiQL as a newcomer uses it, in Debian's chromium driven by puppeteer-core, against a gateway
// started with --demo. Usage: node graphiql-browser.mjs <gateway url> <screenshot path>
//
// Prints `SUBSCRIBED` each time the OnLiveChat subscription is open and waiting for a line (the Rust
// test then says one in the room from outside), and ends with one JSON line of findings. Exits 1 when
// a step fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const [url, screenshot, token] = process.argv.slice(2);
const CHAT = 'hello from outside the browser';
const findings = { consoleErrors: [], homeFeedPosts: 0, signedInAs: null, chatShown: false, stopSentComplete: false, initCarriedHeaders: false };
const profile = mkdtempSync(join(tmpdir(), 'graphiql-browser-'));
const browser = await puppeteer.launch({
  // Chromium can take well over puppeteer's 30 s to start on a loaded 2-core CI machine.
  timeout: 120_000,
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  userDataDir: profile,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

async function until(what, predicate, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  page.on('console', (m) => { if (m.type() === 'error') findings.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => findings.consoleErrors.push(String(e)));
  page.on('requestfailed', (r) => findings.consoleErrors.push(`request failed: ${r.url()}`));
  page.on('response', (r) => { if (r.status() >= 400) findings.consoleErrors.push(`HTTP ${r.status()} ${r.url()}`); });
  // WebSocket frames, to know when the subscription is open and that stopping sends `complete`.
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  const sent = [];
  cdp.on('Network.webSocketFrameSent', (e) => sent.push(e.response.payloadData));

  await page.goto(url, { waitUntil: 'networkidle0' });
  await page.waitForSelector('.graphiql-tab-button');
  const tabNames = await page.$$eval('.graphiql-tab-button', (b) => b.map((x) => x.textContent.trim()));
  if (tabNames.length < 5) throw new Error(`expected the contract's tabs, found ${JSON.stringify(tabNames)}`);
  const response = () =>
    page.evaluate(() => {
      const el = document.querySelector('.graphiql-response .CodeMirror');
      return el && el.CodeMirror ? el.CodeMirror.getValue() : '';
    });
  const parsed = async () => { try { return JSON.parse(await response()); } catch { return null; } };
  const openTab = async (name) => {
    const i = tabNames.indexOf(name);
    if (i < 0) throw new Error(`no ${name} tab in ${JSON.stringify(tabNames)}`);
    await (await page.$$('.graphiql-tab-button'))[i].click();
    await new Promise((r) => setTimeout(r, 300));
  };
  const run = () => page.click('.graphiql-execute-button');

  await openTab('HomeFeed');
  await run();
  const feed = await until('the home feed', async () => (await parsed())?.data?.posts?.edges);
  findings.homeFeedPosts = feed.length;

  await openTab('Login');
  await run();
  await until('the sign-in result', async () => (await parsed())?.data?.login?.user);
  // The page itself is now signed in by its session cookie.
  findings.signedInAs = await page.evaluate(async () => {
    const r = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ me { phone } }' }),
    });
    return (await r.json()).data?.me?.phone ?? null;
  });

  await openTab('OnLiveChat');
  // The Headers editor's JSON becomes the WebSocket's connection_init payload.
  const headers = JSON.stringify({ Authorization: `Bearer ${token}` });
  await page.evaluate((value) => {
    const editors = [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')];
    editors[editors.length - 1].CodeMirror.setValue(value);
  }, headers);
  await run();
  await until('connection_init', async () => sent.some((f) => f.includes('"connection_init"')));
  findings.initCarriedHeaders = sent.some((f) => f.includes('"connection_init"') && f.includes(token));
  await until('the subscribe message', async () => sent.some((f) => f.includes('"subscribe"')));
  for (let attempt = 0; attempt < 5 && !findings.chatShown; attempt++) {
    console.log('SUBSCRIBED');
    try {
      await until('the chat line', async () => (await response()).includes(CHAT), 3000);
      findings.chatShown = true;
    } catch { /* the line may have landed before the server registered the subscription: again */ }
  }
  await page.screenshot({ path: screenshot });
  await run(); // the same button stops a running subscription
  await until('complete on stop', async () => sent.some((f) => f.includes('"complete"')), 5000)
    .then(() => { findings.stopSentComplete = true; }, () => {});
} catch (err) {
  findings.failure = String(err && err.stack ? err.stack : err);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(findings));
const ok = !findings.failure && findings.consoleErrors.length === 0 && findings.chatShown && findings.stopSentComplete
  && findings.initCarriedHeaders;
process.exit(ok ? 0 : 1);
