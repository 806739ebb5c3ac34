// A phone that moves from one network to another (Wi-Fi to LTE: its address changes, the old
// path and its sockets are gone) keeps its call: the page sees media stop, says
// "reconnecting", resumes the call over a new WebSocket with the token the device gave it,
// and the device answers with a fresh peer over the path that is left. Chromium runs in a
// namespace of its own with two links to the device (see twoNetworkPhone); the test takes
// away whichever link the call is using. Frames flowing again and the device's counters are
// asserted; the time the picture took to come back is printed, not asserted.
// (webrtcbin 1.22 cannot restart ICE on a live transport: it has no `ice-restart` offer
// option. So the device restarts ICE the only way it can: a fresh transport with new
// credentials and candidates, inside the same call.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PHONE_DEVICE_ADDRESS, callButton, eventually, inbound, launchBrowser, openPage,
  startDaemon, status, twoNetworkPhone, waitForFrames,
} from './harness.mjs';

test('a phone whose network changes keeps its call', async (t) => {
  // The phone's connections go over LTE, where the call's media goes too (the device's ICE
  // chooses that pair), so taking the link away cuts the WebSocket and the media at once.
  const phone = await twoNetworkPhone({ preferred: 'lte' });
  const daemon = await startDaemon(
    `[media]\nwidth = 640\nheight = 360\n[ice]\nlocal_addresses = ["${PHONE_DEVICE_ADDRESS}"]\n`,
  );
  const browser = await launchBrowser({ executable: phone.executable });
  t.after(async () => {
    if (process.env.PEERCAM_SHOW_LOG) console.log(daemon.output);
    await browser.close();
    await daemon.stop();
    phone.close();
  });

  const page = await openPage(browser, `https://${PHONE_DEVICE_ADDRESS}:${daemon.port}/`);
  const said = [];
  page.on('console', (message) => { if (message.text().startsWith('peercam: reconnect')) said.push(message.text()); });
  await page.evaluate(() => {
    window.statesSeen = [];
    const element = document.getElementById('status');
    new MutationObserver(() => window.statesSeen.push(element.dataset.state))
      .observe(element, { attributes: true, attributeFilter: ['data-state'] });
  });
  await callButton(page).click();
  await waitForFrames(page, 30);
  const link = await phone.busiestLink();
  const other = link === 'wifi' ? 'lte' : 'wifi';

  phone.takeAway(link);
  const cutAt = Date.now();
  await eventually(async () => (await page.evaluate(() => window.statesSeen)).includes('reconnecting'),
    15_000, 'the page to say "reconnecting"');
  await waitForFrames(page, 0, 20_000);
  t.diagnostic(`picture back ${((Date.now() - cutAt) / 1000).toFixed(1)} s after the ${link} link went away`);
  const resumed = await waitForFrames(page, 30);
  assert.ok(resumed.framesDecoded > 30);
  for (const line of said) t.diagnostic(line);
  assert.equal(await phone.busiestLink(), other, 'the call moved to the other link');
  // The old path can come back on its own (Chromium's ICE moves to the other link) before the
  // page's resume has connected its new peer; the page must end up in the call either way.
  await eventually(async () => (await status(page)).state === 'in-call', 10_000, 'the page back "in-call"');

  const metrics = await daemon.metrics();
  assert.equal(metrics.peercam_calls_resumed_total, 1, 'the caller resumed once');
  assert.equal(metrics.peercam_calls_started_total, 1, 'the same call, not a new one');
  assert.equal(metrics.peercam_calls_failed_total, 0);
  assert.equal(metrics.peercam_in_call, 1);
  const back = daemon.output.match(/call 1: the caller is back on a new connection; going on as call 2.*PEER_ADDR=(\S+)/);
  assert.ok(back, 'the journal says the call went on');
  assert.equal(back[1], phone.addressOn(other), 'the caller came back from its other network');
});
