// A real browser (Debian's chromium, driven by puppeteer-core) signed in to the gateway, and a page
// on another site (127.0.0.2 is another site than 127.0.0.1) trying to act for the member or read
// their data: a link to a GET mutation, a link to a GET search, form posts, fetch with credentials,
// <img> requests, and a WebSocket. Prints one line of JSON with what each attempt saw; the Rust test
// (tests/api/browser.rs) checks it, and checks the member's data with their bearer token.
//
// usage: node cross-site.mjs GATEWAY_URL PHONE PASSWORD POST_ID
// env: CHROMIUM_PATH (default /usr/bin/chromium)

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const [gateway, phone, password, postId] = process.argv.slice(2);
if (!gateway || !phone || !password || !postId) {
  console.error('usage: node cross-site.mjs GATEWAY_URL PHONE PASSWORD POST_ID');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const wsUrl = gateway.replace(/^http/, 'ws') + '/graphql';

const SIGNATURE = 'mutation M { updateProfile(input: { signature: "set by another site" }) { user { signature } } }';
const LIKE = `mutation { likePost(input: { postId: "${postId}" }) { post { likeCount } } }`;
const ATTACKER_SEARCH = '{ search(query: "attacker probe") { edges { cursor } } }';
const OWN_SEARCH = '{ search(query: "own search") { edges { cursor } } }';
const q = (doc) => `${gateway}/graphql?query=${encodeURIComponent(doc)}`;
const escape = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

// The other site's pages.
const pages = {
  '/link-mutation': `<a id="go" href="${escape(q(SIGNATURE))}">win a prize</a>`,
  '/link-search': `<a id="go" href="${escape(q(ATTACKER_SEARCH))}">see results</a>`,
  // A form can only send urlencoded, text/plain or multipart bodies; text/plain can be made to
  // look like JSON.
  '/form-text': `<form method="POST" action="${gateway}/graphql" enctype="text/plain">
      <input type="hidden" name='{"query":"${LIKE.replace(/"/g, '\\"')}","x":"' value='"}'>
      <button id="go" type="submit">go</button></form>`,
  '/form-multipart': `<form method="POST" action="${gateway}/graphql" enctype="multipart/form-data">
      <input type="hidden" name="operations" value='{"query":"${LIKE.replace(/"/g, '\\"')}"}'>
      <input type="hidden" name="map" value="{}">
      <button id="go" type="submit">go</button></form>`,
  '/blank': '<p>another site</p>',
};
const server = http.createServer((req, res) => {
  const body = pages[new URL(req.url, 'http://x').pathname];
  res.writeHead(body ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
  res.end(body ? `<!doctype html><html><body>${body}</body></html>` : '');
});
await new Promise((resolve) => server.listen(0, '127.0.0.2', resolve));
const attacker = `http://127.0.0.2:${server.address().port}`;

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecer-chromium-'));
const browser = await puppeteer.launch({
  // Chromium can take well over puppeteer's 30 s to start on a loaded 2-core CI machine.
  timeout: 120_000,
  executablePath,
  headless: true,
  userDataDir,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const results = { attacker };
try {
  const page = await browser.newPage();

  // The member signs in on the gateway's own page (GraphiQL at /); the session arrives as an
  // HttpOnly cookie.
  await page.goto(`${gateway}/`);
  results.signIn = await page.evaluate(async (phone, password) => {
    const res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: 'mutation($i: LoginInput!) { login(input: $i) { token user { id } } }',
        variables: { i: { phone, password, delivery: 'COOKIE' } },
      }),
    });
    return res.json();
  }, phone, password);
  results.cookieReadableByScript = await page.evaluate(() => document.cookie.includes('ecer_session'));
  results.sameOriginMe = await page.evaluate(async () => {
    const res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    return (await res.json()).data.me;
  });

  // A link on the other site to a GET mutation, and to a GET search (top-level navigations carry
  // a SameSite=Lax cookie).
  const follow = async (pathname) => {
    await page.goto(`${attacker}${pathname}`);
    const [response] = await Promise.all([page.waitForNavigation(), page.click('#go')]);
    return { status: response.status(), body: await response.text().catch(() => null) };
  };
  results.linkMutation = await follow('/link-mutation');
  results.linkSearch = await follow('/link-search');
  results.formText = await follow('/form-text');
  results.formMultipart = await follow('/form-multipart');

  // Script on the other site: fetch with credentials, images, a WebSocket.
  await page.goto(`${attacker}/blank`);
  results.fetch = await page.evaluate(async (gateway, like, me) => {
    const out = {};
    const attempt = async (name, url, init) => {
      try {
        const res = await fetch(url, { credentials: 'include', ...init });
        out[name] = res.type === 'opaque' ? 'opaque' : await res.text();
      } catch (e) {
        out[name] = 'blocked';
      }
    };
    const body = JSON.stringify({ query: like });
    await attempt('simplePost', `${gateway}/graphql`, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body });
    await attempt('jsonPost', `${gateway}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await attempt('readMe', `${gateway}/graphql?query=${encodeURIComponent(me)}`, {});
    await attempt('readMeNoCors', `${gateway}/graphql?query=${encodeURIComponent(me)}`, { mode: 'no-cors' });
    return out;
  }, gateway, LIKE, '{ me { id nickname phone } }');
  results.images = await page.evaluate(async (urls) => Promise.all(urls.map((src) => new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ src, outcome: 'load' });
    img.onerror = () => resolve({ src, outcome: 'error' });
    img.src = src;
  }))), [
    q(ATTACKER_SEARCH),
    q(SIGNATURE),
    `${gateway}/media/private/00000000-0000-4000-8000-000000000000`,
    `${gateway}/media/exports/00000000-0000-4000-8000-000000000000`,
  ]);
  const socket = (url, operations) => page.evaluate((url, operations) => new Promise((resolve) => {
    const out = { results: {} };
    const ws = new WebSocket(url, 'graphql-transport-ws');
    let pending = Object.keys(operations).length;
    const done = () => { ws.close(); resolve(out); };
    ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init' }));
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'connection_ack') {
        for (const [id, query] of Object.entries(operations)) {
          ws.send(JSON.stringify({ type: 'subscribe', id, payload: { query } }));
        }
      } else if (m.type === 'next' || m.type === 'error') {
        out.results[m.id] = m.payload;
      }
      if (m.type === 'complete' || m.type === 'error') {
        pending -= 1;
        if (pending === 0) done();
      }
    };
    ws.onclose = (e) => { out.close = e.code; resolve(out); };
    setTimeout(() => { out.timeout = true; done(); }, 10000);
  }), url, operations);
  results.websocket = await socket(wsUrl, { me: '{ me { id nickname } }', like: LIKE });

  // Controls: the same requests from the member's own page and address bar do act, so the checks
  // above could have seen the member.
  await page.goto(`${gateway}/`);
  results.sameOriginWebsocket = await socket(wsUrl, { me: '{ me { id } }' });
  const typed = await page.goto(q(OWN_SEARCH));
  results.typedSearch = { status: typed.status() };
} catch (e) {
  results.failure = String(e && e.stack || e);
} finally {
  await browser.close().catch(() => {});
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(results));
