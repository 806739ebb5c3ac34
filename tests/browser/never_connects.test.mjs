// A call that can never connect (every UDP datagram dropped, no TURN server) says so once,
// with what to check, instead of resuming again and again and restarting the device's camera
// each time: the page never shows "Reconnecting…", the device sees one call and no resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, degradeLoopback, eventually, openPage, useDaemonAndBrowser, waitUntilIdle,
} from './harness.mjs';

// The device waits longer than the browser, so the browser's own ICE failure is what ends it.
const env = useDaemonAndBrowser('[ice]\nconnect_timeout_seconds = 120\n');

test('a call with no network path ends at once with the reason, without resuming', async (t) => {
  const page = await openPage(env.browser, env.daemon.url);
  t.after(() => page.context().close());
  // Every status the page shows, in order.
  await page.evaluate(() => {
    window.statuses = [];
    const line = document.getElementById('status');
    new MutationObserver(() => window.statuses.push(line.dataset.state))
      .observe(line, { attributes: true, childList: true, subtree: true });
  });
  let restore = degradeLoopback({ lossPercent: 100 });
  t.after(() => restore?.());
  await callButton(page).click();
  const ended = await eventually(async () => {
    const line = await page.locator('#status').evaluate((el) => ({ state: el.dataset.state, text: el.textContent }));
    return line.state === 'error' ? line : null;
  }, 60_000, 'the page to give up on the call');
  restore();
  restore = null;
  assert.match(ended.text, /no network path/);
  const statuses = await page.evaluate(() => window.statuses);
  assert.ok(!statuses.includes('reconnecting'), `never "Reconnecting…": ${statuses}`);
  await waitUntilIdle(env.daemon);
  assert.doesNotMatch(env.daemon.output, /resum/i, 'the device saw no resume');
  assert.equal(env.daemon.output.match(/camera and encoder stopped/g)?.length, 2,
    'the camera started once for the call (and once for the warm-up)');
});
