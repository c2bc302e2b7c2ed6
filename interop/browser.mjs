// One end-to-end login in headless Chromium (Debian's, driven by playwright-core): our app on
// 127.0.0.1, the provider on localhost, so every redirect crosses sites and a SameSite mistake
// in our cookies would show. Run: node --test browser.mjs (after `cargo build`).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';

import { chromium } from 'playwright-core';

import { OUT, PROVIDER, start } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Headless as root in a sandbox with no network but loopback: no sandbox, no GPU, and none of
// Chromium's own background connections (refused here, and noise).
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
  env = await start('browser');
  profile = mkdtempSync(join(tmpdir(), 'rsa-chromium-'));
  // A persistent context is Playwright's way to give Chromium a --user-data-dir: a fresh one.
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

it('signs in with the OpenID provider in Chromium, across sites, and signs out', async () => {
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(15_000);

  // What the browser sent to our callback: it must really come from another site.
  const callbacks = [];
  page.on('request', (r) => {
    if (r.url().startsWith(env.callback)) callbacks.push(r.allHeaders());
  });

  await page.goto(`${env.app}/`);
  await page.getByText(`Sign in with ${PROVIDER}`).click();

  // The provider's own development login page, on another site.
  await page.waitForURL((u) => u.origin === env.issuer);
  await page.fill('input[name="login"]', 'ada');
  await page.fill('input[name="password"]', 'anything');
  await page.click('button[type="submit"]');

  // Its consent page (offline_access is asked with prompt=consent).
  await page.waitForSelector('input[name="prompt"][value="consent"]', { state: 'attached' });
  await page.click('button[type="submit"]');

  // Back on our site (the callback's 303, or its error page), signed in.
  await page.waitForURL((u) => u.origin === env.app);
  assert.equal(page.url(), `${env.app}/`, await page.textContent('body'));
  assert.equal(callbacks.length, 1);
  const sent = await callbacks[0];
  assert.match(sent.cookie ?? '', new RegExp(`social_auth_flow_${PROVIDER}=`), 'the flow cookie went along (SameSite=Lax)');
  assert.equal(sent['sec-fetch-site'], 'cross-site', 'the callback came from the provider\'s site');
  assert.equal(await page.textContent('#user-name'), 'Ada Lovelace');
  assert.equal(await page.textContent('#provider'), PROVIDER);
  const [jwt] = (await context.cookies(env.app)).filter((c) => c.name === 'jwt');
  assert.ok(jwt, 'the jwt cookie is set');
  assert.equal(jwt.sameSite, 'Lax');
  assert.equal(jwt.httpOnly, true);
  await page.screenshot({ path: join(OUT, 'signed-in.png'), fullPage: true });

  await page.click('#logout');
  await page.waitForSelector('#signed-out');
  assert.equal(await page.isVisible('#user-name'), false);
  assert.deepEqual((await context.cookies(env.app)).filter((c) => c.name === 'jwt'), []);
  await page.screenshot({ path: join(OUT, 'signed-out.png'), fullPage: true });
});
