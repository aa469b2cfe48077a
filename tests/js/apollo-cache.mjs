// Apollo Client's normalised cache against the contract's post page: the page is written to the cache,
// a live comment from `commentAdded` is appended to it, and the cache must read the page back whole.
// Any "Missing field" (a selection the server left out, or an event that does not carry what the page
// shows) fails: Apollo would then refetch or render holes.
// Usage: node apollo-cache.mjs <http url of /graphql> <post id> <commenter token>
// Prints one JSON object: what the cache holds and every warning Apollo logged.
import { readFileSync } from 'node:fs';
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [httpUrl, postId, commenter] = process.argv.slice(2);
const operations = new URL('../../frontend-contract/operations/', import.meta.url);
const op = (name) => gql(readFileSync(new URL(`${name}.graphql`, operations), 'utf8'));

const warnings = [];
for (const level of ['warn', 'error', 'log', 'info', 'debug']) {
  console[level] = (...args) => warnings.push(`${level}: ${args.map(String).join(' ')}`);
}
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

const ws = createClient({ url: httpUrl.replace(/^http/, 'ws'), webSocketImpl: WebSocket, lazy: false });
const link = split(
  ({ query }) => getMainDefinition(query).operation === 'subscription',
  new GraphQLWsLink(ws),
  new HttpLink({ uri: httpUrl }),
);
const cache = new InMemoryCache();
const client = new ApolloClient({ link, cache });
const PostPage = op('PostPage');
const variables = { id: postId, commentsFirst: 20, repliesFirst: 3 };

await client.query({ query: PostPage, variables, fetchPolicy: 'network-only' });

const live = await new Promise((resolve, reject) => {
  const sub = client.subscribe({ query: op('OnCommentAdded'), variables: { postId } }).subscribe({
    next: ({ data, error }) => {
      if (error) return reject(error);
      sub.unsubscribe();
      resolve(data.commentAdded);
    },
    error: reject,
  });
  // Another member comments once the subscription is open.
  setTimeout(() => {
    fetch(httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${commenter}` },
      body: JSON.stringify({
        query: 'mutation($p: ID!) { createComment(input: { postId: $p, body: "Live from the fair" }) { comment { id } } }',
        variables: { p: postId },
      }),
    }).catch(reject);
  }, 500);
  setTimeout(() => reject(new Error('no commentAdded event within 10 s')), 10_000);
});

// What an app does with the event: append the new comment's edge to the page's list.
cache.updateQuery({ query: PostPage, variables }, (page) => ({
  ...page,
  post: {
    ...page.post,
    commentCount: page.post.commentCount + 1,
    comments: {
      ...page.post.comments,
      edges: [...page.post.comments.edges, { __typename: 'CommentEdge', cursor: live.cursor, node: live.node }],
    },
  },
}));

const diff = cache.diff({ query: PostPage, variables, returnPartialData: true, optimistic: false });
print({
  complete: diff.complete,
  missing: diff.missing ? String(diff.missing) : null,
  commentIds: diff.result?.post?.comments?.edges?.map((e) => e.node.id) ?? [],
  liveId: live.node.id,
  warnings,
});
await ws.dispose();
process.exit(0);
