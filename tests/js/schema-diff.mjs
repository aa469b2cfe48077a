// Lists the changes between two SDL files with graphql-inspector, as JSON lines:
// {"criticality": "BREAKING" | "DANGEROUS" | "NON_BREAKING", "type": ..., "message": ..., "path": ...}.
// Usage: node schema-diff.mjs OLD.graphql NEW.graphql
import { readFileSync } from 'node:fs';
import { buildSchema } from 'graphql';
import { diff } from '@graphql-inspector/core';

const [oldPath, newPath] = process.argv.slice(2);
if (!oldPath || !newPath) {
  console.error('usage: node schema-diff.mjs OLD.graphql NEW.graphql');
  process.exit(2);
}
const load = (path) => buildSchema(readFileSync(path, 'utf8'));
const changes = await diff(load(oldPath), load(newPath));
for (const c of changes) {
  console.log(JSON.stringify({ criticality: c.criticality.level, type: c.type, message: c.message, path: c.path ?? null }));
}
