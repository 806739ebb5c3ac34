// A caller presses Call device, sees the test pattern (H.264) and hears the tone; hangs up and
// calls again, as often as they like, and the device releases everything after each call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, eventually, hangUpButton, inbound, median, openPage, useDaemonAndBrowser, waitForFrames, waitForStatus, waitUntilIdle,
} from './harness.mjs';

const env = useDaemonAndBrowser();

async function callAndCheck(page) {
  await callButton(page).click();
  const video = await waitForFrames(page, 60);
  const audio = await eventually(async () => {
    const a = await inbound(page, 'audio');
    return a && a.packetsReceived > 0 ? a : null;
  }, 10_000, 'audio packets');
  await waitForStatus(page, 'in-call');
  return { video, audio, firstFrameMs: await page.evaluate(() => window.peercam.lastFirstFrameMs) };
}

async function hangUp(page) {
  await hangUpButton(page).click();
  const ended = await waitForStatus(page, 'ended');
  assert.match(ended.text, /Call ended/);
  await waitUntilIdle(env.daemon);
}

test('calling the device shows its picture and plays its sound, again and again', async (t) => {
  const page = await openPage(env.browser, env.daemon.url);
  const firstFrames = [];

  const first = await callAndCheck(page);
  assert.equal(first.video.codec, 'video/H264', 'Debian Chromium receives H.264, so the device sends it');
  assert.match(first.video.fmtp, /profile-level-id=42e01f/);
  assert.match(first.video.fmtp, /packetization-mode=1/);
  assert.equal(first.audio.codec.toLowerCase(), 'audio/opus');
  const sent = await page.locator('#candidates tr[data-side="local"]').evaluateAll((trs) =>
    trs.map((tr) => ({ type: tr.dataset.type, address: tr.cells[3].textContent })));
  assert.deepEqual(sent.filter((c) => c.type === 'host' && !c.address.endsWith('.local')), [],
    'the browser hides its host addresses, as a phone does, and the call still connects');
  const offered = await page.locator('#candidates tr[data-side="remote"]').evaluateAll((trs) =>
    trs.map((tr) => tr.cells[2].textContent));
  assert.ok(offered.length > 0, 'the device trickled its candidates');
  assert.deepEqual(offered.filter((protocol) => protocol !== 'udp'), [],
    'the device offers UDP candidates only (no ICE-TCP: see docs/remote.md)');
  firstFrames.push(first.firstFrameMs);
  await hangUp(page);
  const fdsAfterFirstCall = env.daemon.openFds();

  for (let round = 2; round <= 5; round++) {
    const again = await callAndCheck(page);
    assert.ok(again.video.framesDecoded > 60, `call ${round} decoded frames`);
    firstFrames.push(again.firstFrameMs);
    await hangUp(page);
  }

  const fdsAfterFiveCalls = await eventually(() => {
    const fds = env.daemon.openFds();
    return fds <= fdsAfterFirstCall + 2 ? fds : null;
  }, 3_000, `file descriptors back to ${fdsAfterFirstCall} (now ${env.daemon.openFds()})`);
  const metrics = await env.daemon.metrics();
  assert.equal(metrics.peercam_calls_started_total, 5);
  assert.equal(metrics.peercam_calls_ended_total, 5);
  assert.equal(metrics.peercam_calls_failed_total, 0);
  t.diagnostic(`first frame after pressing Call device (ms): ${firstFrames.join(', ')}; median ${median(firstFrames)}`);
  t.diagnostic(`daemon file descriptors: ${fdsAfterFirstCall} after 1 call, ${fdsAfterFiveCalls} after 5`);
});

test('a browser that cannot receive H.264 gets VP8', async () => {
  const page = await openPage(env.browser, `${env.daemon.url}?codecs=VP8,VP9`);
  await callButton(page).click();
  const video = await waitForFrames(page, 60);
  assert.equal(video.codec, 'video/VP8');
  await hangUp(page);
});
