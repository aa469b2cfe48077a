#!/usr/bin/env node
// Prints the persisted-query manifest of the frontend contract: every operation in
// frontend-contract/operations, printed canonically the way the GraphQL codegen client preset prints
// persisted documents (`printExecutableGraphQLDocument` of @graphql-tools/documents: one line, fields
// sorted, so comments and formatting do not change hashes), keyed by the SHA-256 of that body. So the
// `id`s are exactly the ids the client preset writes to persisted-documents.json and sends as
// `documentId` (frontend-contract/sdk, and any app generated the same way). The format is Apollo's
// persisted query manifest (`@apollo/generate-persisted-query-manifest`).
//
// Usage: node contract-manifest.mjs <operations-dir>   (npm run manifest writes the committed file)

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { printExecutableGraphQLDocument } from '@graphql-tools/documents';
import { Kind, parse } from 'graphql';

const [dir] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: node contract-manifest.mjs <operations-dir>\n');
  process.exit(2);
}
const operations = readdirSync(dir)
  .filter((f) => f.endsWith('.graphql'))
  .sort()
  .map((file) => {
    const doc = parse(readFileSync(join(dir, file), 'utf8'));
    const op = doc.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION);
    const body = printExecutableGraphQLDocument(doc);
    return {
      id: createHash('sha256').update(body).digest('hex'),
      name: op.name.value,
      type: op.operation,
      body,
    };
  });
process.stdout.write(`${JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations }, null, 2)}\n`);
