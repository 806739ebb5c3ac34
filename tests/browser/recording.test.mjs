// Recordings ([recording]): MP4 segments written from the shared encoder's stream.
// - On motion: the camera is a JPEG file the test swaps (as in motion.test.mjs); a segment
//   appears only once the picture changes, starts with the pre-roll (its first picture is the
//   still one from before the change), is valid MP4 (ffprobe) and is served to the owner's
//   session at /recordings (JSON) and /recordings/<day>/<time>.mp4, with ranges.
// - Continuously, on a small disk (a 12 MB tmpfs of the daemon's own mount namespace): the
//   oldest segments are deleted to keep the free-space floor; a floor the disk cannot give is
//   reported in /recordings' status and the daemon carries on; a daemon killed with SIGKILL
//   leaves every finished segment playable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  eventually, jpegSize, launchBrowser, logIn, openPage, PASSWORD, request, startDaemon,
} from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'peercam-recording-'));
const frame = join(dir, 'frame.jpg');

function show(pattern) {
  const next = join(dir, `next-${pattern}.jpg`);
  execFileSync('gst-launch-1.0', ['-q', 'videotestsrc', `pattern=${pattern}`, 'num-buffers=1', '!',
    'video/x-raw,width=320,height=180', '!', 'jpegenc', '!', 'filesink', `location=${next}`]);
  renameSync(next, frame);
}

/** Runs `command` to its end: its exit code and output. */
function run(command, args, options = {}) {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000, encoding: 'buffer', maxBuffer: 64 << 20, ...options },
      (error, stdout, stderr) => {
        resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr: stderr.toString() });
      });
  });
}

/** /recordings as the owner sees it. */
async function listing(port, cookie) {
  const response = await request(port, 'GET', '/recordings', { headers: { cookie } });
  assert.equal(response.status, 200, response.body.toString());
  return JSON.parse(response.body.toString());
}

const segmentsOf = (list) => list.days.flatMap((day) => day.segments);

/** Downloads a segment to a file of its own; its path. */
async function download(port, cookie, name) {
  const response = await request(port, 'GET', `/recordings/${name}`, { headers: { cookie } });
  assert.equal(response.status, 200);
  assert.equal(response.headers['content-type'], 'video/mp4');
  const path = join(dir, name.replace('/', '_'));
  writeFileSync(path, response.body);
  return path;
}

/** ffprobe's streams and duration of an MP4 file. */
async function probe(path) {
  const result = await run('ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json',
    path]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout.toString());
}

/** The mean brightness (0-255) of a file's first picture. */
async function firstPictureBrightness(path) {
  const result = await run('ffmpeg', ['-v', 'error', '-i', path, '-frames:v', '1', '-vf', 'scale=64:36',
    '-f', 'rawvideo', '-pix_fmt', 'gray', '-']);
  assert.equal(result.code, 0, result.stderr);
  const pixels = result.stdout;
  return pixels.reduce((sum, value) => sum + value, 0) / pixels.length;
}

let daemon;
let cookie;
before(async () => {
  show('black');
  daemon = await startDaemon('[media]\nwidth = 320\nheight = 180\nkeyframe_interval = 10\n'
    + `video_source = "multifilesrc location=${frame} caps=image/jpeg,framerate=10/1 ! jpegdec ! identity sync=true"\n`
    + '[motion]\nenabled = true\nchecks_per_second = 10\nquiet_seconds = 2\n'
    + `[recording]\nenabled = true\npath = "${join(dir, 'recordings')}"\npre_roll_seconds = 2\n`
    + 'min_free_mb = 1\n');
  cookie = await logIn(daemon.port, PASSWORD);
});
after(async () => {
  if (process.env.PEERCAM_SHOW_LOG) console.log(daemon?.output);
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('motion is recorded with its pre-roll, as MP4 the owner can list and download',
  async () => {
    await eventually(() => /recording: waiting for motion/.test(daemon.output), 15_000,
      'the recorder to wait for motion');
    // Still: nothing is recorded (and the pre-roll fills).
    await new Promise((r) => { setTimeout(r, 4_000); });
    assert.deepEqual(segmentsOf(await listing(daemon.port, cookie)), []);

    // A new picture: motion, then (the new picture is still too) its end 2 s later.
    show('smpte');
    await eventually(() => /recording: recording motion/.test(daemon.output), 10_000,
      'the recording to start');
    await eventually(() => /motion: ended/.test(daemon.output), 10_000, 'the motion to end');
    let list;
    await eventually(async () => {
      list = await listing(daemon.port, cookie);
      return list.writing === null && list.status === 'waiting for motion';
    }, 10_000, 'the recording to stop').catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(list)}`); });
    const segments = segmentsOf(list);
    assert.equal(segments.length, 1, JSON.stringify(list));
    assert.match(segments[0].name, /^\d{4}-\d{2}-\d{2}\/\d{2}-\d{2}-\d{2}\.mp4$/);

    const file = await download(daemon.port, cookie, segments[0].name);
    const info = await probe(file);
    const video = info.streams.find((s) => s.codec_type === 'video');
    assert.equal(video.codec_name, 'h264');
    assert.equal(video.width, 320);
    assert.ok(info.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'opus'));
    // The pre-roll (2 s still), the change, 2 s quiet.
    assert.ok(Number(info.format.duration) > 3, `duration ${info.format.duration}`);
    // It starts before the change: its first picture is the black one.
    assert.ok(await firstPictureBrightness(file) < 40, 'the first picture is from before the motion');

    // Its thumbnail: the camera's picture at the start, 320 wide.
    assert.equal(segments[0].thumbnail, segments[0].name.replace('.mp4', '.jpg'));
    const thumbnail = await request(daemon.port, 'GET', `/recordings/${segments[0].thumbnail}`,
      { headers: { cookie } });
    assert.equal(thumbnail.status, 200);
    assert.equal(thumbnail.headers['content-type'], 'image/jpeg');
    assert.deepEqual(jpegSize(thumbnail.body), { width: 320, height: 180 });
    // Ranges, for players that seek and downloads that resume.
    const part = await request(daemon.port, 'GET', `/recordings/${segments[0].name}`,
      { headers: { cookie, range: 'bytes=0-99' } });
    assert.equal(part.status, 206);
    assert.equal(part.body.length, 100);
    assert.equal(part.headers['content-range'], `bytes 0-99/${segments[0].bytes}`);
    const past = await request(daemon.port, 'GET', `/recordings/${segments[0].name}`,
      { headers: { cookie, range: `bytes=${segments[0].bytes}-` } });
    assert.equal(past.status, 416);
  });

test('the recordings page lists the day\'s segments and plays one in Chromium', async (t) => {
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await openPage(browser, `${daemon.url}recordings.html`);
  await page.getByRole('heading', { name: 'Recordings' }).waitFor();
  const list = await listing(daemon.port, cookie);
  const [segment] = segmentsOf(list);
  assert.ok(segment, 'the motion test recorded a segment');
  await page.getByRole('heading', { name: segment.name.split('/')[0] }).waitFor();
  assert.match(await page.locator('#recorder').textContent(), /The recorder: waiting for motion/);
  const time = segment.name.split('/')[1].replace('.mp4', '').replaceAll('-', ':');
  await page.getByRole('button', { name: new RegExp(`^${time} UTC`) }).click();
  // The segment plays: its pictures have the camera's size and time goes on.
  await eventually(() => page.evaluate(() => {
    const video = document.getElementById('player');
    return video.videoWidth === 320 && video.currentTime > 0.5;
  }), 15_000, 'the segment to play');
  assert.equal(await page.getByRole('img', { name: new RegExp(`The camera at ${time} UTC`) })
    .getAttribute('src'), `/recordings/${segment.thumbnail}`);
  const link = page.getByRole('link', { name: 'Download' }).first();
  assert.equal(await link.getAttribute('href'), `/recordings/${segment.name}`);
});

test('recordings are the owner\'s: no session, no list; only segment names are served',
  async () => {
    const anonymous = await request(daemon.port, 'GET', '/recordings');
    assert.ok([302, 303, 401].includes(anonymous.status), `status ${anonymous.status}`);
    for (const path of ['/recordings/..%2F..%2Fetc/passwd', '/recordings/2026-01-01/x.mp4',
      '/recordings/2026-01-01/..%2Fpeercam.toml']) {
      const response = await request(daemon.port, 'GET', path, { headers: { cookie } });
      assert.equal(response.status, 404, path);
    }
  });

/** A daemon recording continuously on a tmpfs of `megabytes`, seen only by it. */
async function onSmallDisk(megabytes, extra) {
  const disk = mkdtempSync(join(dir, 'disk-'));
  const started = await startDaemon('[media]\nwidth = 640\nheight = 360\nkeyframe_interval = 15\n'
    + 'video_source = "videotestsrc is-live=true pattern=snow"\n'
    + 'video_bitrate_kbps = 4000\nmin_video_bitrate_kbps = 4000\n'
    + `[recording]\nenabled = true\nmode = "continuous"\npath = "${disk}"\nsegment_seconds = 2\n`
    + extra, {
    prefix: ['unshare', '-m', 'sh', '-c',
      `mount -t tmpfs -o size=${megabytes}m tmpfs "${disk}" && exec "$0" "$@"`],
  });
  return { daemon: started, cookie: await logIn(started.port, PASSWORD) };
}

test('on a small disk the oldest segments go to keep the floor', async (t) => {
  const small = await onSmallDisk(12, 'min_free_mb = 4\n');
  t.after(() => small.daemon.stop());
  const first = await eventually(async () => segmentsOf(await listing(small.daemon.port, small.cookie))[0],
    20_000, 'a first segment');
  // The disk fills past its floor: the first segment is deleted, newer ones kept.
  await eventually(async () => {
    const names = segmentsOf(await listing(small.daemon.port, small.cookie)).map((s) => s.name);
    return names.length >= 2 && !names.includes(first.name);
  }, 60_000, 'retention to delete the oldest segment');
  assert.match(small.daemon.output, /recording: \S+ deleted \(retention\)/);
  const list = await listing(small.daemon.port, small.cookie);
  assert.equal(list.status, 'recording continuously');
  assert.ok(list.free_bytes >= 3 << 20, `free ${list.free_bytes}`);
});

test('a daemon killed while recording leaves every finished segment playable', async () => {
  const path = join(dir, 'continuous');
  const killed = await startDaemon('[media]\nwidth = 320\nheight = 180\n'
    + `[recording]\nenabled = true\nmode = "continuous"\npath = "${path}"\nsegment_seconds = 2\n`
    + 'min_free_mb = 1\n');
  const kCookie = await logIn(killed.port, PASSWORD);
  const list = await eventually(async () => {
    const seen = await listing(killed.port, kCookie);
    return segmentsOf(seen).length >= 3 ? seen : null;
  }, 30_000, 'three segments');
  process.kill(killed.pid, 'SIGKILL');
  await killed.exited;
  const finished = segmentsOf(list).filter((s) => s.name !== list.writing);
  assert.ok(finished.length >= 2);
  for (const segment of finished) {
    const file = join(path, segment.name);
    const info = await probe(file);
    assert.ok(Number(info.format.duration) >= 1.5, `${file}: ${info.format.duration} s`);
    const decoded = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
    assert.equal(decoded.code, 0, decoded.stderr);
  }
  // The segment cut by the kill: fragmented MP4 (a fragment a second, written unbuffered)
  // keeps what was written before it, once its first fragment is out.
  const cut = await run('ffprobe', ['-v', 'error', '-show_format', '-of', 'json',
    join(path, list.writing)]);
  console.log(`the cut segment: ffprobe exit ${cut.code} ${cut.stdout} ${cut.stderr.trim()}`);
  await killed.stop();
});

test('a floor the disk cannot give is reported, and the daemon carries on', async (t) => {
  const full = await onSmallDisk(4, 'min_free_mb = 100\n');
  t.after(() => full.daemon.stop());
  const list = await eventually(async () => {
    const seen = await listing(full.daemon.port, full.cookie);
    return /under the floor of 100 MB/.test(seen.status) ? seen : null;
  }, 20_000, 'the status to say the disk is too full');
  assert.match(list.status, /^not recording: the disk has \d+ MB free, under the floor of 100 MB/);
  assert.deepEqual(segmentsOf(list), []);
  // The device still answers.
  const metrics = await request(full.daemon.port, 'GET', '/metrics', { headers: { cookie: full.cookie } });
  assert.equal(metrics.status, 200);
});
