// The caller's microphone reaches the device's audio sink only after the caller presses Talk;
// until then the call is receive-only. The sink writes what the device would play to a file, so
// the test hears the caller's voice itself, through the page's noise suppression, Opus and the
// device's decoder. Talk pressed and then Watch lets the microphone go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  callButton, eventually, heardAtTheSink, openPage, talkButton, useDaemonAndBrowser,
  waitForFrames, waitUntilIdle, watchButton, writeVoiceWav,
} from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'peercam-talkback-'));
const played = join(dir, 'played.s16');
const env = useDaemonAndBrowser(
  '[media]\nwidth = 640\nheight = 360\n'
    + `audio_sink = "audioconvert ! audio/x-raw,format=S16LE ! filesink location=${played}"\n`,
  { media: true, microphone: writeVoiceWav(join(dir, 'voice.wav')) },
);

const talkbackBytes = async () => (await env.daemon.metrics()).peercam_talkback_bytes_total;

test('the device hears the caller once Talk is on, and not before', async (t) => {
  const page = await openPage(env.browser, env.daemon.url);
  t.after(async () => {
    await page.context().close();
    await waitUntilIdle(env.daemon);
  });
  await callButton(page).click();
  await waitForFrames(page, 30);
  const usedMicrophone = await page.evaluate(() =>
    window.peercam.pc.getSenders().some((s) => s.track && s.track.kind === 'audio'));
  assert.equal(usedMicrophone, false, 'no microphone before Talk');
  assert.equal(await talkbackBytes(), 0, 'nothing reaches the speaker before Talk');

  await talkButton(page).click();
  await eventually(async () => (await talkButton(page).getAttribute('aria-pressed')) === 'true',
    5_000, 'Talk to show as on');
  // The caller speaks at about a quarter of full scale.
  const { bytes, loudest } = await heardAtTheSink(talkbackBytes, played, 'the caller\'s voice');
  assert.ok(bytes > 48_000);
  assert.ok(loudest > 2_000, `loudest sample ${loudest}`);
});

test('Talk pressed before calling sends the microphone from the start', async () => {
  const page = await openPage(env.browser, env.daemon.url);
  await talkButton(page).click();
  const before = await talkbackBytes();
  await callButton(page).click();
  await waitForFrames(page, 10);
  await eventually(async () => (await talkbackBytes()) > before + 48_000, 10_000, 'talkback audio');
});

test('Talk pressed, then Watch: the microphone is let go and Talk is not offered', async (t) => {
  const page = await openPage(env.browser, env.daemon.url);
  t.after(() => page.context().close());
  // Every microphone stream the page opens, to see that it is stopped.
  await page.context().addInitScript(() => {
    const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    window.openedStreams = [];
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      const stream = await open(constraints);
      window.openedStreams.push(stream);
      return stream;
    };
  });
  await page.reload();
  await talkButton(page).click();
  await eventually(() => page.evaluate(() => window.openedStreams.length === 1
    && window.openedStreams[0].getAudioTracks()[0].readyState === 'live'), 5_000,
  'the microphone to open');
  await watchButton(page).click();
  await waitForFrames(page, 10);
  assert.equal(await page.evaluate(() => window.openedStreams[0].getAudioTracks()[0].readyState),
    'ended', 'the microphone is stopped');
  assert.equal(await talkButton(page).count(), 0, 'Talk is not offered while watching');
  const sending = await page.evaluate(() => window.peercam.pc.getSenders()
    .filter((sender) => sender.track).length);
  assert.equal(sending, 0, 'the watch sends the device nothing');
});
