// Firefox ESR (Debian's, headless, through puppeteer-core) on the device's page: it has no
// H.264 offline, so everything runs on VP8. Call device plays video and audio; Watch plays
// video and audio (Firefox offers the audio bundle-only, port 0); Talk reaches the device's
// speaker; and the owner's Call device in Firefox wins over a WHEP viewer already watching on
// H.264, as a go2rtc or Home Assistant viewer would be around the clock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  eventually, inbound, loudestSample, startDaemon, waitForFrames, waitUntilIdle,
} from './harness.mjs';
import { firefoxPage, launchFirefox, useFirefoxRoute } from './firefox.mjs';

const dir = mkdtempSync(join(tmpdir(), 'peercam-firefox-talk-'));
const played = join(dir, 'played.s16');

useFirefoxRoute();
let daemon;
let firefox;
before(async () => {
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

/** Waits until the page has decoded audio (packets received and samples played out). */
async function waitForAudio(page) {
  return eventually(async () => {
    const audio = await inbound(page, 'audio');
    return audio && audio.packetsReceived > 50 ? audio : null;
  }, 15_000, 'audio packets on the Firefox page');
}

test('Firefox calls the device: VP8 video and Opus audio', async (t) => {
  const page = await firefoxPage(firefox, daemon.url);
  t.after(async () => {
    await page.browserContext().close();
    await waitUntilIdle(daemon);
  });
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
  t.after(async () => {
    await page.browserContext().close();
    await waitUntilIdle(daemon);
  });
  await page.click('#call');
  await waitForFrames(page, 10);
  await page.click('#talk');
  const bytes = await eventually(async () => {
    const n = (await daemon.metrics()).peercam_talkback_bytes_total;
    return n > 48_000 ? n : null; // more than a quarter second of 48 kHz stereo S16
  }, 15_000, 'talkback audio at the device sink');
  assert.ok(bytes > 48_000);
  // Firefox's fake microphone is a steady tone; silence stays under a few hundred.
  const loudest = await eventually(async () => {
    const sample = loudestSample(played);
    return sample > 2_000 ? sample : null;
  }, 10_000, 'Firefox\'s microphone, not silence, at the device sink');
  assert.ok(loudest > 2_000, `loudest sample ${loudest}`);
});
