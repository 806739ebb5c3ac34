// Named rooms, as in the tutorials: two browsers see each other through the device's
// signaling; a third is told the room is full; when one leaves, the other waits and a new
// person can join; a page that reloads mid-call comes back by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  inbound, openPage, status, useDaemonAndBrowser, waitForFrames, waitForStatus,
} from './harness.mjs';

const env = useDaemonAndBrowser();
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
