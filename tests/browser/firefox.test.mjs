// Firefox ESR (Debian's, headless, through puppeteer-core) on the device's page: it has no
// H.264 offline, so everything runs on VP8. Call device plays video and audio; Watch plays
// video and audio (Firefox offers the audio bundle-only, port 0); Talk reaches the device's
// speaker; and the owner's Call device in Firefox wins over a WHEP viewer already watching on
// H.264, as a go2rtc or Home Assistant viewer would be around the clock: a second encoder sends
// the owner VP8 while the viewer watches on (or, with `media.max_encoders = 1`, the viewer is
// let go).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createToken, eventually, heardAtTheSink, inbound, startDaemon, waitForFrames, waitUntilIdle,
} from './harness.mjs';
import { aiortcPython, playWhep } from './aiortc.mjs';
import { firefoxPage, launchFirefox, useFirefoxRoute } from './firefox.mjs';

const dir = mkdtempSync(join(tmpdir(), 'peercam-firefox-talk-'));
const played = join(dir, 'played.s16');

useFirefoxRoute();
let daemon;
let firefox;
before(async () => {
  aiortcPython();
  daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n'
    + `audio_sink = "audioconvert ! audio/x-raw,format=S16LE ! filesink location=${played}"\n`);
  firefox = await launchFirefox();
});
after(async () => {
  if (process.env.PEERCAM_SHOW_LOG) console.log(daemon?.output);
  await firefox?.close();
  await daemon?.stop();
});

/** The page's status line (puppeteer has no Playwright locators). */
const status = (page) => page.$eval('#status', (el) => ({ state: el.dataset.state, text: el.textContent }));

/** Hangs up, closes the page's context, and waits until the device is free. */
async function hangUp(page) {
  await page.click('#hangup').catch(() => {});
  await page.browserContext().close();
  await waitUntilIdle(daemon);
}

/** Waits until the page has decoded audio (packets received and samples played out). */
async function waitForAudio(page) {
  return eventually(async () => {
    const audio = await inbound(page, 'audio');
    return audio && audio.packetsReceived > 50 ? audio : null;
  }, 15_000, 'audio packets on the Firefox page');
}

test('Firefox calls the device: VP8 video and Opus audio', async (t) => {
  const page = await firefoxPage(firefox, daemon.url);
  t.after(() => hangUp(page));
  await page.click('#call');
  const video = await waitForFrames(page, 30);
  assert.equal(video.codec, 'video/VP8');
  const audio = await waitForAudio(page);
  assert.equal(audio.codec, 'audio/opus');
  assert.equal((await status(page)).state, 'in-call');
});

test('Firefox watches the device: video and its bundle-only audio', async (t) => {
  const page = await firefoxPage(firefox, daemon.url);
  t.after(async () => {
    await page.click('#stop-watching').catch(() => {});
    await page.browserContext().close();
  });
  await page.click('#watch');
  const video = await waitForFrames(page, 30);
  assert.equal(video.codec, 'video/VP8');
  const offer = await page.evaluate(() => window.peercam.pc.localDescription.sdp);
  assert.match(offer, /m=audio 0 [^\r]*\r\n(.*\r\n)*a=bundle-only/,
    'Firefox offered its audio bundle-only (the case under test)');
  await waitForAudio(page);
});

test('Firefox talks: its microphone reaches the device\'s speaker', async (t) => {
  const page = await firefoxPage(firefox, daemon.url);
  t.after(() => hangUp(page));
  await page.click('#call');
  await waitForFrames(page, 10);
  await page.click('#talk');
  // Firefox's fake microphone is a steady tone.
  const talkbackBytes = async () => (await daemon.metrics()).peercam_talkback_bytes_total;
  const { bytes, loudest } = await heardAtTheSink(talkbackBytes, played,
    'Firefox\'s microphone', 15_000);
  assert.ok(bytes > 48_000);
  assert.ok(loudest > 2_000, `loudest sample ${loudest}`);
});

/**
 * A viewer on H.264, as go2rtc or Home Assistant would watch around the clock, once it watches;
 * `report` settles with its report when it has stopped (wrapped: an async function returning a
 * promise would wait for it).
 */
async function h264Viewer(device, seconds = 20) {
  const token = createToken(device.stateDir, 'home-assistant');
  const viewer = playWhep(`${device.url}whep`, token, '--seconds', String(seconds));
  await eventually(async () => (await device.metrics()).peercam_viewers === 1, 15_000,
    'the WHEP viewer to be watching');
  await eventually(() => /viewer \d+ \(token `home-assistant`[^)]*\) watches: video H264/
    .test(device.output), 5_000, 'the viewer on H.264');
  return { report: viewer };
}

test('the owner in Firefox (no H.264) calls while a WHEP viewer watches on H.264: a second encoder',
  async (t) => {
    const page = await firefoxPage(firefox, daemon.url);
    let hungUp = false;
    t.after(() => (hungUp ? null : hangUp(page)));
    const viewer = await h264Viewer(daemon, 25);
    assert.equal((await daemon.metrics()).peercam_video_encoders, 1);
    await page.click('#call');
    const video = await waitForFrames(page, 30);
    assert.equal(video.codec, 'video/VP8', 'the owner\'s call plays, on the codec it takes');
    assert.equal((await status(page)).state, 'in-call');
    assert.match(daemon.output, /a second encoder sends it VP8, and 1 viewer\(s\) watch on in H264/);
    const during = await daemon.metrics();
    assert.equal(during.peercam_video_encoders, 2, 'H.264 for the viewer, VP8 for the owner');
    assert.equal(during.peercam_viewers, 1, 'the viewer watches on');
    // The owner hangs up while the viewer watches: the second encoder stops, the first goes on.
    await hangUp(page);
    hungUp = true;
    await eventually(async () => (await daemon.metrics()).peercam_video_encoders === 1, 5_000,
      'the second encoder to stop after the call');
    assert.match(daemon.output, /the second encoder \(VP8\) stopped: no one is on it/);
    // The viewer was never cut off or held up: its session lasts, its frames kept coming while
    // the second encoder came and went.
    const report = await viewer.report;
    t.diagnostic(`the viewer: ${JSON.stringify(report.video)}`);
    assert.match(report.answer, /H264/);
    assert.equal(report.delete, 200, 'the viewer\'s session was still there');
    assert.ok(report.video.frames > 100, `the viewer watched throughout: ${JSON.stringify(report.video)}`);
    assert.ok(report.video.longestGapMs < 5000,
      `no gap in the viewer's video as the second encoder came and went: ${JSON.stringify(report.video)}`);
    assert.doesNotMatch(daemon.output, /were let go/);
    await eventually(async () => (await daemon.metrics()).peercam_video_encoders === 0, 15_000,
      'the camera to stop after the last peer');
  });

test('with media.max_encoders = 1 the owner in Firefox still wins: the H.264 viewer is let go',
  async (t) => {
    // At 720p: the viewer's H.264 keeps it, the owner's VP8 is scaled to vp8_max_height (360).
    const single = await startDaemon('[media]\nwidth = 1280\nheight = 720\nmax_encoders = 1\n');
    t.after(() => single.stop());
    const page = await firefoxPage(firefox, single.url);
    t.after(async () => {
      await page.click('#hangup').catch(() => {});
      await page.browserContext().close();
    });
    const viewer = await h264Viewer(single, 10);
    // Its first receiver reports: it has been watching for a moment.
    await eventually(() => /viewer \d+: video bitrate/.test(single.output), 10_000,
      'the viewer\'s first reports');
    await page.click('#call');
    const video = await waitForFrames(page, 30);
    assert.equal(video.codec, 'video/VP8', 'the owner\'s call plays, on the codec it takes');
    assert.equal(video.frameHeight, 360, 'VP8 no taller than media.vp8_max_height');
    assert.equal((await status(page)).state, 'in-call');
    // The viewer was let go, and told why; its own DELETE finds no session.
    assert.match(single.output, /the owner called from a browser that does not receive H264: the camera now sends VP8/);
    const report = await viewer.report;
    assert.ok(report.video.frames > 30, `the viewer watched on H.264 first: ${JSON.stringify(report.video)}`);
    assert.match(report.answer, /H264/);
    assert.deepEqual(report.video.size, [1280, 720], 'H.264 at the camera\'s size');
    assert.equal(report.delete, 404, 'the device had ended the viewer\'s session');
    const after = await single.metrics();
    assert.equal(after.peercam_viewers, 0);
    assert.equal(after.peercam_video_encoders, 1, 'one encoder, in VP8');
  });
