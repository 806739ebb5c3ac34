// Room names are checked, and the rooms and memberships one address may hold are capped:
// each refusal is a clear error, and nobody else's room is disturbed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  exchange, joinMany, openPage, useDaemonAndBrowser, waitForFrames, waitForStatus,
} from './harness.mjs';

const env = useDaemonAndBrowser('[rooms]\nrooms_per_address = 3\nmembers_per_address = 5\n', { media: true });

test('invalid room names get a clear error', async () => {
  const page = await openPage(env.browser, env.daemon.url);
  const { replies, open } = await exchange(page, [
    JSON.stringify({ type: 'join', room: 'no spaces' }),
    JSON.stringify({ type: 'join', room: 'x'.repeat(65) }),
    JSON.stringify({ type: 'join', room: '<script>' }),
    JSON.stringify({ type: 'join', room: '' }),
  ]);
  assert.deepEqual(replies.map((r) => r.code), ['invalid-room', 'invalid-room', 'invalid-room', 'invalid-room']);
  assert.match(replies[0].message, /letters, digits/);
  assert.match(replies[1].message, /longer than 64/);
  assert.ok(open);

  const fromUrl = await openPage(env.browser, `${env.daemon.url}?room=bad%20name`);
  const shown = await waitForStatus(fromUrl, 'error');
  assert.match(shown.text, /Room names are 1 to 64/);
});

test('rooms and memberships per address are capped with clear errors', async () => {
  const alice = await openPage(env.browser, `${env.daemon.url}?room=kept`);
  const bob = await openPage(env.browser, `${env.daemon.url}?room=kept`);
  await Promise.all([waitForFrames(alice, 30), waitForFrames(bob, 30)]);

  // All pages come from 127.0.0.1, which now has 1 room and 2 places in rooms.
  const holder = await openPage(env.browser, env.daemon.url);
  const replies = await joinMany(holder, ['r1', 'r2', 'r3', 'r1', 'r2']);
  assert.deepEqual(replies.map((r) => (r.type === 'error' ? r.code : r.type)),
    ['created', 'created', 'limit-reached', 'joined', 'limit-reached']);
  assert.match(replies[2].message, /already has 3 rooms open \(limit 3\)/);
  assert.match(replies[4].message, /already holds 5 places in rooms \(limit 5\)/);

  const big = await exchange(holder, [JSON.stringify({ type: 'offer', sdp: 'x'.repeat(70_000) })]);
  assert.equal(big.replies[0].code, 'too-large');

  const before = await alice.evaluate(async () => {
    for (const s of (await window.peercam.pc.getStats()).values()) if (s.type === 'inbound-rtp' && s.kind === 'video') return s.framesDecoded;
    return 0;
  });
  await waitForFrames(alice, before + 30);
  await waitForStatus(alice, 'in-call');
});
