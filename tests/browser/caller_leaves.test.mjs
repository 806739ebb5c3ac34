// Closing the caller's tab (no Hang up, the socket just drops) frees the device: within two
// seconds it is idle again and the next call works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, openPage, useDaemonAndBrowser, waitForFrames, waitUntilIdle,
} from './harness.mjs';

const env = useDaemonAndBrowser('[media]\nwidth = 640\nheight = 360\n');

test('closing the caller tab frees the device for the next caller', async () => {
  const first = await openPage(env.browser, env.daemon.url);
  await callButton(first).click();
  await waitForFrames(first, 30);
  assert.equal((await env.daemon.metrics()).peercam_in_call, 1);

  await first.context().close();
  await waitUntilIdle(env.daemon);

  const next = await openPage(env.browser, env.daemon.url);
  await callButton(next).click();
  await waitForFrames(next, 30);
  const metrics = await env.daemon.metrics();
  assert.equal(metrics.peercam_calls_started_total, 2);
  assert.equal(metrics.peercam_calls_ended_total, 1);
});
