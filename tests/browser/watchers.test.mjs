// Watchers: the owner calls, two WHEP players on another origin watch the same encode with a
// viewer token, a third is refused over `[watchers] max`, a malformed offer is refused without
// disturbing anyone, and when the caller hangs up the watchers keep playing. A player that
// offers only VP8 gets VP8. The snapshot works during the call. On the device's own page, a
// second person who finds it busy presses Watch instead: no Talk, the caller keeps the device,
// the watcher is counted against the same limit and plays on after the caller hangs up.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  callButton, createToken, eventually, hangUpButton, inbound, jpegSize, openPage, request,
  startWhepPlayer, status, talkButton, useDaemonAndBrowser, waitForFrames, waitForStatus,
  waitUntilIdle, watchButton, whepInbound,
} from './harness.mjs';

const env = useDaemonAndBrowser('[media]\nwidth = 640\nheight = 360\n[watchers]\nmax = 2\n');
const player = await startWhepPlayer();
after(() => player.close());

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** A fresh browser context with a blank page, for a WHEP player (`watch`). */
async function blankPage() {
  const context = await env.browser.newContext({ ignoreHTTPSErrors: true });
  return context.newPage();
}

/** Loads the WHEP player in `page` (a fresh one by default), without logging in to the device. */
async function watch(token, options = {}, page = null) {
  page ??= await blankPage();
  await page.goto(player.url(`${env.daemon.url}whep`, token, options));
  await eventually(() => page.evaluate(() => window.whep?.status ?? window.whep?.error),
    15_000, 'the WHEP POST to be answered');
  return page;
}

async function waitForWhepFrames(page, frames, timeoutMs = 20_000) {
  return eventually(async () => {
    const video = await whepInbound(page, 'video');
    return video && video.framesDecoded > frames ? video : null;
  }, timeoutMs, `more than ${frames} frames decoded by the WHEP player`);
}

/** Frames decoded and freezes, for each of `pages` (device page or WHEP player). */
async function progress(pages) {
  return Promise.all(pages.map(async ({ page, whep }) => (whep
    ? whepInbound(page, 'video') : inbound(page, 'video'))));
}

test('the caller and two WHEP watchers share one encode; the third is refused', async (t) => {
  const token = createToken(env.daemon.stateDir, 'dashboard');
  // Every browser context is made before the call: starting one of Chromium's renderers takes
  // this small machine's CPU for a moment, which would freeze the pages already playing and
  // is no business of the device.
  const [firstPage, secondPage, thirdPage] = [await blankPage(), await blankPage(),
    await blankPage()];
  const owner = await openPage(env.browser, env.daemon.url);
  t.after(() => Promise.all([owner, firstPage, secondPage, thirdPage]
    .map((p) => p.context().close())));
  await callButton(owner).click();
  await waitForFrames(owner, 30);

  const first = await watch(token, {}, firstPage);
  assert.equal(await first.evaluate(() => window.whep.status), 201,
    await first.evaluate(() => window.whep.error));
  const location = await first.evaluate(() => window.whep.location);
  assert.match(location, /^\/whep\/[A-Za-z0-9_-]{20,}$/);
  assert.match(await first.evaluate(() => window.whep.links), /rel="ice-server"/);
  const watched = await waitForWhepFrames(first, 30);
  assert.equal(watched.codec, 'video/H264');
  assert.match(watched.fmtp, /packetization-mode=1/);
  assert.match(watched.fmtp, /profile-level-id=42e01f/);
  const audio = await eventually(() => whepInbound(first, 'audio'), 10_000, 'audio stats');
  assert.equal(audio.codec, 'audio/opus');

  // A second watcher joins: the owner and the first watcher go on playing. A stall while the
  // new peer starts would show as lost frame rate and a freeze; Chromium on this busy 2-core
  // machine may count a hitch of its own, so a freeze is allowed only if it is short.
  const others = [{ page: owner }, { page: first, whep: true }];
  await pause(1_000);
  const before = await progress(others);
  const joinStarted = Date.now();
  const second = await watch(token, {}, secondPage);
  assert.equal(await second.evaluate(() => window.whep.status), 201);
  await waitForWhepFrames(second, 30);
  const during = await progress(others);
  const expected = (30 * (Date.now() - joinStarted)) / 1000;
  for (const [i, now] of during.entries()) {
    const shown = JSON.stringify([before[i], now]);
    assert.ok(now.framesDecoded - before[i].framesDecoded >= 0.8 * expected,
      `peer ${i} kept its frame rate while the second watcher joined (${expected} frames due): ${shown}`);
    assert.ok(now.totalFreezesDuration - before[i].totalFreezesDuration < 0.4,
      `peer ${i} did not freeze while the second watcher joined: ${shown}`);
  }
  // Trickled candidates: whatever the player sent was taken (Chromium without a camera
  // permission gathers none on this namespace's loopback-only network, so one is sent here),
  // and a malformed fragment is refused with its line.
  const { patches } = await second.evaluate(() => window.whep);
  assert.ok(patches.every((s) => s === 204), `PATCH answers ${patches}`);
  const secondLocation = await second.evaluate(() => window.whep.location);
  // The fragment names the session's own ICE credentials (its offer's), as a trickle does.
  const [ufrag, pwd] = await second.evaluate(() => ['ufrag', 'pwd'].map((name) =>
    window.whep.pc.localDescription.sdp.match(new RegExp(`a=ice-${name}:(\\S+)`))[1]));
  // Each PATCH names the session's entity tag, as the WHEP draft asks.
  const etag = await second.evaluate(() => window.whep.etag);
  assert.match(etag ?? '', /^"[^"]+"$/, 'the 201 carries a quoted ETag');
  const fragment = (candidate, credentials = [ufrag, pwd], ifMatch = etag) => ({
    headers: {
      authorization: `Bearer ${token}`, 'content-type': 'application/trickle-ice-sdpfrag',
      ...(ifMatch ? { 'if-match': ifMatch } : {}),
    },
    body: `a=ice-ufrag:${credentials[0]}\r\na=ice-pwd:${credentials[1]}\r\n`
      + `m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=${candidate}\r\n`,
  });
  const trickled = await request(env.daemon.port, 'PATCH', secondLocation,
    fragment('candidate:1 1 udp 2122260223 127.0.0.1 9 typ host generation 0'));
  assert.equal(trickled.status, 204, trickled.body.toString());
  const badFragment = await request(env.daemon.port, 'PATCH', secondLocation,
    fragment('candidate:1 1 udp'));
  assert.equal(badFragment.status, 400);
  assert.match(badFragment.body.toString(), /line 5/);
  // Another session's tag is refused (412), and so is a fragment with none (428).
  const host = 'candidate:1 1 udp 2122260223 127.0.0.1 9 typ host generation 0';
  const stale = await request(env.daemon.port, 'PATCH', secondLocation,
    fragment(host, [ufrag, pwd], '"another-ice-session"'));
  assert.equal(stale.status, 412, stale.body.toString());
  const untagged = await request(env.daemon.port, 'PATCH', secondLocation,
    fragment(host, [ufrag, pwd], null));
  assert.equal(untagged.status, 428, untagged.body.toString());
  // New credentials ask for an ICE restart, which the device refuses (422, as RFC 9725 and the
  // WHEP draft say for a session that takes trickle but not restarts) without touching the
  // session: the watcher plays on. `If-Match: *` asks for one as well.
  const beforeRestart = await progress([{ page: second, whep: true }]);
  const restart = await request(env.daemon.port, 'PATCH', secondLocation,
    fragment('candidate:2 1 udp 2122260223 127.0.0.1 10 typ host generation 0',
      ['newUfrag', 'newPasswordOf24Characters'], '*'));
  assert.equal(restart.status, 422, restart.body.toString());
  assert.match(restart.body.toString(), /ICE restart|restart ICE/);
  const newCredentials = await request(env.daemon.port, 'PATCH', secondLocation,
    fragment('candidate:2 1 udp 2122260223 127.0.0.1 10 typ host generation 0',
      ['newUfrag', 'newPasswordOf24Characters']));
  assert.equal(newCredentials.status, 422, newCredentials.body.toString());
  await pause(1_000);
  const afterRestart = await progress([{ page: second, whep: true }]);
  assert.ok(afterRestart[0].framesDecoded >= beforeRestart[0].framesDecoded + 15,
    `the watcher played on after the refused restart: ${JSON.stringify([beforeRestart, afterRestart])}`);

  // Over the limit: refused with a reason, and nobody else is disturbed.
  const third = await watch(token, {}, thirdPage);
  assert.equal(await third.evaluate(() => window.whep.status), 503);
  assert.match(await third.evaluate(() => window.whep.error), /watchers\.max/);
  const malformed = await request(env.daemon.port, 'POST', '/whep', {
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/sdp' },
    body: 'v=0\r\nthis is not an offer\r\n',
  });
  assert.equal(malformed.status, 400);
  assert.match(malformed.body.toString(), /offer/);

  // A snapshot during the call, at the configured size and at a width asked for.
  const snapshot = await request(env.daemon.port, 'GET', '/snapshot.jpg', {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(snapshot.status, 200);
  assert.equal(snapshot.headers['content-type'], 'image/jpeg');
  assert.deepEqual(jpegSize(snapshot.body), { width: 640, height: 360 });

  // The caller hangs up; the watchers keep playing.
  await hangUpButton(owner).click();
  await eventually(async () => (await env.daemon.metrics()).peercam_in_call === 0, 10_000,
    'the call to end');
  const watchers = [{ page: first, whep: true }, { page: second, whep: true }];
  const atHangUp = await progress(watchers);
  await pause(3_000);
  for (const [i, now] of (await progress(watchers)).entries()) {
    assert.ok(now.framesDecoded >= atHangUp[i].framesDecoded + 30,
      `watcher ${i} kept playing after the caller hung up: ${JSON.stringify([atHangUp[i], now])}`);
  }
  const metrics = await env.daemon.metrics();
  assert.equal(metrics.peercam_viewers_started_total, 2);

  // DELETE ends a session; a second DELETE finds nothing.
  const ended = await request(env.daemon.port, 'DELETE', location, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(ended.status, 200);
  const again = await request(env.daemon.port, 'DELETE', location, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(again.status, 404);
  assert.equal((await request(env.daemon.port, 'DELETE', secondLocation, {
    headers: { authorization: `Bearer ${token}` },
  })).status, 200);
  await waitUntilIdle(env.daemon);
});

test('a watcher that offers only VP8 gets VP8', async () => {
  // A watcher whose page was closed is let go once its reports have stopped for 6 s.
  await eventually(async () => (await env.daemon.metrics()).peercam_viewers === 0, 20_000,
    'the earlier watchers to be gone');
  const token = createToken(env.daemon.stateDir, 'vp8-only');
  const page = await watch(token, { codecs: 'VP8' });
  assert.equal(await page.evaluate(() => window.whep.status), 201,
    await page.evaluate(() => window.whep.error));
  const watched = await waitForWhepFrames(page, 30);
  assert.equal(watched.codec, 'video/VP8');
  await page.context().close();
});

test('on the device page, someone who finds it busy watches instead, without Talk', async (t) => {
  // A watcher whose page was closed is let go once its reports have stopped for 6 s.
  await eventually(async () => (await env.daemon.metrics()).peercam_viewers === 0, 20_000,
    'the earlier watchers to be gone');
  const stopButton = (page) => page.getByRole('button', { name: 'Stop watching', exact: true });
  const token = createToken(env.daemon.stateDir, 'fills-the-last-place');
  const [family, latecomer, playerPage] = [await openPage(env.browser, env.daemon.url),
    await openPage(env.browser, env.daemon.url), await blankPage()];
  const owner = await openPage(env.browser, env.daemon.url);
  t.after(() => Promise.all([owner, family, latecomer, playerPage]
    .map((p) => p.context().close())));
  await callButton(owner).click();
  await waitForFrames(owner, 30);

  // Calling finds the device busy, and the page says Watch is there.
  await callButton(family).click();
  const busy = await waitForStatus(family, 'busy');
  assert.match(busy.text, /Watch/);
  await watchButton(family).click();
  const watched = await waitForFrames(family, 30);
  assert.equal(watched.codec, 'video/H264');
  assert.equal((await status(family)).state, 'in-call');
  assert.match((await status(family)).text, /Watching/);
  assert.equal(await talkButton(family).count(), 0, 'Talk is the caller\'s alone');
  assert.ok(await stopButton(family).isVisible());
  const afterWatch = await inbound(owner, 'video');
  await waitForFrames(owner, afterWatch.framesDecoded + 15);
  const metrics = await env.daemon.metrics();
  assert.equal(metrics.peercam_in_call, 1, 'the owner is still the one caller');
  assert.equal(metrics.peercam_viewers, 1);

  // The page's watcher counts against `[watchers] max` (2): a WHEP player takes the last
  // place, and the next page to press Watch is told why it cannot.
  await playerPage.goto(player.url(`${env.daemon.url}whep`, token));
  await waitForWhepFrames(playerPage, 10);
  await watchButton(latecomer).click();
  const refused = await waitForStatus(latecomer, 'busy');
  assert.match(refused.text, /watchers\.max/);
  assert.ok(await watchButton(latecomer).isEnabled(), 'the latecomer can try again later');

  // The caller hangs up; the page's watcher plays on, then stops and frees its place.
  await hangUpButton(owner).click();
  await waitUntilIdle(env.daemon);
  const atHangUp = await inbound(family, 'video');
  await waitForFrames(family, atHangUp.framesDecoded + 30);
  await stopButton(family).click();
  assert.equal((await status(family)).state, 'ended');
  await eventually(async () => (await env.daemon.metrics()).peercam_viewers === 1, 10_000,
    "the page's watch to end on the device (DELETE)");
  await watchButton(latecomer).click();
  await waitForFrames(latecomer, 30);
});
