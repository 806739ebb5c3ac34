// The caller's microphone reaches the device's audio sink only after the caller presses Talk;
// until then the call is receive-only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, eventually, openPage, talkButton, useDaemonAndBrowser, waitForFrames, waitUntilIdle,
} from './harness.mjs';

const env = useDaemonAndBrowser('[media]\nwidth = 640\nheight = 360\n', { media: true });

const talkbackBytes = async () => (await env.daemon.metrics()).peercam_talkback_bytes_total;

test('the device hears the caller once Talk is on, and not before', async (t) => {
  const page = await openPage(env.browser, env.daemon.url);
  t.after(async () => {
    await page.context().close();
    await waitUntilIdle(env.daemon);
  });
  await callButton(page).click();
  await waitForFrames(page, 30);
  const usedMicrophone = await page.evaluate(() =>
    window.peercam.pc.getSenders().some((s) => s.track && s.track.kind === 'audio'));
  assert.equal(usedMicrophone, false, 'no microphone before Talk');
  assert.equal(await talkbackBytes(), 0, 'nothing reaches the speaker before Talk');

  await talkButton(page).click();
  await eventually(async () => (await talkButton(page).getAttribute('aria-pressed')) === 'true',
    5_000, 'Talk to show as on');
  const bytes = await eventually(async () => {
    const n = await talkbackBytes();
    return n > 48_000 ? n : null; // more than a quarter second of 48 kHz stereo S16
  }, 10_000, 'talkback audio at the device sink');
  assert.ok(bytes > 48_000);
});

test('Talk pressed before calling sends the microphone from the start', async () => {
  const page = await openPage(env.browser, env.daemon.url);
  await talkButton(page).click();
  const before = await talkbackBytes();
  await callButton(page).click();
  await waitForFrames(page, 10);
  await eventually(async () => (await talkbackBytes()) > before + 48_000, 10_000, 'talkback audio');
});
