// Named rooms, as in the tutorials: two browsers see each other through the device's
// signaling; a third is told the room is full; when one leaves, the other waits and a new
// person can join; a page that reloads mid-call comes back by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  eventually, inbound, logInPage, openPage, status, useDaemonAndBrowser, waitForFrames, waitForStatus,
} from './harness.mjs';

const env = useDaemonAndBrowser('', { media: true });
const roomUrl = (room) => `${env.daemon.url}?room=${room}`;

/** Joins `room` by typing its name and pressing Connect, as a person would. */
async function joinByForm(room) {
  const page = await openPage(env.browser, env.daemon.url);
  await page.getByLabel('Room').fill(room);
  await page.getByRole('button', { name: 'Connect' }).click();
  return page;
}

/** Marks the page's current peer connection, to tell a new one from it later. */
const markPeer = (page) => page.evaluate(() => { window.markedPc = window.peercam.pc; });
const hasNewPeer = (page) => page.evaluate(() => window.peercam.pc !== null && window.peercam.pc !== window.markedPc);

async function waitForNewCall(page, frames) {
  for (let i = 0; i < 200 && !(await hasNewPeer(page)); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(await hasNewPeer(page), 'a new connection was set up');
  return waitForFrames(page, frames);
}

test('two people in a room see each other, a third is told it is full', async (t) => {
  const alice = await openPage(env.browser, roomUrl('foo'));
  const waiting = await waitForStatus(alice, 'waiting');
  assert.match(waiting.text, /Waiting for someone to join room foo/);
  const bob = await joinByForm('foo');
  const [a, b] = await Promise.all([waitForFrames(alice, 60), waitForFrames(bob, 60)]);
  assert.ok(a.framesDecoded > 60 && b.framesDecoded > 60);
  await waitForStatus(alice, 'in-call');
  assert.ok(await alice.locator('#local').isVisible(), 'own camera shown');
  assert.equal(await bob.evaluate(() => new URL(location.href).searchParams.get('room')), 'foo',
    'the URL names the room, so a reload rejoins it');

  const carol = await openPage(env.browser, roomUrl('foo'));
  const full = await waitForStatus(carol, 'full');
  assert.match(full.text, /Room foo is full/);
  const before = [(await inbound(alice, 'video')).framesDecoded, (await inbound(bob, 'video')).framesDecoded];
  await Promise.all([waitForFrames(alice, before[0] + 30), waitForFrames(bob, before[1] + 30)]);

  // Bob leaves: Alice resets and waits; Dave joins and the call works again.
  await markPeer(alice);
  await bob.getByRole('button', { name: 'Leave' }).click();
  const left = await waitForStatus(alice, 'waiting');
  assert.match(left.text, /left/);
  assert.equal(await alice.evaluate(() => window.peercam.pc), null, 'the old connection is gone');
  assert.equal((await status(bob)).state, 'ended');
  const dave = await openPage(env.browser, roomUrl('foo'));
  await Promise.all([waitForNewCall(alice, 60), waitForFrames(dave, 60)]);
  t.after(() => Promise.all([alice, bob, carol, dave].map((p) => p.context().close())));
});

test('a page that reloads mid-call re-establishes the call', async (t) => {
  const alice = await openPage(env.browser, roomUrl('bar'));
  const bob = await openPage(env.browser, roomUrl('bar'));
  t.after(() => Promise.all([alice, bob].map((p) => p.context().close())));
  await Promise.all([waitForFrames(alice, 30), waitForFrames(bob, 30)]);
  await markPeer(alice);
  await bob.reload();
  await Promise.all([waitForNewCall(alice, 60), waitForFrames(bob, 60)]);
  await waitForStatus(bob, 'in-call');
});

test('debug panel lists the SDP and the gathered candidates', async (t) => {
  const alice = await openPage(env.browser, roomUrl('dbg'));
  const bob = await openPage(env.browser, roomUrl('dbg'));
  t.after(() => Promise.all([alice, bob].map((p) => p.context().close())));
  await waitForFrames(alice, 10);
  await alice.getByText(/Debug: SDP and ICE candidates/).click();
  assert.match(await alice.locator('#sdp-offer').textContent(), /v=0[\s\S]*m=video/);
  assert.match(await alice.locator('#sdp-answer').textContent(), /v=0[\s\S]*m=audio/);
  const rows = await alice.locator('#candidates tr').evaluateAll((trs) => trs.map((tr) =>
    [...tr.cells].map((td) => td.textContent)));
  const local = rows.filter((r) => r[0] === 'local');
  assert.ok(local.length > 0, 'local candidates listed');
  for (const [, type, protocol, address, port] of local) {
    assert.match(type, /^(host|srflx|prflx|relay)$/);
    assert.match(protocol, /^(udp|tcp)$/);
    assert.ok(address.length > 0 && Number(port) >= 0);
  }
});

test('mute, camera off and screen sharing act on what is sent', async (t) => {
  const alice = await openPage(env.browser, roomUrl('media'));
  const bob = await openPage(env.browser, roomUrl('media'));
  t.after(() => Promise.all([alice, bob].map((p) => p.context().close())));
  await waitForFrames(alice, 10);
  const sent = () => alice.evaluate(() => window.peercam.pc.getSenders().map((s) => ({
    kind: s.track?.kind, enabled: s.track?.enabled, label: s.track?.label,
  })));
  await alice.getByRole('button', { name: 'Mute microphone' }).click();
  await alice.getByRole('button', { name: 'Turn camera off' }).click();
  assert.equal(await alice.getByRole('button', { name: 'Mute microphone' }).getAttribute('aria-pressed'), 'true');
  for (const track of await sent()) assert.equal(track.enabled, false, `${track.kind} muted`);
  await alice.getByRole('button', { name: 'Mute microphone' }).click();
  assert.equal((await sent()).find((s) => s.kind === 'audio').enabled, true, 'microphone back on');

  const cameraLabel = (await sent()).find((s) => s.kind === 'video').label;
  await alice.getByRole('button', { name: 'Share screen' }).click();
  await waitForStatus(alice, 'in-call');
  await eventually(async () => (await alice.getByRole('button', { name: 'Share screen' })
    .getAttribute('aria-pressed')) === 'true', 5_000, 'screen sharing to start');
  assert.notEqual((await sent()).find((s) => s.kind === 'video').label, cameraLabel, 'the screen is sent');
  await alice.getByRole('button', { name: 'Share screen' }).click();
  await eventually(async () => (await sent()).find((s) => s.kind === 'video').label === cameraLabel,
    5_000, 'the camera to be sent again');
});

test('the page loads nothing from anywhere but the device', async () => {
  const context = await env.browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const requested = [];
  page.on('request', (request) => requested.push(request.url()));
  await logInPage(page, new URL(env.daemon.url).origin);
  await page.goto(roomUrl('offline'));
  await waitForStatus(page, 'waiting');
  const origin = new URL(env.daemon.url).origin;
  const foreign = requested.filter((url) => !url.startsWith(origin) && !url.startsWith('data:'));
  assert.deepEqual(foreign, []);
  assert.ok(requested.some((url) => url.endsWith('/room-call.js')), 'the page modules were loaded');
  await context.close();
});
