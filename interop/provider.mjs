// A real OpenID provider for the interoperability tests: `oidc-provider` (panva) with one
// confidential client, its built-in development login and consent pages, and fresh signing keys.
// Plain HTTP on loopback only: test data, nothing to protect.
//
// Standalone: node provider.mjs [port] (issuer http://localhost:<port>; the client below,
// redirect_uri from REDIRECT_URI or http://127.0.0.1:8000/auth/interop/callback).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

import Provider from 'oidc-provider';

export const CLIENT_ID = 'rocket-interop';
// Characters that client_secret_basic must form-encode (RFC 6749 2.3.1): a real interop trap.
export const CLIENT_SECRET = 'interop:secret+with/special=chars%~not-a-real-one';

// Who may sign in: any login; these get a full profile, others only a name.
const PEOPLE = {
  ada: { name: 'Ada Lovelace', email: 'ada@interop.localhost' },
};

function account(login) {
  const person = PEOPLE[login] ?? { name: login };
  return {
    accountId: login,
    // oidc-provider keeps only what the granted scopes allow.
    async claims() {
      return {
        sub: login,
        name: person.name,
        email: person.email,
        email_verified: person.email !== undefined,
      };
    },
  };
}

/**
 * Starts the provider on `127.0.0.1:port` (browsers reach it as `localhost`); resolves to
 * `{ issuer, provider, idTokenAlg, signedWith, serverErrors, close() }`.
 */
export async function startProvider({ port, redirectUri, idTokenAlg = process.env.INTEROP_ID_TOKEN_ALG ?? 'RS256' }) {
  const issuer = `http://localhost:${port}`;
  // Several fresh keys, as real providers publish; the EC and OKP ones without `alg`, so the
  // client must take the algorithm from the key type. id_tokens are signed with RS256 (OpenID's
  // default) unless INTEROP_ID_TOKEN_ALG says ES256 or EdDSA.
  const key = (kid, type, options) => ({
    ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }), kid, use: 'sig',
  });
  const keys = [
    { ...key('interop-rs256', 'rsa', { modulusLength: 2048 }), alg: 'RS256' },
    key('interop-es256', 'ec', { namedCurve: 'P-256' }),
    key('interop-ed25519', 'ed25519'),
  ];
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: idTokenAlg,
    }],
    jwks: { keys },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'picture'] },
    // Refresh tokens only for offline_access (asked with prompt=consent) and a client allowed
    // the refresh_token grant: the library's default, said out loud.
    issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
      && code.scopes.has('offline_access'),
    findAccount: async (_ctx, sub) => account(sub),
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    // Said explicitly, which also keeps the library from printing a notice for each.
    ttl: {
      AccessToken: 600, AuthorizationCode: 60, Grant: 3600, IdToken: 600, Interaction: 600,
      RefreshToken: 3600, Session: 3600,
    },
  });
  const failures = [];
  provider.on('server_error', (_ctx, error) => failures.push(error));
  const signedWith = [];
  provider.on('grant.success', (ctx) => {
    const idToken = ctx.body?.id_token;
    if (idToken) signedWith.push(JSON.parse(Buffer.from(idToken.split('.')[0], 'base64url')).alg);
  });
  const server = await new Promise((resolve, reject) => {
    const s = provider.listen(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
  return {
    issuer,
    provider,
    idTokenAlg,
    /** The `alg` of each id_token the token endpoint issued. */
    signedWith,
    /** Errors the provider hit itself (a 500): none expected. */
    serverErrors: failures,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[2] ?? 3000);
  const redirectUri = process.env.REDIRECT_URI ?? 'http://127.0.0.1:8000/auth/interop/callback';
  const { issuer } = await startProvider({ port, redirectUri });
  console.log(`oidc-provider: issuer ${issuer}, client ${CLIENT_ID} / ${CLIENT_SECRET}, redirect_uri ${redirectUri}`);
}
