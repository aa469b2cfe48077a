// The README's OAuth example, type-checked with the SDK by the test suite (never run here:
// tests/js/oauth-client.mjs runs the same flow against a gateway). Keep the two the same.
import * as oauth from 'oauth4webapi';
import { createEcerClient, MeDocument } from '../src/index.js';

export async function signInWithEcer(
  CLIENT_ID: string,
  CLIENT_SECRET: string,
  callbackUrl: string,
): Promise<void> {

  const issuer = new URL('https://api.ecer.example');
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2' }),
  );
  const client: oauth.Client = { client_id: CLIENT_ID };
  // A confidential app: client_secret_basic (oauth.ClientSecretPost works too); a public app: oauth.None().
  const clientAuth = oauth.ClientSecretBasic(CLIENT_SECRET);
  const redirectUri = 'https://partner.example/oauth/callback'; // exactly as registered

  // 1. Send the member to the gateway. Keep codeVerifier and state with the member's session in your app.
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const authorize = new URL(as.authorization_endpoint!);
  authorize.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope: 'profile:read posts:read',
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    ui_locales: 'zh-CN', // the sign-in and consent pages' language: zh-CN or en
  }).toString();
  // → redirect the browser to authorize.href

  // 2. The gateway sends the browser back to redirectUri with ?code=…&state=…&iss=… (or
  // ?error=access_denied when the member says no). validateAuthResponse checks iss and state and throws
  // oauth.AuthorizationResponseError on an error response.
  const params = oauth.validateAuthResponse(as, client, new URL(callbackUrl), state);
  let tokens = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, redirectUri, codeVerifier),
  );

  // 3. The access token is a bearer token like a member's own (HTTP and the WebSocket's connection_init).
  const ecer = createEcerClient({ url: `${issuer.origin}/graphql`, token: () => tokens.access_token });
  const { me } = await ecer.execute(MeDocument, {});
  console.log(me?.nickname);

  // 4. Before it expires (expires_in: 3600 s), refresh. Each refresh returns a new refresh token and
  // spends the old one: keep only the newest.
  tokens = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token!),
  );

  // 5. When the member signs out of your app, revoke the refresh token (RFC 7009): it ends this
  // sign-in's tokens; the member's consent stays until they withdraw it.
  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, clientAuth, tokens.refresh_token!),
  );
}
