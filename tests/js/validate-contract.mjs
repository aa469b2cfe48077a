#!/usr/bin/env node
// Validates the frontend contract's operations against the schema SDL.
//
// Usage: node validate-contract.mjs <schema.graphql> <operations-dir>
//
// For every `*.graphql` file directly in <operations-dir> (sorted by name):
//   * it must parse;
//   * it must hold exactly one operation, named, and the name must equal the file name
//     without `.graphql` (fragments may sit beside it);
//   * it must pass graphql-js `validate` against the schema (all standard rules: known fields,
//     argument and variable types, unused variables/fragments, ...);
//   * contract conventions: every field argument is passed as a variable (no inline literals), and
//     every mutation root field takes exactly one argument, `input`.
//
// Prints exactly ONE line to stdout:
//   { "ok": bool, "operations": ["HomeFeed", ...], "errors": [{ "file": "X.graphql", "message": "..." }] }
// `operations` lists the names of the files that passed every check. A schema that fails to build,
// an unreadable directory or a directory with no operations is reported as an error with
// `file` set to the schema path or the directory.
//
// Exit codes: 0 when ok, 1 otherwise, 2 on bad usage.

import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Kind, NoDeprecatedCustomRule, Source, buildSchema, parse, specifiedRules, validate, visit } from 'graphql';

const args = process.argv.slice(2);
if (args.length !== 2) {
  process.stderr.write('usage: node validate-contract.mjs <schema.graphql> <operations-dir>\n');
  process.exit(2);
}
const [schemaPath, opsDir] = args;

const errors = [];
const operations = [];

function location(err) {
  const loc = err.locations?.[0];
  return loc ? ` (line ${loc.line}, column ${loc.column})` : '';
}

function finish() {
  const ok = errors.length === 0;
  process.stdout.write(`${JSON.stringify({ ok, operations, errors })}\n`);
  process.exit(ok ? 0 : 1);
}

/** Contract rules graphql-js does not check: variables for every argument, one `input` per mutation. */
function conventionErrors(doc) {
  const out = [];
  visit(doc, {
    Argument(node) {
      if (node.value.kind !== Kind.VARIABLE) {
        const loc = node.loc ? ` (line ${node.loc.startToken.line}, column ${node.loc.startToken.column})` : '';
        out.push(`argument ${node.name.value} must be passed as a variable${loc}`);
      }
    },
  });
  for (const op of doc.definitions) {
    if (op.kind !== Kind.OPERATION_DEFINITION || op.operation !== 'mutation') continue;
    for (const sel of op.selectionSet.selections) {
      if (sel.kind !== Kind.FIELD) continue;
      const names = (sel.arguments ?? []).map((a) => a.name.value);
      if (names.length !== 1 || names[0] !== 'input') {
        out.push(`mutation field ${sel.name.value} must take exactly one argument, input`);
      }
    }
  }
  return out;
}

let schema;
try {
  schema = buildSchema(readFileSync(schemaPath, 'utf8'));
} catch (err) {
  errors.push({ file: schemaPath, message: `schema: ${err.message}` });
  finish();
}

let files;
try {
  files = readdirSync(opsDir, { withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.graphql'))
    .map((d) => d.name)
    .sort();
} catch (err) {
  errors.push({ file: opsDir, message: `cannot read operations directory: ${err.message}` });
  finish();
}
if (files.length === 0) {
  errors.push({ file: opsDir, message: 'no .graphql files found' });
}

for (const file of files) {
  const expected = basename(file, '.graphql');
  let doc;
  try {
    doc = parse(new Source(readFileSync(join(opsDir, file), 'utf8'), file));
  } catch (err) {
    errors.push({ file, message: `${err.message}${location(err)}` });
    continue;
  }
  const ops = doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  let fileOk = true;
  if (ops.length !== 1) {
    errors.push({ file, message: `expected exactly one operation, found ${ops.length}` });
    fileOk = false;
  } else if (!ops[0].name) {
    errors.push({ file, message: `the operation must be named ${expected}` });
    fileOk = false;
  } else if (ops[0].name.value !== expected) {
    errors.push({
      file,
      message: `operation is named ${ops[0].name.value} but the file name says ${expected}`,
    });
    fileOk = false;
  }
  // The contract is what the apps ship: it uses no deprecated field, argument or enum value.
  for (const err of validate(schema, doc, [...specifiedRules, NoDeprecatedCustomRule])) {
    errors.push({ file, message: `${err.message}${location(err)}` });
    fileOk = false;
  }
  for (const message of conventionErrors(doc)) {
    errors.push({ file, message });
    fileOk = false;
  }
  if (fileOk) operations.push(expected);
}

finish();
