// Automatic persisted queries with the real client libraries: Apollo Client 4 (PersistedQueryLink,
// hashed queries over GET) and urql 5 (@urql/exchange-persisted). Each library runs the same query
// with two fresh clients: the first registers the query after a PersistedQueryNotFound, the second is
// served by hash alone.
// Usage: node apq-clients.mjs <http url of /graphql>
// Prints one JSON object: per library, the data each client got and every request it sent.
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { Client, fetchExchange } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';

const [url] = process.argv.slice(2);
const sha256 = (text) => createHash('sha256').update(text).digest('hex');

function recordingFetch(log) {
  return async (input, init = {}) => {
    const target = typeof input === 'string' ? input : input.url;
    const method = (init.method || 'GET').toUpperCase();
    let hasQuery;
    if (method === 'GET') {
      hasQuery = new URL(target).searchParams.has('query');
    } else {
      hasQuery = JSON.parse(init.body || '{}').query !== undefined;
    }
    const res = await fetch(input, init);
    const copy = await res.clone().text();
    log.push({ method, hasQuery, status: res.status, notFound: copy.includes('PersistedQueryNotFound') });
    return res;
  };
}

async function apollo(query) {
  const requests = [];
  const results = [];
  for (let i = 0; i < 2; i++) {
    const link = new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
      new HttpLink({ uri: url, fetch: recordingFetch(requests) }),
    );
    const client = new ApolloClient({ link, cache: new InMemoryCache() });
    const { data } = await client.query({ query: gql(query), fetchPolicy: 'network-only' });
    results.push(data);
  }
  return { results, requests };
}

async function urql(query) {
  const requests = [];
  const results = [];
  for (let i = 0; i < 2; i++) {
    const client = new Client({
      url,
      fetch: recordingFetch(requests),
      exchanges: [persistedExchange({ preferGetForPersistedQueries: true, generateHash: async (q) => sha256(q) }), fetchExchange],
    });
    const result = await client.query(query, {}, { requestPolicy: 'network-only' }).toPromise();
    if (result.error) throw result.error;
    results.push(result.data);
  }
  return { results, requests };
}

const out = {
  apollo: await apollo('query ApqApollo { boards(first: 2) { edges { node { slug } } } }'),
  urql: await urql('query ApqUrql { boards(first: 3) { edges { node { slug } } } }'),
};
console.log(JSON.stringify(out));
