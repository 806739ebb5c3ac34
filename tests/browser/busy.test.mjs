// While someone is in a call, a second caller is told the device is busy, and the first call
// goes on decoding undisturbed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, inbound, openPage, useDaemonAndBrowser, waitForFrames, waitForStatus,
} from './harness.mjs';

const env = useDaemonAndBrowser('[media]\nwidth = 640\nheight = 360\n');

test('a second caller is told the device is busy and the call goes on', async () => {
  const first = await openPage(env.browser, env.daemon.url);
  await callButton(first).click();
  await waitForFrames(first, 30);

  const second = await openPage(env.browser, env.daemon.url);
  await callButton(second).click();
  const busy = await waitForStatus(second, 'busy');
  assert.match(busy.text, /busy/i);
  assert.equal(await second.evaluate(() => window.peercam.pc), null, 'no call was set up');
  assert.ok(await callButton(second).isEnabled(), 'the busy caller can try again later');

  const before = (await inbound(first, 'video')).framesDecoded;
  const after = (await waitForFrames(first, before + 30)).framesDecoded;
  assert.ok(after > before + 30, 'the first call keeps decoding');
  assert.equal((await waitForStatus(first, 'in-call')).state, 'in-call');

  const metrics = await env.daemon.metrics();
  assert.equal(metrics.peercam_busy_replies_total, 1);
  assert.equal(metrics.peercam_calls_started_total, 1);
  assert.equal(metrics.peercam_in_call, 1);
});
