// What a phone does that the other tests' browsers do not, as far as Chromium can act it out
// (iOS Safari itself cannot run here): sound refused until a tap (Safari's rule acted out in
// the page; the picture plays muted and a button offers the sound), Safari's navigator.audioSession told how the page uses sound,
// and the page going to the background (a phone call, the screen locked) while the device lets
// the silent call go: a pause the page recovers from by calling again when it is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, degradeLoopback, eventually, launchBrowser, logInPage, openPage, startDaemon,
  status, talkButton, waitForFrames, waitForStatus, waitUntilIdle,
} from './harness.mjs';

let daemon;
let browser;
before(async () => {
  daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n');
  browser = await launchBrowser();
});
after(async () => {
  if (process.env.PEERCAM_SHOW_LOG) console.log(daemon?.output);
  await browser?.close();
  await daemon?.stop();
});

const remote = (page) => page.evaluate(() => {
  const video = document.getElementById('remote');
  return { muted: video.muted, paused: video.paused, unmuteShown: !document.getElementById('unmute').hidden };
});

async function hangUp(page) {
  await page.evaluate(() => document.getElementById('hangup').click());
  await page.context().close();
  await waitUntilIdle(daemon);
}

test('a call the browser may not play with sound plays muted, and one tap unmutes it', async (t) => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  // iOS Safari's rule, acted out (Chromium here plays a call's stream with sound anyway): a
  // media element may play with sound only once the user has tapped the page itself.
  await context.addInitScript(() => {
    let tapped = false;
    window.addEventListener('click', (e) => { if (e.isTrusted && e.target.id === 'unmute') tapped = true; }, true);
    const play = HTMLMediaElement.prototype.play;
    HTMLMediaElement.prototype.play = function playAsSafari() {
      if (!this.muted && !tapped) return Promise.reject(new DOMException('no tap yet', 'NotAllowedError'));
      return play.call(this);
    };
  });
  const page = await context.newPage();
  await logInPage(page, new URL(daemon.url).origin);
  await page.goto(daemon.url);
  t.after(() => hangUp(page));
  await callButton(page).click();
  await waitForFrames(page, 30);
  const muted = await eventually(async () => {
    const now = await remote(page);
    return now.unmuteShown ? now : null;
  }, 10_000, 'the tap-to-unmute button');
  assert.deepEqual(muted, { muted: true, paused: false, unmuteShown: true },
    'the picture plays, muted, with the button shown');
  await page.getByRole('button', { name: 'Tap to hear the sound' }).click();
  assert.deepEqual(await remote(page), { muted: false, paused: false, unmuteShown: false });
});

test('a call started by a tap plays with sound at once', async (t) => {
  const page = await openPage(browser, daemon.url);
  t.after(() => hangUp(page));
  await callButton(page).click();
  await waitForFrames(page, 30);
  assert.deepEqual(await remote(page), { muted: false, paused: false, unmuteShown: false });
});

test('Safari\'s audio session is told: playback while listening, play-and-record with Talk',
  async (t) => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    // navigator.audioSession as Safari 17 has it; Chromium has none.
    await context.addInitScript(() => {
      Object.defineProperty(navigator, 'audioSession', { value: { type: 'auto' } });
    });
    const page = await context.newPage();
    t.after(() => hangUp(page));
    await page.goto(`${daemon.url}login`);
    await page.getByLabel('Password').fill(daemon.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(daemon.url);
    await callButton(page).click();
    await waitForFrames(page, 10);
    assert.equal(await page.evaluate(() => navigator.audioSession.type), 'playback');
    await context.grantPermissions(['microphone']);
    await talkButton(page).click();
    await eventually(async () => (await talkButton(page).getAttribute('aria-pressed')) === 'true',
      5_000, 'Talk on');
    assert.equal(await page.evaluate(() => navigator.audioSession.type), 'play-and-record');
    await talkButton(page).click();
    assert.equal(await page.evaluate(() => navigator.audioSession.type), 'playback');
  });

test('the page in the background while the device lets the silent call go: a pause, then it calls again',
  async (t) => {
    const page = await openPage(browser, daemon.url);
    t.after(() => hangUp(page));
    await callButton(page).click();
    await waitForFrames(page, 30);
    // The phone takes a call: the page is hidden and its media stops (iOS suspends it).
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    let restore = degradeLoopback({ lossPercent: 100 });
    t.after(() => restore?.());
    // The device lets a caller go after 6 s without receiver reports.
    await eventually(() => /stopped answering/.test(daemon.output), 20_000,
      'the device to let the silent caller go');
    const paused = await waitForStatus(page, 'reconnecting', 5_000);
    assert.match(paused.text, /Paused/);
    restore();
    restore = null;
    // Back from the phone call.
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitForStatus(page, 'in-call', 20_000);
    const before = (await waitForFrames(page, 0)).framesDecoded;
    await waitForFrames(page, before + 30);
    assert.equal((await status(page)).state, 'in-call');
    assert.match(daemon.output, /call 2[^\n]*started|call \d+: started[\s\S]*call \d+: started/);
  });
