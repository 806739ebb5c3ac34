// Calling a home with no public address, and through a carrier that drops UDP, in the NAT lab
// (nat_lab.mjs, set up by remote_lab.mjs from the shipped files): the device dials out to the
// owner's public host over SSH (autossh as peercam-tunnel.service runs it), the host serves the
// device's page through that tunnel and relays the call's media with coturn. The tunnel comes
// back by itself after the home's link and the host. And today's docs: a TCP forward by hand
// on the home router, with coturn for the media.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, launchBrowser, networkCheck, selectedCandidates } from './harness.mjs';
import { HOME_PUBLIC_ADDRESS } from './nat_lab.mjs';
import { callFromPhone, pageLoads, remoteSetUp } from './remote_lab.mjs';

/** The set-up and a Chromium on the phone; both stop after the test. */
async function setUp(t, labOptions, options) {
  const remote = await remoteSetUp(labOptions, options);
  t.after(() => remote.close());
  const browser = await launchBrowser({ executable: remote.lab.phoneChromium });
  t.after(() => browser.close());
  await eventually(() => pageLoads(browser, remote.publicUrl), 30_000,
    `the page at ${remote.publicUrl} (${remote.tunnel?.output ?? 'no tunnel'})`);
  return { ...remote, browser };
}

/** The phone calls; the call is relayed by coturn, and /check says so. Returns the page and verdict. */
async function relayedCall(browser, url) {
  const page = await callFromPhone(browser, url);
  const pair = await selectedCandidates(page);
  assert.ok(pair.local.type === 'relay' || pair.remote.type === 'relay', `relayed by coturn: ${JSON.stringify(pair)}`);
  const verdict = await networkCheck(page, url);
  assert.equal(verdict.state, 'ok', verdict.text);
  assert.match(verdict.text, /A call from this browser connects: relayed by/);
  return { page, verdict };
}

test('a home behind CGNAT: the page through the tunnel, the call through coturn, the tunnel back by itself', async (t) => {
  const { lab, browser, publicUrl: url, sshd, tunnel } = await setUp(t, { router: { upnp: false, pcp: false }, cgnat: true });
  const { page, verdict } = await relayedCall(browser, url);
  assert.match(verdict.text, /STUN works/);
  assert.match(verdict.text, /TURN over UDP \(turn:31\.77\.3\.2:3478\?transport=udp\) works/);
  assert.match(verdict.text, /TURN over TCP \(turn:31\.77\.3\.2:3478\?transport=tcp\) works/);
  await page.context().close();

  // The home loses its internet for a moment: the tunnel holds, and the page is back with it.
  lab.homeOnline(false);
  await eventually(async () => !(await pageLoads(browser, url)), 30_000, 'the page gone with the link');
  lab.homeOnline(true);
  await eventually(() => pageLoads(browser, url), 60_000, 'the page back with the link');

  // The host goes away (sshd and its sessions): the tunnel dials until it is back, by itself.
  await sshd.stop();
  await eventually(async () => !(await pageLoads(browser, url)), 30_000, 'the page gone with the host');
  await new Promise((resolve) => { setTimeout(resolve, 5_000); });
  await sshd.start();
  await eventually(() => pageLoads(browser, url), 90_000, `the page back through a new tunnel (${tunnel.output})`);
  assert.match(sshd.process.output, /Accepted publickey for peercam-tunnel/, 'a new session, not the old one');
});

test('a carrier that drops UDP: the page over TCP, the call over TURN over TCP', async (t) => {
  const { browser, publicUrl: url } = await setUp(t, { router: { upnp: false, pcp: false }, cgnat: true, carrierDropsUdp: true });
  const page = await callFromPhone(browser, url);
  const pair = await selectedCandidates(page);
  assert.deepEqual(pair.local, { type: 'relay', relayProtocol: 'tcp' });
  // /check: the path is TURN over TCP, and TURN over UDP cannot work from this carrier.
  const verdict = await networkCheck(page, url);
  assert.equal(verdict.state, 'ok', verdict.text);
  assert.match(verdict.text, /A call from this browser connects: relayed by your TURN server over TCP/);
  assert.match(verdict.text, /TURN does not work: TURN over UDP .* gave no relay address/);
  assert.match(verdict.text, /TURN over TCP .* works/);
  await page.context().close();
});

test('a forward by hand (TCP 8443) and coturn, as the docs said before port mapping', async (t) => {
  const { browser, publicUrl: url } = await setUp(t,
    { router: { upnp: false, pcp: false }, manualForwards: [['tcp', 8443]] }, { tunnel: false });
  assert.equal(url, `https://${HOME_PUBLIC_ADDRESS}:8443/`);
  const { page, verdict } = await relayedCall(browser, url);
  // The page hands out the device's own STUN port, which is not forwarded: /check says so
  // (the browser's address from the TURN server does not count as STUN working).
  assert.match(verdict.text, /STUN does not work: no STUN server answered .*the STUN port is not forwarded/);
  await page.context().close();
});
