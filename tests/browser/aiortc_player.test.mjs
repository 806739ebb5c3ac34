// A WHEP player no one here wrote the WebRTC of: aiortc (PyPI, tests/browser/aiortc_whep.py)
// watches the device with the offer shapes real players send, and checks the device's answer
// against the WHEP draft: bundle-only audio (JSEP's max-bundle, as Firefox offers it) plays,
// as do audio-first, video-only and several-transceiver offers; an audio-only offer is refused
// with its reason; a VP8-only player gets VP8; trickled candidates need the session's entity
// tag (412 for another, 428 for none); an ICE restart gets 422 and the session plays on; and
// DELETE ends both of the player's tracks at once with the device's RTCP BYE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createToken, eventually, startDaemon } from './harness.mjs';
import { aiortcPython, playWhep } from './aiortc.mjs';

let daemon;
let token;
before(async () => {
  aiortcPython();
  daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n');
  token = createToken(daemon.stateDir, 'aiortc');
});
after(async () => {
  if (process.env.PEERCAM_SHOW_LOG) console.log(daemon?.output);
  await daemon?.stop();
});

/** Runs the aiortc player with `args`; resolves with its report. */
const play = (...args) => playWhep(`${daemon.url}whep`, token, ...args);

/** Waits until the device has let the last player go and stopped its camera. */
async function idle() {
  await eventually(async () => (await daemon.metrics()).peercam_viewers === 0, 10_000,
    'no viewer left on the device');
}

/** The m-sections of `sdp`, each as its text. */
const sections = (sdp) => sdp.split(/\r\n(?=m=)/).slice(1);

function assertPlays(report, { audio = true } = {}) {
  const shown = JSON.stringify({ ...report, answer: undefined });
  assert.equal(report.post, 201, shown);
  // 4 s of 30 fps; the first frames wait for ICE, DTLS and a keyframe.
  assert.ok(report.video.frames >= 60, `video frames decoded: ${shown}`);
  assert.deepEqual(report.video.size, [640, 360], shown);
  if (audio) {
    // 20 ms Opus frames: 200 in 4 s.
    assert.ok(report.audio.frames >= 100, `audio frames decoded: ${shown}`);
    assert.ok(report.audio.dbfs > -30, `the test tone is heard: ${shown}`);
  } else {
    assert.equal(report.audio.frames, 0, shown);
  }
  // DELETE: the device's BYE ends every track the player had at once.
  assert.equal(report.delete, 200, shown);
  assert.deepEqual(report.endedAfterDelete, audio ? ['audio', 'video'] : ['video'], shown);
}

test('the default offer: H.264 and Opus, an answer as the WHEP draft writes it', async () => {
  const report = await play();
  assertPlays(report);
  const { answer } = report;
  assert.match(answer, /a=rtpmap:\d+ H264\/90000/);
  assert.match(report.etag, /^"[^"]+"$/, 'an ETag on the 201');
  const video = sections(answer).find((s) => s.startsWith('m=video'));
  const fmtp = video.match(/a=fmtp:\d+ (.*)/)[1];
  assert.equal(fmtp.match(/level-asymmetry-allowed/g)?.length, 1, fmtp);
  for (const section of sections(answer)) {
    assert.match(section, /\r\na=msid:\S+ \S+\r\n/, `a media-level msid: ${section}`);
    assert.match(section, /\r\na=end-of-candidates(\r\n|$)/, `gathering complete: ${section}`);
    assert.match(section, /\r\na=rtcp-mux\r\n/);
    // RFC 8858: the answerer never writes rtcp-mux-only.
    assert.doesNotMatch(section, /rtcp-mux-only/);
  }
  await idle();
});

test('a bundle-only audio m-line (port 0), as Firefox and JSEP max-bundle offer it, gets audio',
  async () => {
    assertPlays(await play('--shape', 'bundle-only'));
    await idle();
  });

test('audio first, video only, and several transceivers all play', async () => {
  assertPlays(await play('--shape', 'audio-first'));
  await idle();
  assertPlays(await play('--shape', 'video-only'), { audio: false });
  await idle();
  const several = await play('--shape', 'several');
  assertPlays(several);
  // The device fills the first transceiver of each kind; the others are inactive.
  assert.equal(sections(several.answer).filter((s) => /a=inactive/.test(s)).length, 2);
  await idle();
});

test('an audio-only offer is refused with its reason', async () => {
  const report = await play('--shape', 'audio-only');
  assert.equal(report.post, 400);
  assert.match(report.error, /no video m-line/);
});

test('a player that offers only VP8 gets VP8', async () => {
  const report = await play('--codec', 'VP8');
  assertPlays(report);
  assert.match(report.answer, /a=rtpmap:\d+ VP8\/90000/);
  assert.doesNotMatch(report.answer, /H264/);
  await idle();
});

test('trickle needs the session\'s ETag (412, 428); an ICE restart gets 422 and play goes on',
  async () => {
    const report = await play('--trickle', '--stale-etag', '--no-etag', '--restart');
    assertPlays(report);
    assert.equal(report.patch, 204, 'the candidates under the session\'s ETag');
    assert.equal(report.stale, 412, 'If-Match with another entity tag');
    assert.equal(report.untagged, 428, 'no If-Match');
    assert.equal(report.restart.status, 422, JSON.stringify(report.restart));
    assert.match(report.restart.body, /restart ICE/);
    assert.ok(report.restart.framesAfter >= 15, `frames after the refused restart: ${JSON.stringify(report.restart)}`);
    await idle();
  });
