// Drives the SDK against a running gateway (the Rust test suite starts one in trusted-documents mode):
// a query, a mutation and a subscription, all by persisted id. Prints one JSON line of what it saw.
//
//   node dist/test/smoke.js <graphql-url> <token of member A> <token of member B> <member B's id> <start cursor>
import WebSocket from 'ws';

import { MeDocument, OnMessageReceivedDocument, SendMessageDocument, createEcerClient } from '../src/index.js';

const [url, tokenA, tokenB, userB, start] = process.argv.slice(2);
if (!url || !tokenA || !tokenB || !userB || !start) {
  process.stderr.write('usage: smoke.js <url> <tokenA> <tokenB> <userB> <start cursor>\n');
  process.exit(2);
}

const a = createEcerClient({ url, token: () => tokenA });
const b = createEcerClient({ url, token: () => tokenB, webSocketImpl: WebSocket });

const me = await a.execute(MeDocument, {});
// From the start of B's messages: the message arrives whether it was sent before or after the
// subscription began listening.
let timer: ReturnType<typeof setTimeout> | undefined;
const received = new Promise<string>((resolve, reject) => {
  const stop = b.subscribe(OnMessageReceivedDocument, { after: start }, {
    next: (data) => {
      stop();
      resolve(data.messageReceived.body);
    },
    error: reject,
  });
  timer = setTimeout(() => reject(new Error('no message within 10 s')), 10_000);
});
const sent = await a.execute(SendMessageDocument, { input: { toUserId: userB, body: 'hello from the SDK' } });
const body = await received
  .catch((e: unknown) => {
    throw new Error(`subscription failed: ${e instanceof Error ? e.message : JSON.stringify(e)}`);
  })
  .finally(() => clearTimeout(timer));
let refused = '';
try {
  await createEcerClient({ url }).execute(SendMessageDocument, { input: { toUserId: userB, body: 'signed out' } });
} catch (e) {
  refused = (e as { code?: string }).code ?? String(e);
}
await b.close();
process.stdout.write(
  `${JSON.stringify({ me: me.me?.nickname, sent: sent.sendMessage.message.body, received: body, signedOut: refused })}\n`,
);
