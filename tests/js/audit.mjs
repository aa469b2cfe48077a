#!/usr/bin/env node
// GraphQL-over-HTTP conformance audit (graphql-http `serverAudits`).
//
// Usage: node audit.mjs <url>            e.g. node audit.mjs http://127.0.0.1:8080/graphql
//
// Prints exactly ONE line to stdout: a JSON array, in the library's audit order, of
//   { "id": "4655", "name": "MUST accept application/json and match the content-type",
//     "status": "ok" | "warn" | "error", "reason": null | "<failure message [response details]>" }
//
// Status mapping (the library's own AuditResult.status, see graphql-http/lib/audits/utils):
//   ok     -> "ok"
//   error  -> "error"   (failed MUST)
//   warn   -> "warn"    (failed SHOULD)
//   notice -> "warn"    (failed MAY; the library calls this "notice")
//   an audit that *throws* instead of failing an assertion (connection reset, timeout,
//   non-fetchable URL, ...) -> "error" with reason "fatal: ..." regardless of level.
// The requirement level is always the first word of `name` (MUST / SHOULD / MAY).
//
// Exit codes: 0 whenever the audit ran (the caller judges the results);
//             2 on bad usage or if the server could not be reached for any audit.
// A human-readable summary goes to stderr.
//
// Env: AUDIT_TIMEOUT_MS  per-request timeout (default 10000).

import { serverAudits } from 'graphql-http';

const BODY_EXCERPT_CHARS = 500;

function usage(msg) {
  if (msg) process.stderr.write(`audit.mjs: ${msg}\n`);
  process.stderr.write('usage: node audit.mjs <graphql-endpoint-url>\n');
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length !== 1) usage(args.length ? 'expected exactly one argument' : 'missing url');
let url;
try {
  url = new URL(args[0]);
} catch {
  usage(`invalid url: ${args[0]}`);
}
if (url.protocol !== 'http:' && url.protocol !== 'https:') usage(`unsupported protocol: ${url.protocol}`);

const timeoutMs = Number(process.env.AUDIT_TIMEOUT_MS ?? 10000);
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) usage('AUDIT_TIMEOUT_MS must be a positive number');

/** global fetch with a per-request timeout so a hanging server cannot hang the test */
function fetchWithTimeout(input, init = {}) {
  return fetch(input, { ...init, signal: init.signal ?? AbortSignal.timeout(timeoutMs) });
}

function errorMessage(err) {
  if (!(err instanceof Error)) return String(err);
  let msg = `${err.name}: ${err.message}`;
  // undici wraps the real network error in `cause` ("fetch failed")
  let cause = err.cause;
  while (cause) {
    msg += ` (cause: ${cause instanceof Error ? `${cause.code ?? cause.name}: ${cause.message}` : String(cause)})`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return msg;
}

/** Compact, single-purpose description of a failing audit's Response. */
async function describeResponse(res) {
  if (!res || typeof res !== 'object' || typeof res.status !== 'number') return '';
  const parts = [`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`];
  const ct = res.headers?.get?.('content-type');
  parts.push(`content-type: ${ct ?? '<none>'}`);
  let body;
  try {
    body = await res.text();
  } catch {
    body = null; // body already consumed by the assertion
  }
  if (body === null) {
    parts.push('body: <already consumed>');
  } else if (body.length === 0) {
    parts.push('body: <empty>');
  } else {
    const excerpt = body.length > BODY_EXCERPT_CHARS ? `${body.slice(0, BODY_EXCERPT_CHARS)}…(${body.length} chars)` : body;
    parts.push(`body: ${excerpt}`);
  }
  return ` [${parts.join('; ')}]`;
}

const STATUS_MAP = { ok: 'ok', warn: 'warn', error: 'error', notice: 'warn' };

const audits = serverAudits({ url: url.toString(), fetchFn: fetchWithTimeout });
const results = [];
let fatalCount = 0;
let lastFatal = '';

// Sequential on purpose: deterministic server logs, no connection storms.
for (const { id, name, fn } of audits) {
  try {
    const r = await fn();
    if (r.status === 'ok') {
      results.push({ id: r.id, name: r.name, status: 'ok', reason: null });
    } else {
      const status = STATUS_MAP[r.status] ?? 'error';
      const reason = `${r.reason ?? 'unknown failure'}${await describeResponse(r.response)}`;
      results.push({ id: r.id, name: r.name, status, reason });
    }
  } catch (err) {
    fatalCount++;
    lastFatal = errorMessage(err);
    results.push({ id, name, status: 'error', reason: `fatal: ${lastFatal}` });
  }
}

if (audits.length > 0 && fatalCount === audits.length) {
  process.stderr.write(`audit.mjs: every audit failed fatally; is the server up at ${url}?\nlast error: ${lastFatal}\n`);
  process.exit(2);
}

const counts = results.reduce((acc, r) => ((acc[r.status] = (acc[r.status] ?? 0) + 1), acc), {});
process.stderr.write(
  `audit.mjs: ${results.length} audits against ${url}: ` +
    `${counts.ok ?? 0} ok, ${counts.warn ?? 0} warn, ${counts.error ?? 0} error` +
    (fatalCount ? ` (${fatalCount} fatal)` : '') +
    '\n',
);

process.stdout.write(`${JSON.stringify(results)}\n`, () => process.exit(0));
