// The full OpenID login over plain HTTP, with a cookie jar: our demo app against oidc-provider.
// Run: node --test flow.mjs (after `cargo build`; see README "Interoperability").

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { Agent, form, JWT_SECRET, PROVIDER, ROLE, start } from './harness.mjs';

let env;
const agent = new Agent();
const json = { accept: 'application/json' };

before(async () => { env = await start('flow'); });
after(async () => {
  await env?.stop();
  assert.deepEqual(env?.provider.serverErrors ?? [], [], 'oidc-provider hit no error of its own');
});

/** Starts a login at our app; returns the provider's authorization URL and its parameters. */
async function startLogin() {
  const r = await agent.request(`${env.app}/auth/${PROVIDER}`);
  assert.equal(r.status, 303, r.body);
  const url = new URL(r.location);
  return { url, q: Object.fromEntries(url.searchParams) };
}

/**
 * Walks the provider from its authorization URL to the redirect back to our callback: logs in
 * as `login` on the dev login page and consents. Returns the callback URL (not yet requested).
 */
async function throughProvider(authorize, login = 'ada') {
  const seen = [];
  let next = { url: authorize.href, method: 'GET' };
  for (let step = 0; step < 12; step++) {
    if (next.url.startsWith(env.callback)) return new URL(next.url);
    seen.push(`${next.method} ${next.url}`);
    const r = await agent.request(next.url, next);
    if (r.status >= 300 && r.status < 400) {
      next = { url: r.location, method: 'GET' };
      continue;
    }
    assert.equal(r.status, 200, `${seen.at(-1)} → ${r.status}: ${r.body.slice(0, 500)}`);
    const f = form(r.body, next.url);
    assert.ok(f, `a form on ${next.url}: ${r.body.slice(0, 500)}`);
    const fields = { ...f.fields };
    if (fields.prompt === 'login') Object.assign(fields, { login, password: 'anything' });
    next = { url: f.action, method: 'POST', form: fields };
  }
  assert.fail(`no redirect to our callback after:\n${seen.join('\n')}`);
}

function claimsOf(jwt) {
  const [header, payload, signature] = jwt.split('.');
  const expected = createHmac('sha256', JWT_SECRET).update(`${header}.${payload}`).digest('base64url');
  assert.equal(signature, expected, 'the JWT is signed with our HS256 secret');
  assert.equal(JSON.parse(Buffer.from(header, 'base64url')).alg, 'HS256');
  return JSON.parse(Buffer.from(payload, 'base64url'));
}

describe('our app against oidc-provider, over HTTP', () => {
  let firstCode;

  it('discovery worked at launch: the home page offers the provider', async () => {
    const r = await agent.request(`${env.app}/`);
    assert.equal(r.status, 200);
    assert.match(r.body, new RegExp(`Sign in with ${PROVIDER}<`));
    assert.doesNotMatch(readFileSync(env.logFile, 'utf8'), /discovery of provider .* failed/);
  });

  it('signs in: authorize → login page → consent → callback → 303 with the jwt cookie', async () => {
    const { url, q } = await startLogin();
    assert.equal(url.origin, env.issuer, 'sent to the issuer discovery named');
    assert.equal(q.response_type, 'code');
    assert.equal(q.redirect_uri, env.callback);
    assert.equal(q.code_challenge_method, 'S256');
    assert.deepEqual(q.scope.split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);
    assert.equal(q.prompt, 'consent');
    assert.ok(q.state.length >= 32 && q.nonce.length >= 32);

    const callback = await throughProvider(url);
    assert.equal(callback.searchParams.get('state'), q.state);
    assert.equal(callback.searchParams.get('iss'), env.issuer, 'RFC 9207 iss, as advertised');
    firstCode = callback.searchParams.get('code');
    assert.ok(firstCode);

    const r = await agent.request(callback.href);
    assert.equal(r.status, 303, r.body);
    assert.equal(new URL(r.location).pathname, '/');
    assert.deepEqual(env.provider.signedWith, [env.provider.idTokenAlg], 'one id_token, verified');
    assert.ok(agent.cookie(env.app, 'jwt'), 'the jwt cookie is set');
    const setCookie = r.headers.getSetCookie().find((c) => c.startsWith('jwt='));
    assert.match(setCookie, /HttpOnly/i);
    assert.match(setCookie, /SameSite=Lax/i);
  });

  it('is signed in: /auth/session and /me name the provider and the profile from userinfo', async () => {
    const s = await agent.request(`${env.app}/auth/session`);
    assert.equal(s.status, 200, s.body);
    const session = JSON.parse(s.body);
    assert.equal(session.provider, PROVIDER);
    assert.equal(session.user.name, 'Ada Lovelace');
    assert.equal(session.user.email, 'ada@interop.localhost');

    const m = await agent.request(`${env.app}/me`);
    assert.equal(m.status, 200, m.body);
    const me = JSON.parse(m.body);
    assert.equal(me.provider, PROVIDER);
    assert.equal(me.name, 'Ada Lovelace');
    assert.equal(me.id, session.user.id);

    const page = await agent.request(`${env.app}/`);
    assert.match(page.body, /<strong id="user-name">Ada Lovelace<\/strong>/);
  });

  it('the JWT carries sub, role, provider, exp in the future and a jti', async () => {
    const session = JSON.parse((await agent.request(`${env.app}/auth/session`)).body);
    const claims = claimsOf(session.jwt);
    const now = Math.floor(Date.now() / 1000);
    assert.equal(claims.sub, String(session.user.id));
    assert.equal(claims.role, ROLE);
    assert.equal(claims.provider, PROVIDER);
    assert.ok(claims.exp > now, `exp ${claims.exp} > now ${now}`);
    assert.ok(claims.iat <= now + 1);
    assert.equal(typeof claims.jti, 'string');
    assert.ok(claims.jti.length >= 16);
    assert.equal(claims.name, 'Ada Lovelace');
  });

  it('refreshes through offline_access: a refresh token was issued and works', async () => {
    const rt = await agent.request(`${env.app}/auth/refresh_token`);
    assert.equal(rt.status, 200, `a refresh token is stored: ${rt.body}`);
    const before = JSON.parse((await agent.request(`${env.app}/auth/token`)).body).token;
    const r = await agent.request(`${env.app}/auth/${PROVIDER}/refresh`, { method: 'POST' });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { status: 'refreshed' });
    const afterwards = JSON.parse((await agent.request(`${env.app}/auth/token`)).body).token;
    assert.notEqual(afterwards, before, 'a new access token is stored');
    // And again: works with whatever refresh token the provider left us (rotated or not).
    const again = await agent.request(`${env.app}/auth/${PROVIDER}/refresh`, { method: 'POST' });
    assert.equal(again.status, 200, again.body);
  });

  it('a replayed code (with a fresh, valid state) is refused: 502 provider_error', async () => {
    const { q } = await startLogin();
    const replay = new URL(env.callback);
    replay.search = new URLSearchParams({ code: firstCode, state: q.state, iss: env.issuer }).toString();
    const r = await agent.request(replay.href, { headers: json });
    assert.equal(r.status, 502, r.body);
    assert.equal(JSON.parse(r.body).error, 'provider_error');
  });

  it('a wrong state is refused: 400 state_mismatch', async () => {
    const { url } = await startLogin();
    const callback = await throughProvider(url);
    callback.searchParams.set('state', 'not-the-state-of-this-flow');
    const r = await agent.request(callback.href, { headers: json });
    assert.equal(r.status, 400, r.body);
    assert.equal(JSON.parse(r.body).error, 'state_mismatch');
    // Still signed in as before.
    assert.equal((await agent.request(`${env.app}/me`)).status, 200);
  });

  it('logs out: 303, then /me and /auth/session are 401', async () => {
    const r = await agent.request(`${env.app}/auth/logout`, { method: 'POST', headers: { origin: env.app } });
    assert.equal(r.status, 303);
    assert.equal(agent.cookie(env.app, 'jwt'), undefined);
    assert.equal((await agent.request(`${env.app}/me`)).status, 401);
    assert.equal((await agent.request(`${env.app}/auth/session`)).status, 401);
  });
});
