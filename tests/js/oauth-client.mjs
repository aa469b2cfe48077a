// A third-party app signing a member in with OAuth 2.1, written with oauth4webapi (a certified,
// spec-strict client library) as an app's developer would write it: metadata discovery (RFC 8414,
// the issuer must match), an authorization request with PKCE (S256), the member's consent given
// over plain HTTP with their session cookie (the browser's part, done by hand: GET the consent page
// as a cross-site navigation, POST its form back as the gateway's own page would), the authorization
// response checked for `iss` and `state` (RFC 9207), the code exchanged, GraphQL over HTTP and over
// a WebSocket with the access token, refresh-token rotation, reuse of a rotated refresh token (the
// whole grant must die), a second authorization and its revocation (RFC 7009). Prints one line of
// JSON with what each step saw; tests/api/oauth_clients.rs checks it, for a confidential client
// (client_secret_basic for the first grant, client_secret_post for the second) and a public one
// (client_id alone, "none").
//
// usage: node oauth-client.mjs GATEWAY_URL CLIENT_ID CLIENT_SECRET|- MEMBER_SESSION_TOKEN REDIRECT_URI
// env: SESSION_COOKIE_NAME (default ecer_session, the gateway's default)

import http from 'node:http';
import * as oauth from 'oauth4webapi';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [gateway, clientId, clientSecret, session, redirectUri] = process.argv.slice(2);
if (!gateway || !clientId || !clientSecret || !session || !redirectUri) {
  console.error('usage: node oauth-client.mjs GATEWAY_URL CLIENT_ID CLIENT_SECRET|- MEMBER_SESSION_TOKEN REDIRECT_URI');
  process.exit(2);
}
const cookieName = process.env.SESSION_COOKIE_NAME || 'ecer_session';
const confidential = clientSecret !== '-';
const SCOPE = 'profile:read posts:read';
// The gateway runs on http://127.0.0.1 in the tests; oauth4webapi refuses plain http unless told.
const insecure = { [oauth.allowInsecureRequests]: true };

// The browser's side of the authorization, spoken over node:http rather than fetch: fetch (undici)
// forces `Sec-Fetch-Mode: cors`, and a browser navigation says `navigate`.
function raw(method, url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}
const navigation = (site) => ({
  cookie: `${cookieName}=${session}`,
  'sec-fetch-site': site,
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
  'sec-fetch-user': '?1',
  accept: 'text/html,application/xhtml+xml',
  'user-agent': 'oauth-client.mjs',
});

const decode = (s) => s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, e) => {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e.toLowerCase()];
  if (named) return named;
  return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
});
// The attributes of one start tag (`<input a="1" b='2' c=3 d>`), names lowercased, values decoded.
function attributes(tag) {
  const out = {};
  const inner = tag.replace(/^<\s*[a-z0-9]+/i, '').replace(/\/?>$/, '');
  for (const m of inner.matchAll(/([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}
// The consent form of a page: its action, its hidden inputs and its buttons.
function consentForm(html) {
  const m = html.match(/<form\b[^>]*>[\s\S]*?<\/form>/gi) ?? [];
  for (const form of m) {
    const open = attributes(form.match(/^<form\b[^>]*>/i)[0]);
    if (open.id !== 'consent') continue;
    const hidden = [];
    for (const input of form.match(/<input\b[^>]*>/gi) ?? []) {
      const a = attributes(input);
      if ((a.type ?? '').toLowerCase() === 'hidden' && a.name !== undefined) hidden.push([a.name, a.value ?? '']);
    }
    const buttons = (form.match(/<button\b[^>]*>/gi) ?? []).map(attributes);
    return { method: (open.method ?? 'get').toLowerCase(), action: open.action ?? '', hidden, buttons };
  }
  return null;
}

async function graphql(token, query) {
  const res = await fetch(`${gateway}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: res.status, body };
}

// A query over graphql-transport-ws, the access token in `connection_init` as `authToken`.
function overWebSocket(token, query) {
  return new Promise((resolve) => {
    const client = createClient({
      url: `${gateway.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authToken: token },
      retryAttempts: 0,
      lazy: true,
    });
    const timer = setTimeout(() => finish({ timeout: true }), 10000);
    let result = null;
    const finish = (r) => { clearTimeout(timer); client.dispose(); resolve(r); };
    client.subscribe({ query }, {
      next: (r) => { result = r; },
      error: (e) => finish({ error: e instanceof Error ? e.message : { type: e?.type ?? null, code: e?.code ?? null, reason: e?.reason ?? null, message: e?.message ?? null } }),
      complete: () => finish({ result }),
    });
  });
}

// An OAuth call that is expected to fail: what oauth4webapi threw, in a form the test can check.
async function failure(step) {
  try {
    const value = await step();
    return { ok: value };
  } catch (e) {
    if (e instanceof oauth.ResponseBodyError) {
      return { threw: 'ResponseBodyError', status: e.status, error: e.error, error_description: e.error_description ?? null };
    }
    if (e instanceof oauth.WWWAuthenticateChallengeError) {
      return { threw: 'WWWAuthenticateChallengeError', status: e.status, challenges: e.cause };
    }
    return { threw: e?.constructor?.name ?? 'Error', code: e?.code ?? null, message: String(e?.message ?? e) };
  }
}

const summary = (t) => ({
  token_type: t.token_type,
  expires_in: t.expires_in,
  scope: t.scope ?? null,
  access_token_prefix: t.access_token.slice(0, 5),
  refresh_token_prefix: t.refresh_token ? t.refresh_token.slice(0, 5) : null,
});

const results = { confidential };
try {
  // 1. Discovery: the issuer in the metadata must be the gateway's own URL.
  const issuer = new URL(gateway);
  const discovery = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure });
  results.discoveryStatus = discovery.status;
  const as = await oauth.processDiscoveryResponse(issuer, discovery);
  results.metadata = as;
  const client = { client_id: clientId };
  const basic = confidential ? oauth.ClientSecretBasic(clientSecret) : oauth.None();
  const post = confidential ? oauth.ClientSecretPost(clientSecret) : oauth.None();

  // 2. An authorization, start to end: PKCE, the member's consent, the response checked.
  const authorize = async (record) => {
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const codeChallenge = await oauth.calculatePKCECodeChallenge(codeVerifier);
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint);
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: SCOPE,
      state,
      code_challenge: codeChallenge,
      code_challenge_method: 'S256',
    })) url.searchParams.set(k, v);

    // The member's browser arrives from the app's site, signed in by cookie.
    const page = await raw('GET', url, navigation('cross-site'));
    const form = consentForm(page.body);
    record.consentPage = {
      status: page.status,
      contentType: page.headers['content-type'] ?? null,
      form: form && { method: form.method, action: form.action, hidden: form.hidden.map(([n]) => n), buttons: form.buttons },
    };
    if (!form) throw new Error(`no <form id="consent"> on the authorize page (HTTP ${page.status}): ${page.body.slice(0, 1500)}`);

    // The member approves: the form posted back from the gateway's own page.
    const body = new URLSearchParams(form.hidden);
    body.set('decision', 'approve');
    const action = new URL(form.action || url.href, url);
    const approved = await raw('POST', action, {
      ...navigation('same-origin'),
      origin: gateway,
      referer: url.href,
      'content-type': 'application/x-www-form-urlencoded',
    }, body.toString());
    const location = approved.headers.location ?? null;
    record.approve = { status: approved.status, location, startsWithRedirectUri: !!location && location.startsWith(`${redirectUri}?`) };
    if (!location) throw new Error(`approving answered ${approved.status} without a Location: ${approved.body.slice(0, 1500)}`);

    // The app checks the response (iss: RFC 9207, state), then exchanges the code with its verifier.
    const callback = new URL(location, redirectUri);
    record.callback = {
      hasCode: callback.searchParams.has('code'),
      stateMatches: callback.searchParams.get('state') === state,
      iss: callback.searchParams.get('iss'),
    };
    const params = oauth.validateAuthResponse(as, client, callback, state);
    return { params, codeVerifier };
  };

  const first = {};
  results.first = first;
  const { params, codeVerifier } = await authorize(first);
  const tokens = await oauth.processAuthorizationCodeResponse(as, client,
    await oauth.authorizationCodeGrantRequest(as, client, basic, params, redirectUri, codeVerifier, insecure));
  first.tokens = summary(tokens);
  first.me = await graphql(tokens.access_token, '{ me { id nickname } }');
  // A field outside the granted scopes (history:read was not asked for).
  first.outsideScopes = await graphql(tokens.access_token, '{ me { searchHistory(first: 1) { edges { cursor } } } }');
  first.webSocket = await overWebSocket(tokens.access_token, '{ me { id nickname } }');

  // 3. Refresh: a new refresh token each time (rotation), and a working access token.
  const refreshed = await oauth.processRefreshTokenResponse(as, client,
    await oauth.refreshTokenGrantRequest(as, client, basic, tokens.refresh_token, insecure));
  results.refresh = {
    tokens: summary(refreshed),
    refreshTokenChanged: refreshed.refresh_token !== tokens.refresh_token,
    accessTokenChanged: refreshed.access_token !== tokens.access_token,
    me: await graphql(refreshed.access_token, '{ me { id nickname } }'),
  };

  // 4. The rotated-out refresh token used again (as a thief would): refused, and the whole grant
  // is revoked, so the newest refresh token and every access token stop working too.
  results.reuse = await failure(async () => summary(await oauth.processRefreshTokenResponse(as, client,
    await oauth.refreshTokenGrantRequest(as, client, basic, tokens.refresh_token, insecure))));
  results.afterReuse = {
    newestRefresh: await failure(async () => summary(await oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, basic, refreshed.refresh_token, insecure)))),
    newestAccess: await graphql(refreshed.access_token, '{ me { id nickname } }'),
    firstAccess: await graphql(tokens.access_token, '{ me { id nickname } }'),
  };

  // 5. A second authorization (the member consents again), then the app signs out: it revokes its
  // refresh token (client_secret_post this time for a confidential client).
  const second = {};
  results.second = second;
  const again = await authorize(second);
  const tokens2 = await oauth.processAuthorizationCodeResponse(as, client,
    await oauth.authorizationCodeGrantRequest(as, client, post, again.params, redirectUri, again.codeVerifier, insecure));
  second.tokens = summary(tokens2);
  second.me = await graphql(tokens2.access_token, '{ me { id nickname } }');
  second.differsFromFirst = tokens2.refresh_token !== tokens.refresh_token && tokens2.refresh_token !== refreshed.refresh_token;
  const revocation = await oauth.revocationRequest(as, client, post, tokens2.refresh_token, {
    additionalParameters: { token_type_hint: 'refresh_token' },
    ...insecure,
  });
  results.revocation = { status: revocation.status, processed: await failure(() => oauth.processRevocationResponse(revocation)) };
  results.afterRevocation = {
    refresh: await failure(async () => summary(await oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, post, tokens2.refresh_token, insecure)))),
    // RFC 7009 2.1: revoking a refresh token SHOULD also end its grant's access tokens.
    access: await graphql(tokens2.access_token, '{ me { id nickname } }'),
  };
} catch (e) {
  results.failure = String(e && e.stack || e);
  if (e?.cause) {
    try { results.failureCause = JSON.parse(JSON.stringify(e.cause, (_, v) => (v instanceof URLSearchParams ? Object.fromEntries(v) : v))); } catch { /* not serialisable */ }
  }
}
console.log(JSON.stringify(results));
