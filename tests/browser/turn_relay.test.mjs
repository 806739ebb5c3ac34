// Calls relayed through a real coturn (started on loopback by the test): with coturn's shared
// secret the device mints short-lived credentials for itself and for the caller; with a static
// coturn user it hands out the configured one. With `transport_policy = "relay"` the selected
// candidate pair is relayed on both ends. Wrong or expired credentials fail cleanly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import {
  callButton, eventually, launchBrowser, networkCheck, openPage, selectedPair, startCoturn, startDaemon,
  waitForFrames, waitForStatus, waitUntilIdle,
} from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Starts coturn and a daemon configured with `toml(coturnUrl)`; stops both after the test. */
async function setUp(t, coturnOptions, toml) {
  const coturn = await startCoturn(coturnOptions);
  const daemon = await startDaemon(toml(coturn.url));
  t.after(async () => {
    await daemon.stop();
    await coturn.stop();
  });
  return { coturn, daemon };
}

async function relayedCall(daemon) {
  const page = await openPage(browser, daemon.url);
  await callButton(page).click();
  await waitForFrames(page, 30);
  const pair = await selectedPair(page);
  await page.context().close();
  await waitUntilIdle(daemon);
  return pair;
}

const relayOnly = '[ice]\ntransport_policy = "relay"\n[media]\nwidth = 640\nheight = 360\n';

/** The /check page's verdict once it is done: { state, text }. */
async function checkVerdict(daemon) {
  const check = await openPage(browser, daemon.url);
  try {
    return await networkCheck(check, daemon.url);
  } finally {
    await check.context().close();
  }
}

test('shared secret: a relay-only call connects through coturn on both ends', async (t) => {
  const { daemon } = await setUp(t, { secret: 'north-wind' },
    (url) => `${relayOnly}[turn]\nurls = ["${url}"]\nsecret = "north-wind"\nlifetime_seconds = 600\n`);
  const pair = await relayedCall(daemon);
  assert.deepEqual(pair, { local: 'relay', remote: 'relay' });
  // /check connects for real: a relay-only device is not a failure, and it says so.
  const verdict = await checkVerdict(daemon);
  assert.equal(verdict.state, 'ok', verdict.text);
  assert.match(verdict.text, /A call from this browser connects: relayed by your TURN server over UDP/);
  assert.match(verdict.text, /TURN over UDP \(turn:127\.0\.0\.1:3479\?transport=udp\) works/);
});

test('coturn\'s relay ports firewalled: /check says TURN answers but cannot relay', async (t) => {
  // The classic mistake: the TURN port is open, the relay range is not. Relay ports outside
  // the ephemeral range, so nothing but relayed media is caught by the rule.
  const { coturn, daemon } = await setUp(t, { secret: 'ember', relayPorts: [20000, 20099] },
    (url) => `[turn]\nurls = ["${url}"]\nsecret = "ember"\n`);
  execFileSync('nft', ['-f', '-'], { input: `table inet closed_relay {
    chain output { type filter hook output priority 0; policy accept;
      udp dport 20000-20099 udp sport != ${coturn.port} drop
    }
  }\n` });
  t.after(() => execFileSync('nft', ['delete', 'table', 'inet', 'closed_relay']));
  const verdict = await checkVerdict(daemon);
  assert.equal(verdict.state, 'ok', 'a call on this network still connects directly');
  assert.match(verdict.text, /A call from this browser connects: directly/);
  assert.match(verdict.text, /TURN does not work: TURN over UDP .* answers and gives a relay address, but media cannot pass it: its relay ports are closed/);
});

test('static coturn user: a relay-only call connects the same way', async (t) => {
  const { daemon } = await setUp(t, { user: 'peercam:s3cret+pass=' },
    (url) => `${relayOnly}[[ice.servers]]\nurls = ["${url}"]\nusername = "peercam"\ncredential = "s3cret+pass="\n`);
  const pair = await relayedCall(daemon);
  assert.deepEqual(pair, { local: 'relay', remote: 'relay' });
});

test('a wrong secret fails cleanly: the caller is told and the device is freed', async (t) => {
  const { daemon } = await setUp(t, { secret: 'right' },
    (url) => `${relayOnly.replace("[ice]\n", "[ice]\nconnect_timeout_seconds = 5\n")}[turn]\nurls = ["${url}"]\nsecret = "wrong"\n`);
  const check = await openPage(browser, `${daemon.url}check`);
  await eventually(async () => (await check.locator('#verdict').getAttribute('data-state')) === 'failed',
    40_000, 'the check page to report TURN failing');
  assert.match(await check.locator('#verdict').textContent(), /TURN does not work/);
  await check.context().close();

  const page = await openPage(browser, daemon.url);
  await callButton(page).click();
  const failed = await waitForStatus(page, 'error', 20_000);
  assert.match(failed.text, /could not connect to the caller within 5 s/);
  assert.match(failed.text, /TURN server and its credentials/);
  await page.context().close();
  await waitUntilIdle(daemon);
  const metrics = await daemon.metrics();
  assert.equal(metrics.peercam_calls_started_total, 1);
  assert.equal(metrics.peercam_calls_ended_total, 1);
});

test('coturn accepts the minted form of credential and refuses an expired one', async (t) => {
  const { coturn, daemon } = await setUp(t, { secret: 'tide' }, () => '');
  const page = await openPage(browser, daemon.url);
  t.after(() => page.context().close());
  const credential = (expiry) => {
    const username = `${expiry}:probe`;
    return { username, credential: createHmac('sha1', 'tide').update(username).digest('base64') };
  };
  const now = Math.floor(Date.now() / 1000);
  const gathersRelay = (server) => page.evaluate(async (server) => {
    const pc = new RTCPeerConnection({ iceServers: [server], iceTransportPolicy: 'relay' });
    pc.createDataChannel('x');
    const relay = new Promise((resolve) => {
      pc.onicecandidate = (e) => { if (!e.candidate) resolve(false); else if (e.candidate.type === 'relay') resolve(true); };
      setTimeout(() => resolve(false), 8000);
    });
    await pc.setLocalDescription(await pc.createOffer());
    const found = await relay;
    pc.close();
    return found;
  }, server);
  assert.equal(await gathersRelay({ urls: coturn.url, ...credential(now + 600) }), true, 'valid credential');
  assert.equal(await gathersRelay({ urls: coturn.url, ...credential(now - 600) }), false, 'expired credential');
});
