// Closing the caller's tab (no Hang up, the socket just drops) frees the device: within two
// seconds it is idle again and the next call works.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, eventually, launchBrowser, openPage, startDaemon, waitForFrames,
} from './harness.mjs';

let daemon;
let browser;
before(async () => {
  daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n');
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await daemon?.stop();
});

test('closing the caller tab frees the device for the next caller', async () => {
  const first = await openPage(browser, daemon.url);
  await callButton(first).click();
  await waitForFrames(first, 30);
  assert.equal((await daemon.metrics()).peercam_in_call, 1);

  await first.context().close();
  await eventually(async () => (await daemon.metrics()).peercam_in_call === 0, 2_000,
    'the device to be free within 2 s of the tab closing');

  const next = await openPage(browser, daemon.url);
  await callButton(next).click();
  await waitForFrames(next, 30);
  const metrics = await daemon.metrics();
  assert.equal(metrics.peercam_calls_started_total, 2);
  assert.equal(metrics.peercam_calls_ended_total, 1);
});
