// Generates src/gql/ from the gateway's schema and the frontend contract's operations: a typed
// document per operation, and persisted-documents.json whose sha256 ids are the ids of the
// gateway's manifest (frontend-contract/persisted-query-manifest.json), so the SDK can send ids only.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../../schema.graphql',
  documents: ['../operations/*.graphql'],
  generates: {
    './src/gql/': {
      preset: 'client',
      presetConfig: {
        fragmentMasking: false,
        persistedDocuments: { hashAlgorithm: 'sha256', mode: 'embedHashInDocument' },
      },
      config: {
        enumsAsTypes: true,
        useTypeImports: true,
        emitLegacyCommonJSImports: false,
        scalars: { DateTime: 'string', Upload: 'File | Blob' },
      },
    },
  },
  ignoreNoDocuments: false,
};

export default config;
