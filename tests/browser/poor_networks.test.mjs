// Calls on poor networks, made in the test namespace's loopback (see degradeLoopback): a
// 1 Mbit/s bottleneck, where a fixed 2 Mbit/s stream decoded nothing at all, and random UDP
// loss. The daemon runs its default 720p30 with video_bitrate_kbps = 2000 as the ceiling. The
// tests assert that pictures keep coming and the bitrate settles under the limit; the figures
// (frame rate, freezes) are printed for docs/benchmarks.md, never asserted as timings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, degradeLoopback, eventually, inbound, openPage, useDaemonAndBrowser, waitForFrames,
  waitUntilIdle,
} from './harness.mjs';

const env = useDaemonAndBrowser('');
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** Calls the device on the degraded network; what the page decoded in `seconds` after `settle`. */
async function callThrough(t, network, { settle = 5, seconds = 15 } = {}) {
  const restore = degradeLoopback(network);
  const page = await openPage(env.browser, env.daemon.url);
  t.after(async () => {
    restore();
    await page.context().close();
    await waitUntilIdle(env.daemon);
  });
  await callButton(page).click();
  await waitForFrames(page, 0, 30_000);
  await sleep(settle * 1000);
  const before = await inbound(page, 'video');
  await sleep(seconds * 1000);
  const after = await inbound(page, 'video');
  const metrics = await env.daemon.metrics();
  const figures = {
    fps: (after.framesDecoded - before.framesDecoded) / seconds,
    receivedKbps: Math.round(((after.bytesReceived - before.bytesReceived) * 8) / seconds / 1000),
    freezes: after.freezeCount - before.freezeCount,
    freezeSeconds: Number((after.totalFreezesDuration - before.totalFreezesDuration).toFixed(2)),
    targetKbps: metrics.peercam_video_target_kbps,
    keyframeRequests: metrics.peercam_keyframe_requests_total,
  };
  t.diagnostic(JSON.stringify({ network, ...figures }));
  // The page's debug panel, once opened, shows the device's target beside what the browser
  // receives.
  await page.locator('#debug summary').click();
  const panel = await eventually(async () => {
    const text = await page.locator('#link-stats').textContent();
    return /received: \d+ kbit\/s/.test(text) ? text : null;
  }, 10_000, 'the link figures in the debug panel');
  assert.match(panel, /device video target: \d+ kbit\/s/);
  assert.match(panel, /received: \d+ kbit\/s, \d+ fps/);
  return figures;
}

test('behind a 1 Mbit/s bottleneck the picture keeps coming and the bitrate settles under it',
  async (t) => {
    const got = await callThrough(t, { rateKbit: 1000 });
    assert.ok(got.fps >= 10, `decoded ${got.fps} frames/s after the first 5 s`);
    assert.ok(got.targetKbps < 1000, `video target ${got.targetKbps} kbit/s`);
  });

test('with 5% of UDP lost the picture keeps coming', async (t) => {
  const got = await callThrough(t, { lossPercent: 5 });
  assert.ok(got.fps >= 10, `decoded ${got.fps} frames/s`);
});

test('with 10% of UDP lost the call keeps playing', async (t) => {
  const got = await callThrough(t, { lossPercent: 10 });
  assert.ok(got.fps >= 5, `decoded ${got.fps} frames/s`);
});
