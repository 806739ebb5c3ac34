// Debian's Firefox ESR for the browser tests, driven by puppeteer-core over WebDriver BiDi (the
// design brief: no downloaded browsers). Offline, Firefox has no OpenH264: like a fresh profile
// it offers VP8, VP9 and AV1 only, which is what makes it a second kind of client. It gathers
// no ICE candidates without a default route, so `useFirefoxRoute` gives the test namespace one
// (through its veth, which leads nowhere) for the file's tests and takes it back after.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import puppeteer from 'puppeteer-core';
import { PASSWORD } from './harness.mjs';

const FIREFOX = '/usr/bin/firefox-esr';

/** Launches headless Firefox ESR with fake camera and microphone and a fresh profile. */
export async function launchFirefox() {
  const profile = mkdtempSync(join(tmpdir(), 'peercam-firefox-'));
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    acceptInsecureCerts: true,
    userDataDir: profile,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.autoplay.default': 0,
      // Offline: no downloads of OpenH264 or anything else.
      'media.gmp-manager.updateEnabled': false,
      'app.update.enabled': false,
    },
  });
  const close = browser.close.bind(browser);
  browser.close = async () => {
    await close();
    rmSync(profile, { recursive: true, force: true });
  };
  return browser;
}

/** Gives the test namespace a default route for the file's tests (Firefox gathers none without). */
export function useFirefoxRoute() {
  const route = ['route', 'add', 'default', 'dev', 'pc0'];
  before(() => execFileSync('ip', route, { stdio: 'pipe' }));
  after(() => execFileSync('ip', ['route', 'del', 'default', 'dev', 'pc0'], { stdio: 'pipe' }));
}

/** A fresh Firefox page (its own browser context), logged in to the device at `url`. */
export async function firefoxPage(browser, url) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('firefox page error:', e.message));
  const { origin } = new URL(url);
  await page.goto(`${origin}/login`);
  await page.type('#password', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.goto(url);
  return page;
}
