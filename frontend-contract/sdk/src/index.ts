// A typed client for the ecer gateway. Every operation of the frontend contract is a typed document
// (`./gql/graphql`), sent by its persisted id (`documentId: "sha256:…"`), which the gateway runs in
// trusted-documents mode too; results and variables are typed by the schema.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';

export * from './gql/graphql.js';

/** One entry of a GraphQL response's `errors`; `extensions.code` is listed in ERRORS.md. */
export interface GatewayError {
  message: string;
  path?: ReadonlyArray<string | number>;
  extensions?: { code?: string; field?: string; retryAfter?: number; [key: string]: unknown };
}

/** A response that carried errors (the partial `data`, if any, is kept). */
export class GatewayResponseError extends Error {
  readonly errors: GatewayError[];
  readonly data: unknown;
  readonly status: number;

  constructor(errors: GatewayError[], data: unknown, status: number) {
    super(errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('; '));
    this.name = 'GatewayResponseError';
    this.errors = errors;
    this.data = data;
    this.status = status;
  }

  /** The first error's machine-readable code (`UNAUTHENTICATED`, `BAD_USER_INPUT`, …). */
  get code(): string | undefined {
    return this.errors[0]?.extensions?.code;
  }
}

export interface EcerClientOptions {
  /** The gateway's GraphQL endpoint, e.g. `https://api.ecer.example/graphql`. */
  url: string;
  /** The member's bearer token (from `login`, or an app's access token), if signed in. */
  token?: () => string | null | undefined | Promise<string | null | undefined>;
  /** `fetch` to use (defaults to the global one). */
  fetch?: typeof fetch;
  /** A WebSocket implementation where there is no global one (Node 20: the `ws` package). */
  webSocketImpl?: unknown;
}

interface Meta {
  __meta__?: { hash?: string };
  definitions: ReadonlyArray<{ kind: string; name?: { value: string } }>;
}

/** The persisted id and operation name of a generated document. */
function identify(document: TypedDocumentNode<unknown, unknown>): { documentId: string; operationName: string } {
  const meta = document as unknown as Meta;
  const documentId = meta.__meta__?.hash;
  const operation = meta.definitions.find((d) => d.kind === 'OperationDefinition');
  if (!documentId || !operation?.name) {
    throw new Error('not a document of this SDK: generated documents carry their persisted id');
  }
  return { documentId, operationName: operation.name.value };
}

export interface Sink<T> {
  next(value: T): void;
  error?(error: unknown): void;
  complete?(): void;
}

export interface EcerClient {
  /** Runs a query or mutation; resolves with `data`, rejects with `GatewayResponseError`. */
  execute<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R>;
  /** Subscribes over one shared WebSocket; returns the function that ends the subscription. */
  subscribe<R, V>(document: TypedDocumentNode<R, V>, variables: V | undefined, sink: Sink<R>): () => void;
  /** Closes the WebSocket, if one was opened. */
  close(): Promise<void>;
}

export function createEcerClient(options: EcerClientOptions): EcerClient {
  const doFetch = options.fetch ?? fetch;
  let ws: WsClient | undefined;

  const socket = (): WsClient => {
    ws ??= createWsClient({
      url: options.url.replace(/^http/, 'ws'),
      webSocketImpl: options.webSocketImpl,
      lazy: true,
      retryAttempts: Infinity,
      connectionParams: async () => {
        const token = await options.token?.();
        return token ? { authToken: token } : {};
      },
    });
    return ws;
  };

  return {
    async execute<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
      const { documentId, operationName } = identify(document as TypedDocumentNode<unknown, unknown>);
      const token = await options.token?.();
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json',
      };
      if (token) headers.authorization = `Bearer ${token}`;
      const response = await doFetch(options.url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ documentId, operationName, variables: variables ?? {} }),
      });
      const body = (await response.json()) as { data?: R | null; errors?: GatewayError[] };
      if (body.errors?.length || body.data == null) {
        throw new GatewayResponseError(body.errors ?? [], body.data, response.status);
      }
      return body.data;
    },

    subscribe<R, V>(document: TypedDocumentNode<R, V>, variables: V | undefined, sink: Sink<R>): () => void {
      const { documentId, operationName } = identify(document as TypedDocumentNode<unknown, unknown>);
      // By persisted id, as over HTTP: no document text travels (graphql-ws insists on a string
      // `query`; the gateway reads an empty one next to a `documentId` as none).
      const payload = { query: '', documentId, operationName, variables: (variables ?? {}) as Record<string, unknown> };
      return socket().subscribe<R>(payload as never, {
        next: (result) => {
          if (result.errors?.length) {
            sink.error?.(new GatewayResponseError(result.errors as GatewayError[], result.data, 200));
          } else if (result.data) {
            sink.next(result.data as R);
          }
        },
        error: (e) =>
          sink.error?.(Array.isArray(e) ? new GatewayResponseError(e as GatewayError[], null, 200) : e),
        complete: () => sink.complete?.(),
      });
    },

    async close(): Promise<void> {
      await ws?.dispose();
    },
  };
}
