// The README's example, type-checked with the SDK by the test suite (never run: it needs a live
// gateway and a member's password). Keep the two the same.
import WebSocket from 'ws'; // Node 20 only; browsers and Node 22+ have a global WebSocket
import {
  createEcerClient,
  GatewayResponseError,
  HomeFeedDocument,
  LoginDocument,
  OnMessageReceivedDocument,
} from '../src/index.js';

export async function example(): Promise<void> {

  let token: string | undefined;
  const client = createEcerClient({
    url: 'https://api.ecer.example/graphql',
    token: () => token,
    webSocketImpl: WebSocket,
  });

  // Sign in (first-party apps; a member's password never goes to a third party).
  const { login } = await client.execute(LoginDocument, {
    input: { phone: '+8613800000000', password: '…' },
  });
  token = login.token ?? undefined;

  // A query: `feed` is typed from the schema.
  const feed = await client.execute(HomeFeedDocument, { first: 20, orderBy: 'LATEST', commentsFirst: 3 });
  for (const { node: post } of feed.posts.edges) console.log(post.title, post.likeCount);

  // A subscription over one shared WebSocket (graphql-transport-ws, the bearer token in
  // `connection_init`). Resume after a reconnect with `after: <last cursor>`.
  const stop = client.subscribe(OnMessageReceivedDocument, {}, {
    next: ({ messageReceived }) => console.log(messageReceived.sender?.nickname, messageReceived.body),
    error: (e) => console.error(e),
  });

  // Errors carry the gateway's machine-readable code (frontend-contract/ERRORS.md).
  try {
    await client.execute(HomeFeedDocument, { first: 1000 });
  } catch (e) {
    if (e instanceof GatewayResponseError && e.code === 'BAD_USER_INPUT') console.log(e.errors[0]?.extensions?.field);
  }
  stop();
  await client.close();
}
