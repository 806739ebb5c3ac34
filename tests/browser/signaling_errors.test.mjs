// Malformed, unknown and oversized signaling messages each get an `error` reply on the real
// socket; the connection stays usable and a call in progress is not disturbed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, exchange, inbound, openPage, useDaemonAndBrowser, waitForFrames,
} from './harness.mjs';

const env = useDaemonAndBrowser('[media]\nwidth = 640\nheight = 360\n[signaling]\nmax_message_bytes = 65536\n');

test('a frame over the hard limit closes the socket with 1009 and its reason', async () => {
  const page = await openPage(env.browser, env.daemon.url);
  const closed = await page.evaluate(async () => {
    const ws = new WebSocket(`wss://${location.host}/ws`);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    const done = new Promise((resolve) => { ws.onclose = (e) => resolve({ code: e.code, reason: e.reason }); });
    ws.send('x'.repeat(5 * 1024 * 1024));
    return done;
  });
  assert.equal(closed.code, 1009);
  assert.match(closed.reason, /too (long|big)/i);
  await page.context().close();
});

test('bad messages get clear errors and disturb nothing', async () => {
  const caller = await openPage(env.browser, env.daemon.url);
  await callButton(caller).click();
  await waitForFrames(caller, 30);

  const other = await openPage(env.browser, env.daemon.url);
  const { replies, open } = await exchange(other, [
    '{not json',
    '{"type":"dance"}',
    '{"type":"answer","sdp":42}',
    JSON.stringify({ type: 'answer', sdp: 'x'.repeat(70_000) }),
    '{"type":"answer","sdp":"v=0"}',
    '{"type":"join","room":"no spaces please"}',
    '{"type":"join"}',
  ]);
  assert.deepEqual(replies.map((r) => r?.type === 'error' ? r.code : r?.type), [
    'bad-message', 'unknown-type', 'bad-message', 'too-large', 'not-allowed', 'invalid-room', 'full',
  ]);
  assert.match(replies[1].message, /dance/);
  assert.match(replies[3].message, /70\d+ bytes is larger than the limit of 65536/);
  assert.ok(open, 'the connection survived every bad message');

  const before = (await inbound(caller, 'video')).framesDecoded;
  await waitForFrames(caller, before + 30);
  const metrics = await env.daemon.metrics();
  assert.equal(metrics.peercam_calls_started_total, 1);
  assert.equal(metrics.peercam_calls_failed_total, 0);
  assert.equal(metrics.peercam_in_call, 1);
});
