// Sign in with Apple in headless Chromium: the fake Apple (examples/fake_apple.rs) on
// 127.0.0.1, our demo app on localhost: two sites. Apple's authorize page auto-submits its
// `form_post` to our callback, a cross-site POST that carries no SameSite=Lax cookie; our
// callback answers it with a 303 to itself as a GET, a top-level navigation that carries the
// flow cookie, and the user lands signed in, with the name from the one-time `user` field.
// Run: node --test apple.mjs (after `cargo build` and `cargo build --example fake_apple`).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';

import { chromium } from 'playwright-core';

import { OUT, startApple } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-domain-reliability', '--no-pings',
];

let env;
let profile;
let context;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} exists (apt-get install chromium)`);
  env = await startApple('apple');
  profile = mkdtempSync(join(tmpdir(), 'rsa-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 800, height: 600 },
  });
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await env?.stop();
});

it('signs in with Apple in Chromium through its cross-site form_post', async () => {
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(15_000);

  // Every request to our callback, with the headers the browser really sent.
  const callbacks = [];
  page.on('request', (r) => {
    if (r.url().startsWith(env.callback)) callbacks.push({ method: r.method(), headers: r.allHeaders() });
  });

  await page.goto(`${env.app}/`);
  await page.goto(`${env.app}/auth/apple`);
  // Apple's page (on 127.0.0.1) POSTs itself to us (on localhost); we land on our site.
  await page.waitForURL((u) => u.origin === env.app && !u.pathname.startsWith('/auth/'));
  assert.equal(page.url(), `${env.app}/`, await page.textContent('body'));

  assert.deepEqual(callbacks.map((c) => c.method), ['POST', 'GET']);
  const [post, get] = [await callbacks[0].headers, await callbacks[1].headers];
  assert.equal(post['sec-fetch-site'], 'cross-site', 'the form_post came from Apple\'s site');
  assert.equal(post.origin, env.issuer, 'posted by the fake Apple\'s page');
  assert.doesNotMatch(post.cookie ?? '', /social_auth_flow_apple=/, 'no Lax cookie on a cross-site POST');
  assert.match(get.cookie ?? '', /social_auth_flow_apple=/, 'the GET it redirects to carries the flow cookie');
  assert.match(get.cookie ?? '', /social_auth_form_apple=/, 'and the user field kept for it');

  const session = await page.evaluate(async () => (await fetch('/auth/session')).json());
  assert.equal(session.provider, 'apple');
  assert.equal(session.user.name, 'John Appleseed', 'the name from the first authorization');
  assert.equal(session.user.email, 'x7kq2@privaterelay.appleid.com');
  assert.equal(await page.textContent('#user-name'), 'John Appleseed');
  const names = (await context.cookies(env.app)).map((c) => c.name);
  assert.ok(names.includes('jwt'), `signed in: ${names}`);
  assert.ok(!names.includes('social_auth_flow_apple') && !names.includes('social_auth_form_apple'), `flow spent: ${names}`);
  await page.screenshot({ path: join(OUT, 'apple-signed-in.png'), fullPage: true });
});
