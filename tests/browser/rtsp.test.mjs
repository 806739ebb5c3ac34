// The RTSP server for NVRs ([rtsp] enabled): Debian's ffprobe and ffmpeg and GStreamer's
// rtspsrc pull rtsp://<device>:<port>/camera with the owner's password (user `owner`) or a
// viewer token (user: its name) over Digest, and are refused without; the stream is the shared
// encoder's H.264 and Opus (one encoder while a call is on, counted in /metrics); the camera
// starts with the first RTSP client and stops after the last; a flood of idle connections
// is capped and closed. An NVR's talk button (the ONVIF audio backchannel, sent by
// examples/onvif_talk.rs through GStreamer's rtspsrc) reaches the device's speaker, whose sink
// writes to a file the test reads; the page's caller talking comes first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  callButton, createToken, eventually, freePort, heardAtTheSink, launchBrowser, loudestSample, openPage,
  PASSWORD, revokeToken, startDaemon, talkButton, waitForFrames, waitUntilIdle, writeVoiceWav,
} from './harness.mjs';

const TALKER = fileURLToPath(new URL('../../target/debug/examples/onvif_talk', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'peercam-rtsp-'));
const played = join(dir, 'played.s16');

/** Runs `command` to its end: its exit code and output, never a rejection. */
function run(command, args, timeout = 60_000) {
  return new Promise((resolve) => {
    execFile(command, args, { timeout }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

let daemon;
let browser;
let port;
before(async () => {
  port = await freePort();
  daemon = await startDaemon(`[rtsp]\nenabled = true\nport = ${port}\n[media]\nwidth = 640\n`
    + 'height = 360\n'
    + `audio_sink = "audioconvert ! audio/x-raw,format=S16LE ! filesink location=${played}"\n`);
  browser = await launchBrowser({ media: true, microphone: writeVoiceWav(join(dir, 'voice.wav')) });
});
after(async () => {
  if (process.env.PEERCAM_SHOW_LOG) console.log(daemon?.output);
  await browser?.close();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const url = (user, secret) => `rtsp://${user}:${encodeURIComponent(secret)}@127.0.0.1:${port}/camera`;

/** ffprobe's view of the stream: its streams, or its error. */
async function probe(location) {
  const result = await run('ffprobe', ['-v', 'error', '-rtsp_transport', 'tcp', '-show_streams',
    '-of', 'json', location]);
  return { ...result, streams: result.code === 0 ? JSON.parse(result.stdout).streams : [] };
}

test('without credentials, or with wrong ones, RTSP is refused (401)', async () => {
  const anonymous = await probe(`rtsp://127.0.0.1:${port}/camera`);
  assert.notEqual(anonymous.code, 0);
  assert.match(anonymous.stderr, /401 Unauthorized/);
  const wrong = await probe(url('owner', 'not-the-password'));
  assert.match(wrong.stderr, /401 Unauthorized/);
  assert.equal((await daemon.metrics()).peercam_video_encoders, 0, 'the camera stayed off');
});

test('ffprobe with the owner\'s password sees H.264 at the camera\'s size and Opus, over IPv4 and IPv6', async () => {
  const { code, stderr, streams } = await probe(url('owner', PASSWORD));
  assert.equal(code, 0, stderr);
  const video = streams.find((s) => s.codec_type === 'video');
  const audio = streams.find((s) => s.codec_type === 'audio');
  assert.equal(video?.codec_name, 'h264');
  assert.deepEqual([video.width, video.height], [640, 360]);
  assert.equal(audio?.codec_name, 'opus');
  // Over IPv6 too (one dual-stack socket).
  const overIpv6 = await probe(`rtsp://owner:${encodeURIComponent(PASSWORD)}@[::1]:${port}/camera`);
  assert.equal(overIpv6.code, 0, overIpv6.stderr);
  assert.equal(overIpv6.streams.find((s) => s.codec_type === 'video')?.codec_name, 'h264');
});

test('ffmpeg decodes frames with a viewer token; revoked, its NVR is cut off and refused', async () => {
  const token = createToken(daemon.stateDir, 'frigate');
  const decoded = await run('ffmpeg', ['-v', 'info', '-rtsp_transport', 'tcp', '-i', url('frigate', token),
    '-frames:v', '60', '-f', 'null', '-']);
  assert.equal(decoded.code, 0, decoded.stderr);
  assert.match(decoded.stderr, /frame=\s*60\b/);
  assert.doesNotMatch(decoded.stderr, /corrupt decoded frame|concealing|DTS discontinuity/);
  assert.match(decoded.stderr, /Video: h264/);
  // Another user name with the token is not the token's line.
  assert.match((await probe(url('someone', token))).stderr, /401 Unauthorized/);
  // Revoked while an NVR records with it: the NVR is cut off, and cannot log in again.
  let ended = false;
  const recording = run('ffmpeg', ['-v', 'info', '-rtsp_transport', 'tcp', '-i', url('frigate', token),
    '-t', '60', '-f', 'null', '-'], 90_000).then((r) => { ended = true; return r; });
  await eventually(async () => (await daemon.metrics()).peercam_video_encoders === 1, 15_000,
    'the NVR to be pulling');
  revokeToken(daemon.stateDir, 'frigate');
  await eventually(() => ended, 15_000, 'the revoked token\'s NVR to be disconnected');
  assert.match((await recording).stderr, /frame=\s*\d+/);
  assert.match(daemon.output, /RTSP: \["frigate"\] may no longer log in/);
  assert.match((await probe(url('frigate', token))).stderr, /401 Unauthorized/);
});

test('GStreamer\'s rtspsrc over UDP receives the stream; the camera stops after the last client',
  async () => {
    const received = await run('gst-launch-1.0', ['-q', 'rtspsrc', `location=rtsp://127.0.0.1:${port}/camera`,
      'user-id=owner', `user-pw=${PASSWORD}`, 'protocols=udp', '!', 'rtph264depay', '!', 'h264parse', '!',
      'video/x-h264,stream-format=byte-stream', '!', 'fakesink', 'num-buffers=60']);
    assert.equal(received.code, 0, received.stderr);
    await eventually(async () => (await daemon.metrics()).peercam_video_encoders === 0, 10_000,
      'the camera to stop after the last RTSP client');
    assert.match(daemon.output, /RTSP: the stream's last client left/);
  });

test('while the owner is in a call, an NVR pulls the same encoder\'s stream', async (t) => {
  const page = await openPage(browser, daemon.url);
  t.after(async () => {
    await page.context().close();
    await waitUntilIdle(daemon);
  });
  await callButton(page).click();
  await waitForFrames(page, 30);
  const nvr = run('ffmpeg', ['-v', 'info', '-rtsp_transport', 'tcp', '-i', url('owner', PASSWORD),
    '-t', '6', '-f', 'null', '-']);
  await eventually(() => /RTSP: the stream is fed from the shared H.264 encoder/.test(daemon.output),
    15_000, 'the RTSP feed');
  assert.equal((await daemon.metrics()).peercam_video_encoders, 1, 'one encoder for the call and RTSP');
  const atStart = await waitForFrames(page, 0);
  const decoded = await nvr;
  assert.equal(decoded.code, 0, decoded.stderr);
  assert.match(decoded.stderr, /frame=\s*\d{2,}/);
  // Whole pictures: each frame's slices arrive under one timestamp, in one time line.
  assert.doesNotMatch(decoded.stderr, /corrupt decoded frame|concealing|DTS discontinuity/);
  // The call kept playing while the NVR pulled (its decoded frames went on).
  const afterwards = await waitForFrames(page, atStart.framesDecoded + 60);
  assert.ok(afterwards.framesDecoded > atStart.framesDecoded + 60);
  assert.equal(afterwards.codec, 'video/H264');
});

test('a flood of idle RTSP connections is capped and closed; the device and NVRs carry on',
  async () => {
    const fdsBefore = daemon.openFds();
    let closed = 0;
    const sockets = Array.from({ length: 150 }, () => connect(port, '127.0.0.1')
      .on('error', () => {}).on('close', () => { closed += 1; }));
    try {
      // Over the cap (64) closed as they are accepted (a loaded machine's TCP retries the
      // connections its backlog dropped, seconds later); the rest after 10 s without setting
      // anything up.
      await eventually(() => closed >= 150 - 64, 20_000,
        'the connections over the cap to be closed').catch((e) => {
        throw new Error(`${e.message}: ${closed} closed, daemon fds ${daemon.openFds()} (before ${fdsBefore})`);
      });
      assert.ok(daemon.openFds() < fdsBefore + 64 + 16,
        `descriptors held: ${daemon.openFds()} (before: ${fdsBefore})`);
      // Each is closed 10 s after it was accepted; a connection whose SYN the full backlog
      // dropped is retried by TCP at 1, 3, 7, 15 and 31 s, so the last may come late.
      await eventually(() => closed === 150, 60_000, 'the idle connections to be closed');
    } finally {
      sockets.forEach((s) => s.destroy());
    }
    assert.match(daemon.output, /RTSP: 64 connections are open; more are refused/);
    const { code, stderr, streams } = await probe(url('owner', PASSWORD));
    assert.equal(code, 0, stderr);
    assert.equal(streams.find((s) => s.codec_type === 'video')?.codec_name, 'h264');
  });

const talkbackBytes = async () => (await daemon.metrics()).peercam_talkback_bytes_total;

/** An NVR pressing talk for `seconds`: what examples/onvif_talk.rs reports. */
async function nvrTalks(seconds, user = 'owner', secret = PASSWORD) {
  const result = await run(TALKER, [url(user, secret), String(seconds)], (seconds + 30) * 1000);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  return JSON.parse(result.stdout);
}

test('an NVR\'s talk button (ONVIF backchannel) reaches the device\'s speaker', async () => {
  const before = await talkbackBytes();
  const token = createToken(daemon.stateDir, 'blue-iris');
  const talk = nvrTalks(4, 'blue-iris', token);
  // 8 kHz mono S16 at the sink: 16 000 bytes a second.
  const { loudest } = await heardAtTheSink(
    async () => (await talkbackBytes()) - before, played, 'the NVR\'s tone');
  const sent = await talk;
  assert.equal(sent.backchannel, true);
  assert.ok(sent.sent >= 150, `${sent.sent} packets sent`);
  // The tone is sent at 0.3 of full scale.
  assert.ok(loudest > 5_000, `loudest sample ${loudest}`);
  assert.match(daemon.output, /speaker: NVR talker \d+ is heard/);
  await eventually(() => /speaker: NVR talker \d+ left/.test(daemon.output), 10_000,
    'the NVR\'s talk to end with its session');
});

test('while the owner talks on the page, an NVR\'s talk is not played', async (t) => {
  const page = await openPage(browser, daemon.url);
  t.after(async () => {
    await page.context().close();
    await waitUntilIdle(daemon);
  });
  await talkButton(page).click();
  await callButton(page).click();
  await waitForFrames(page, 10);
  const start = await talkbackBytes();
  await eventually(async () => (await talkbackBytes()) > start + 48_000, 10_000,
    'the owner\'s voice at the speaker');
  const heard = () => (daemon.output.match(/speaker: NVR talker \d+ is heard/g) ?? []).length;
  const heardBefore = heard();
  const sent = await nvrTalks(3);
  assert.ok(sent.sent >= 100, `${sent.sent} packets sent`);
  assert.match(daemon.output, /an NVR's talk is not played: the owner is talking on the page/);
  assert.equal(heard(), heardBefore, 'the NVR is not heard while the owner talks');
  // The owner is still heard.
  const during = await talkbackBytes();
  await eventually(async () => (await talkbackBytes()) > during + 48_000, 10_000,
    'the owner\'s voice at the speaker after the NVR tried');
  assert.ok(loudestSample(played) > 2_000);
});
