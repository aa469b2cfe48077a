// "Sign in with ecer" in a real browser (Debian's chromium, driven by puppeteer-core): a small
// third-party web app on another site (127.0.0.2; the gateway is on 127.0.0.1) links to the
// gateway's authorization endpoint with PKCE; the member, not signed in, gets the gateway's sign-in
// form, signs in with phone and password, sees the consent page (its language, the app and its
// developer, each scope in plain words) and approves; the app's callback checks `state` and `iss`,
// exchanges the code at the token endpoint from its server (a public client: client_id and
// code_verifier), and reads the member with the access token. Then, signed in now, the member goes
// through the app's link again and denies. Prints one line of JSON with what the browser and the
// app saw; tests/api/oauth_clients.rs checks it, in Chinese and in English.
//
// The browser's Accept-Language is set to the other language than LOCALE, so the page's language
// must come from the request's `ui_locales`.
//
// usage: node oauth-browser.mjs GATEWAY_URL CLIENT_ID PHONE PASSWORD LOCALE APP_PORT
//   LOCALE: zh-CN or en; APP_PORT: the port the app listens on at 127.0.0.2 (its redirect URI,
//   http://127.0.0.2:APP_PORT/callback, is registered before the run)
// env: CHROMIUM_PATH (default /usr/bin/chromium)

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as oauth from 'oauth4webapi';
import puppeteer from 'puppeteer-core';

const [gateway, clientId, phone, password, locale, appPort] = process.argv.slice(2);
if (!gateway || !clientId || !phone || !password || !locale || !appPort) {
  console.error('usage: node oauth-browser.mjs GATEWAY_URL CLIENT_ID PHONE PASSWORD LOCALE APP_PORT');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCOPE = 'profile:read posts:read';
const appOrigin = `http://127.0.0.2:${appPort}`;
const redirectUri = `${appOrigin}/callback`;
const acceptLanguage = locale === 'en' ? 'zh-CN,zh;q=0.9' : 'en-US,en;q=0.9';
const escape = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

// The third-party app: its server keeps each pending authorization's verifier by its state.
const pending = new Map();
const callbacks = [];
async function callback(params) {
  const seen = { params: Object.fromEntries(params) };
  const state = params.get('state');
  const verifier = state !== null ? pending.get(state) : undefined;
  seen.stateMatched = verifier !== undefined;
  if (seen.stateMatched) pending.delete(state);
  seen.issMatched = params.get('iss') === gateway;
  if (seen.stateMatched && params.has('code')) {
    const res = await fetch(`${gateway}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: params.get('code'),
        redirect_uri: redirectUri,
        client_id: clientId,
        code_verifier: verifier,
      }),
    });
    const text = await res.text();
    let body;
    try { body = JSON.parse(text); } catch { body = text; }
    seen.token = { status: res.status, cacheControl: res.headers.get('cache-control'), body };
    if (res.status === 200 && body.access_token) {
      const me = await fetch(`${gateway}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${body.access_token}` },
        body: JSON.stringify({ query: '{ me { id nickname } }' }),
      });
      seen.graphql = { status: me.status, body: await me.json().catch(() => null) };
    }
  }
  callbacks.push(seen);
  return seen;
}
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, appOrigin);
  try {
    if (url.pathname === '/') {
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      pending.set(state, verifier);
      const authorize = new URL('/oauth/authorize', gateway);
      for (const [k, v] of Object.entries({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: redirectUri,
        scope: SCOPE,
        state,
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        ui_locales: locale,
      })) authorize.searchParams.set(k, v);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html><body><h1>Partner app</h1>
        <a id="sign-in-with-ecer" href="${escape(authorize.href)}">Sign in with ecer</a></body></html>`);
    } else if (url.pathname === '/callback') {
      const seen = await callback(url.searchParams);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html><body><p id="callback">${escape(seen.params.error ?? 'signed in')}</p></body></html>`);
    } else {
      res.writeHead(404).end();
    }
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
  }
});
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(appPort), '127.0.0.2', resolve);
});

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

// What the consent page shows, read from the DOM.
const readConsent = (page) => page.evaluate(() => {
  const form = document.querySelector('form#consent');
  const button = (id) => {
    const b = document.getElementById(id);
    return b && { tag: b.tagName.toLowerCase(), type: b.getAttribute('type'), name: b.getAttribute('name'), value: b.getAttribute('value'), inForm: !!form && form.contains(b) };
  };
  return {
    lang: document.documentElement.lang,
    title: document.title,
    text: document.body ? document.body.innerText : '',
    scopes: [...document.querySelectorAll('li[data-scope]')].map((li) => ({ scope: li.dataset.scope, text: li.textContent.trim() })),
    form: form && {
      method: (form.getAttribute('method') || '').toLowerCase(),
      action: form.getAttribute('action'),
      hidden: [...form.querySelectorAll('input[type=hidden]')].map((i) => i.name),
    },
    approve: button('approve'),
    deny: button('deny'),
    signInForm: !!document.querySelector('form#sign-in'),
  };
});
// Where the browser is, and the start of the page, when a step goes wrong.
const where = async (page) => ({ url: page.url(), html: (await page.content().catch(() => '')).slice(0, 2000) });
const click = async (page, selector) => {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(selector)]);
  return { status: response ? response.status() : null, url: page.url() };
};

const results = { locale, acceptLanguage, app: appOrigin, gateway };
let page;
try {
  const context = await browser.createBrowserContext();
  page = await context.newPage();
  await page.setExtraHTTPHeaders({ 'accept-language': acceptLanguage });
  // The headers the browser really sent with each form post to the gateway (Origin and
  // Sec-Fetch-Site are added by the network stack, after puppeteer's request event).
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  const posts = new Map();
  cdp.on('Network.requestWillBeSent', (e) => {
    if (e.request.method === 'POST' && e.request.url.startsWith(gateway)) posts.set(e.requestId, { url: e.request.url.slice(gateway.length) });
  });
  cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
    const post = posts.get(e.requestId);
    if (!post) return;
    const h = Object.fromEntries(Object.entries(e.headers).map(([k, v]) => [k.toLowerCase(), v]));
    Object.assign(post, { origin: h.origin ?? null, secFetchSite: h['sec-fetch-site'] ?? null });
  });
  results.formPosts = posts;

  // The app's page, and its "Sign in with ecer" link: the member is not signed in to the gateway.
  await page.goto(`${appOrigin}/`);
  results.authorize = await click(page, '#sign-in-with-ecer');
  results.signInForm = await page.evaluate(() => {
    const f = document.querySelector('form#sign-in');
    return f && {
      method: (f.getAttribute('method') || '').toLowerCase(),
      action: f.getAttribute('action'),
      phone: !!f.querySelector('input[name=phone]'),
      passwordType: f.querySelector('input[name=password]')?.getAttribute('type') ?? null,
      returnTo: f.querySelector('input[name=return_to]')?.value ?? null,
      submit: !!f.querySelector('button[type=submit], input[type=submit], button:not([type])'),
      lang: document.documentElement.lang,
    };
  });
  if (!results.signInForm) throw new Error(`no <form id="sign-in"> at the authorize URL: ${JSON.stringify(await where(page))}`);

  // The member signs in on the gateway's own form.
  await page.type('form#sign-in input[name=phone]', phone);
  await page.type('form#sign-in input[name=password]', password);
  results.signIn = await click(page, 'form#sign-in button[type=submit], form#sign-in input[type=submit], form#sign-in button:not([type])');
  results.signIn.backAtAuthorize = page.url().startsWith(`${gateway}/oauth/authorize?`);
  results.consent = await readConsent(page);
  if (!results.consent.approve) throw new Error(`no #approve on the consent page: ${JSON.stringify(await where(page))}`);

  // Approve: back to the app, which exchanges the code and reads the member.
  results.approve = await click(page, '#approve');
  results.approve.callbackText = await page.$eval('#callback', (p) => p.textContent).catch(() => null);
  results.approved = callbacks.at(-1) ?? null;

  // Again, signed in now: straight to the consent page; this time the member says no.
  await page.goto(`${appOrigin}/`);
  results.again = await click(page, '#sign-in-with-ecer');
  results.againConsent = await readConsent(page);
  if (!results.againConsent.deny) throw new Error(`no #deny on the second consent page: ${JSON.stringify(await where(page))}`);
  results.deny = await click(page, '#deny');
  results.denied = callbacks.length >= 2 ? callbacks.at(-1) : null;
  await context.close();
} catch (e) {
  results.failure = String(e && e.stack || e);
  if (page) results.failedAt = await where(page).catch(() => null);
} finally {
  await browser.close().catch(() => {});
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
results.callbacks = callbacks.length;
if (results.formPosts) results.formPosts = [...results.formPosts.values()];
console.log(JSON.stringify(results));
