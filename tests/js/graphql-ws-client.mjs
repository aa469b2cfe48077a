// The real third-party client (npm graphql-ws, as web and mobile apps use it) against the gateway.
// Usage: node graphql-ws-client.mjs <http url of /graphql> <alice token> <bob token> <bob user id>
// Prints one JSON object describing what the client saw; the Rust test asserts on it.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [httpUrl, alice, bob, bobId] = process.argv.slice(2);
const wsUrl = httpUrl.replace(/^http/, 'ws');

async function post(token, query, variables) {
  const res = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return res.json();
}

const SEND = `mutation($to: ID, $body: String!) { sendMessage(input: { toUserId: $to, body: $body }) { message { cursor } } }`;
const RECEIVED = `subscription($after: String) { messageReceived(after: $after) { body cursor } }`;

function take(client, query, variables, count) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const dispose = client.subscribe({ query, variables }, {
      next: (v) => {
        if (v.errors) return reject(new Error(JSON.stringify(v.errors)));
        seen.push(v.data.messageReceived.body);
        if (seen.length === count) {
          dispose();
          resolve(seen);
        }
      },
      error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
      complete: () => {},
    });
  });
}

const out = {};
const closes = [];
const client = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  connectionParams: { authToken: bob },
  retryAttempts: 0,
  on: { closed: (e) => closes.push(e.code) },
});

// Live delivery: subscribe, then send once the subscription is up.
let connected = new Promise((r) => client.on('connected', r));
const live = take(client, RECEIVED, {}, 2);
await connected;
await new Promise((r) => setTimeout(r, 200));
const first = await post(alice, SEND, { to: bobId, body: 'hello from graphql-ws' });
const cursor = first.data.sendMessage.message.cursor;
await post(alice, SEND, { to: bobId, body: 'second' });
out.live = await live;

// Resume: a new subscription from the first message's cursor replays what came after it.
out.resumed = await take(client, RECEIVED, { after: cursor }, 1);
await client.dispose();

// A bad token: the server closes with 4403 and the client reports it as fatal.
const rejected = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  connectionParams: { authToken: 'nope' },
  retryAttempts: 0,
  lazy: false,
  on: { closed: (e) => closes.push(e.code) },
});
out.rejected = await new Promise((resolve) => {
  rejected.subscribe({ query: RECEIVED }, { next: () => {}, error: (e) => resolve(e.code ?? String(e)), complete: () => resolve('complete') });
});
await rejected.dispose();
out.closes = closes;
console.log(JSON.stringify(out));
process.exit(0);
