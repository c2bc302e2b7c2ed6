// What the interoperability tests share: a real OpenID provider (provider.mjs) on
// `localhost`, our demo binary on `127.0.0.1` with a `kind = "oidc"` provider named `interop`
// whose issuer is that provider; the fake Sign in with Apple (examples/fake_apple.rs) on
// `127.0.0.1` with the demo binary on `localhost`; and a small cookie jar for driving them over
// plain HTTP.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { CLIENT_ID, CLIENT_SECRET, startProvider } from './provider.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET = resolve(ROOT, process.env.CARGO_TARGET_DIR ?? 'target');
/** Where logs and screenshots go (a CI artifact). */
export const OUT = join(TARGET, 'interop');
export const PROVIDER = 'interop';
export const JWT_SECRET = 'interop-only-jwt-secret-0123456789abcdef';
export const ROLE = 'web_user';

async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

/** Children to kill however the process ends (a failed assertion, Ctrl-C, SIGTERM from CI). */
const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => process.exit(130));
}

/**
 * Starts the provider and the demo binary (`DEMO_BIN`, default `target/debug/rocket_social_auth`);
 * resolves to `{ app, issuer, provider, logFile, stop() }`. `name` names the log file.
 */
export async function start(name) {
  mkdirSync(OUT, { recursive: true });
  const [appPort, providerPort] = [await freePort(), await freePort()];
  const app = `http://127.0.0.1:${appPort}`;
  const callback = `${app}/auth/${PROVIDER}/callback`;
  const provider = await startProvider({ port: providerPort, redirectUri: callback });
  const env = await launchApp({
    name,
    app,
    appPort,
    providers: `
[default.social_auth.providers.${PROVIDER}]
kind = "oidc"
issuer = "${provider.issuer}"
client_id = "${CLIENT_ID}"
client_secret = "${CLIENT_SECRET}"
offline = true
`,
    onStop: () => provider.close(),
  });
  return { ...env, callback, issuer: provider.issuer, provider };
}

export const APPLE_CLIENT_ID = 'com.example.interop';
export const APPLE_TEAM_ID = 'TEAM123456';

/**
 * Starts the fake Sign in with Apple (`FAKE_APPLE_BIN`, default
 * `target/debug/examples/fake_apple`) on `127.0.0.1` and the demo binary on `localhost`: two
 * sites, so that Apple's `form_post` is a cross-site POST for SameSite purposes. Resolves to
 * `{ app, callback, issuer, logFile, stop() }`.
 */
export async function startApple(name) {
  mkdirSync(OUT, { recursive: true });
  const bin = process.env.FAKE_APPLE_BIN ?? join(TARGET, 'debug', 'examples', 'fake_apple');
  const fake = spawn(bin, [APPLE_CLIENT_ID, APPLE_TEAM_ID], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(fake);
  const line = await new Promise((ok, fail) => {
    let out = '';
    fake.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) ok(out.slice(0, out.indexOf('\n')));
    });
    fake.once('error', (e) => fail(new Error(`${e.message} (run \`cargo build --example fake_apple\` first, or set FAKE_APPLE_BIN)`)));
    fake.once('exit', (code) => fail(new Error(`fake_apple exited (${code})`)));
  });
  const { issuer, key_id: keyId, private_key: privateKey } = JSON.parse(line);
  const appPort = await freePort();
  const app = `http://localhost:${appPort}`;
  const env = await launchApp({
    name,
    app,
    appPort,
    providers: `
[default.social_auth.providers.apple]
client_id = "${APPLE_CLIENT_ID}"
team_id = "${APPLE_TEAM_ID}"
key_id = "${keyId}"
private_key = """${privateKey}"""
issuer = "${issuer}"
`,
    onStop: async () => {
      fake.kill('SIGKILL');
      children.delete(fake);
    },
  });
  return { ...env, callback: `${app}/auth/apple/callback`, issuer };
}

/**
 * Starts the demo binary (`DEMO_BIN`, default `target/debug/rocket_social_auth`) on `appPort`
 * with `public_url = app` and the `providers` tables; resolves once `/health` answers.
 */
async function launchApp({ name, app, appPort, providers, onStop }) {
  const dir = mkdtempSync(join(tmpdir(), 'rsa-interop-'));
  const config = join(dir, 'Rocket.toml');
  writeFileSync(config, `
[default]
address = "127.0.0.1"
port = ${appPort}
template_dir = "${join(ROOT, 'templates')}"
log_level = "normal"

[default.databases.social_auth]
url = "sqlite://${join(dir, 'interop.sqlite')}?mode=rwc"

[default.social_auth]
public_url = "${app}"
expose_refresh_token = true
session_exposes_jwt = true

[default.social_auth.jwt]
secret = "${JWT_SECRET}"
role = "${ROLE}"
${providers}`);
  const bin = process.env.DEMO_BIN ?? join(TARGET, 'debug', 'rocket_social_auth');
  const logFile = join(OUT, `${name}-app.log`);
  const log = openSync(logFile, 'w');
  const env = { ...process.env, ROCKET_CONFIG: config, ROCKET_CLI_COLORS: 'false' };
  for (const k of ['ROCKET_PROFILE', 'ROCKET_SOCIAL_AUTH', 'ROCKET_DATABASES', 'ROCKET_PORT', 'ROCKET_ADDRESS']) delete env[k];
  const child = spawn(bin, [], { cwd: dir, env, stdio: ['ignore', log, log] });
  children.add(child);
  const exited = new Promise((ok) => {
    child.once('exit', (code, signal) => ok({ code, signal }));
    child.once('error', (e) => ok({ error: `${e.message} (run \`cargo build\` first, or set DEMO_BIN)` }));
  });

  const stop = async () => {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((ok) => setTimeout(ok, 3000))]);
    child.kill('SIGKILL');
    children.delete(child);
    await onStop();
    rmSync(dir, { recursive: true, force: true });
  };

  // The app listens on 127.0.0.1 whatever host `app` names (`localhost` for Apple's test).
  const health = `http://127.0.0.1:${appPort}/health`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const early = await Promise.race([exited, new Promise((ok) => setTimeout(() => ok(null), 100))]);
    if (early) {
      await stop();
      throw new Error(`the demo app exited (${JSON.stringify(early)}):\n${readFileSync(logFile, 'utf8')}`);
    }
    const answer = await fetch(health).then((r) => r.text(), () => null);
    if (answer === 'ok') break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the demo app did not answer /health within 30 s:\n${readFileSync(logFile, 'utf8')}`);
    }
  }
  return { app, logFile, stop };
}

/**
 * A user agent over plain HTTP: follows nothing by itself, keeps cookies per host and path.
 * Enough for our app and oidc-provider (no Domain cookies).
 */
export class Agent {
  cookies = [];

  async request(url, { method = 'GET', form, headers = {} } = {}) {
    const u = new URL(url);
    const cookie = this.cookies
      .filter((c) => c.host === u.host && (u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    const response = await fetch(u, {
      method,
      redirect: 'manual',
      headers: { ...(cookie ? { cookie } : {}), ...headers },
      body: form ? new URLSearchParams(form) : undefined,
    });
    for (const set of response.headers.getSetCookie()) this.#store(u, set);
    const location = response.headers.get('location');
    return {
      status: response.status,
      location: location ? new URL(location, u).href : null,
      body: await response.text(),
      headers: response.headers,
    };
  }

  /** The value of cookie `name` for `url`'s host. */
  cookie(url, name) {
    const { host } = new URL(url);
    return this.cookies.find((c) => c.host === host && c.name === name)?.value;
  }

  #store(u, set) {
    const [pair, ...attributes] = set.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const attr = Object.fromEntries(attributes.map((a) => {
      const i = a.indexOf('=');
      return i < 0 ? [a.toLowerCase(), true] : [a.slice(0, i).toLowerCase(), a.slice(i + 1)];
    }));
    const path = typeof attr.path === 'string' ? attr.path : u.pathname.replace(/\/[^/]*$/, '') || '/';
    this.cookies = this.cookies.filter((c) => !(c.host === u.host && c.name === name && c.path === path));
    const expired = attr['max-age'] === '0' || (attr.expires && Date.parse(attr.expires) <= Date.now());
    if (!expired && value !== '') this.cookies.push({ host: u.host, name, value, path });
  }
}

/** A page's first `<form>`: its action (absolute) and its hidden fields. */
export function form(page, base) {
  const tag = page.match(/<form\b[^>]*>/i)?.[0];
  if (!tag) return null;
  const action = tag.match(/action="([^"]*)"/i)?.[1] ?? '';
  const fields = {};
  for (const input of page.matchAll(/<input\b[^>]*type="hidden"[^>]*>/gi)) {
    const n = input[0].match(/name="([^"]*)"/)?.[1];
    const v = input[0].match(/value="([^"]*)"/)?.[1] ?? '';
    if (n) fields[n] = unescapeHtml(v);
  }
  return { action: new URL(unescapeHtml(action), base).href, fields };
}

function unescapeHtml(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&#x2F;/gi, '/')
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
