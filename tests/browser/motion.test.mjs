// Motion events ([motion] enabled): the camera is a JPEG file the test swaps (GStreamer's
// multifilesrc reads it again for every frame), so the picture is still until the test
// changes it. A viewer token listens on /events (server-sent events); the start of motion
// comes after the change and only then, its end after `quiet_seconds` of stillness, and the
// journal and /metrics say the same. Debian's mosquitto, started by the test on loopback, is
// the home's MQTT broker: mosquitto_sub sees Home Assistant's discovery message for a motion
// binary_sensor, `online`, and OFF, ON, OFF as the picture changes; a broker that restarts is
// told everything again. Without a token /events is refused; with [motion] off it is 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createToken, eventually, freePort, request, startDaemon } from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'peercam-motion-'));
const frame = join(dir, 'frame.jpg');

/** Writes a 320x180 JPEG of videotestsrc's `pattern` to `path`. */
function picture(pattern, path) {
  execFileSync('gst-launch-1.0', ['-q', 'videotestsrc', `pattern=${pattern}`, 'num-buffers=1', '!',
    'video/x-raw,width=320,height=180', '!', 'jpegenc', '!', 'filesink', `location=${path}`]);
}

/** Shows `pattern` to the camera from now on (the file is replaced whole). */
function show(pattern) {
  const next = join(dir, `next-${pattern}.jpg`);
  picture(pattern, next);
  renameSync(next, frame);
}

/** Listens on /events with `token`: the events so far ({ event, ... }), and close(). */
function listen(port, token) {
  const events = [];
  let status = null;
  const req = https.get({
    host: '127.0.0.1', port, path: `/events?token=${token}`, rejectUnauthorized: false,
  }, (res) => {
    status = res.statusCode;
    let buffered = '';
    res.on('data', (chunk) => {
      buffered += chunk;
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        for (const line of block.split('\n')) {
          if (line.startsWith('data:')) events.push({ ...JSON.parse(line.slice(5)), at: Date.now() });
        }
      }
    });
  });
  req.on('error', () => {});
  return { events, status: () => status, close: () => req.destroy() };
}

/** Runs `command` until stopped; resolves once `ready` appears in its output. */
async function background(command, args, ready) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => { output += c; });
  child.stderr.on('data', (c) => { output += c; });
  await eventually(() => ready.test(output), 10_000, `${command} to start`);
  return {
    get output() { return output; },
    stop: () => new Promise((r) => {
      if (child.exitCode !== null) { r(); return; }
      child.once('exit', r);
      child.kill('SIGTERM');
    }),
  };
}

/** Debian's mosquitto on loopback at `port`. */
const startBroker = (port) => background('mosquitto', ['-p', String(port), '-v'],
  /mosquitto version [\d.]+ running/);

/** mosquitto_sub on every topic; `messages(topic)` lists the payloads seen on a topic. */
async function subscribe(port) {
  const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-v', '-t', '#']);
  let output = '';
  sub.stdout.on('data', (c) => { output += c; });
  sub.stderr.on('data', (c) => { output += c; });
  return {
    messages: (topic) => output.split('\n').filter((line) => line.startsWith(`${topic} `))
      .map((line) => line.slice(topic.length + 1)),
    /** The last Home Assistant discovery message for a binary_sensor (the device is named
     * after the machine's host name). */
    discovery: () => {
      const line = output.split('\n').filter((l) => /^homeassistant\/binary_sensor\/\S+\/motion\/config /.test(l)).at(-1);
      return line ? JSON.parse(line.slice(line.indexOf(' ') + 1)) : null;
    },
    stop: () => sub.kill('SIGTERM'),
  };
}

let daemon;
let broker;
let brokerPort;
before(async () => {
  show('black');
  brokerPort = await freePort();
  broker = await startBroker(brokerPort);
  daemon = await startDaemon('[media]\nwidth = 320\nheight = 180\n'
    + `video_source = "multifilesrc location=${frame} caps=image/jpeg,framerate=10/1 ! jpegdec"\n`
    + '[motion]\nenabled = true\nchecks_per_second = 10\nquiet_seconds = 2\n'
    + `[mqtt]\nbroker = "127.0.0.1:${brokerPort}"\n`);
});
after(async () => {
  if (process.env.PEERCAM_SHOW_LOG) console.log(daemon?.output);
  await daemon?.stop();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});


test('motion starts when the picture changes, ends when it is still, and never while still',
  async (t) => {
    const token = createToken(daemon.stateDir, 'home-assistant');
    const listener = listen(daemon.port, token);
    const mqtt = await subscribe(brokerPort);
    t.after(() => { listener.close(); mqtt.stop(); });
    // Home Assistant's discovery message, retained, names the state topic.
    const config = await eventually(() => mqtt.discovery(), 10_000, 'the discovery message');
    assert.equal(config.device_class, 'motion');
    assert.equal(config.payload_on, 'ON');
    await eventually(() => mqtt.messages(config.availability_topic).at(-1) === 'online', 10_000,
      'online');
    await eventually(() => mqtt.messages(config.state_topic).at(-1) === 'OFF', 10_000,
      'OFF while still');
    await eventually(() => listener.events.length >= 1, 10_000, 'the state event');
    assert.equal(listener.status(), 200);
    assert.deepEqual({ ...listener.events[0], at: 0 }, { event: 'state', motion: false, at: 0 });
    // The camera runs for the detector without anyone watching.
    await eventually(async () => (await daemon.metrics()).peercam_video_encoders === 1, 10_000,
      'the camera to run for the detector');
    // Still: nothing for 3 s.
    await new Promise((r) => { setTimeout(r, 3_000); });
    assert.equal(listener.events.length, 1, JSON.stringify(listener.events));

    const changedAt = Date.now();
    show('smpte');
    const started = await eventually(
      () => listener.events.find((e) => e.event === 'motion_started'), 10_000, 'motion_started');
    // How long the event took is a figure for docs/benchmarks.md, not an assertion.
    console.log(`motion_started ${started.at - changedAt} ms after the picture changed`);
    assert.ok(started.at >= changedAt);
    assert.ok(started.area_percent > 50, `area ${started.area_percent}`);
    const ended = await eventually(
      () => listener.events.find((e) => e.event === 'motion_ended'), 10_000, 'motion_ended');
    assert.ok(ended.seconds >= 0);
    // Still again (a new still picture): nothing more.
    await new Promise((r) => { setTimeout(r, 3_000); });
    assert.deepEqual(listener.events.map((e) => e.event), ['state', 'motion_started', 'motion_ended']);
    assert.deepEqual(mqtt.messages(config.state_topic), ['OFF', 'ON', 'OFF']);

    const metrics = await daemon.metrics();
    assert.equal(metrics.peercam_motion_events_total, 1);
    assert.equal(metrics.peercam_motion, 0);
    assert.match(daemon.output, /motion: started \([\d.]+% of the picture moved\)/);
    assert.match(daemon.output, /motion: ended after [\d.]+ s/);
  });

test('/events wants the owner or a token', async () => {
  const anonymous = await request(daemon.port, 'GET', '/events');
  assert.ok([302, 303, 401].includes(anonymous.status), `status ${anonymous.status}`);
  const wrong = await request(daemon.port, 'GET', '/events?token=pcv_nothing');
  assert.ok([302, 303, 401].includes(wrong.status), `status ${wrong.status}`);
});

test('with [motion] off, /events is 404 and the camera stays off', async (t) => {
  const off = await startDaemon('[media]\nwidth = 320\nheight = 180\n');
  t.after(() => off.stop());
  const token = createToken(off.stateDir, 'home-assistant');
  const response = await request(off.port, 'GET', `/events?token=${token}`);
  assert.equal(response.status, 404);
  assert.match(response.body.toString(), /\[motion\] enabled = false/);
  assert.equal((await off.metrics()).peercam_video_encoders, 0);
});

test('a broker that restarts is told the sensor, availability and state again', async (t) => {
  await broker.stop();
  await eventually(() => /MQTT: the broker 127.0.0.1:\d+ cannot be reached/.test(daemon.output),
    10_000, 'the device to notice the broker is away');
  broker = await startBroker(brokerPort);
  const mqtt = await subscribe(brokerPort);
  t.after(() => mqtt.stop());
  // The new broker kept nothing: what it has, the device published after reconnecting.
  const config = await eventually(() => mqtt.discovery(), 20_000, 'the discovery message again');
  await eventually(() => mqtt.messages(config.availability_topic).at(-1) === 'online', 10_000,
    'online again');
  await eventually(() => mqtt.messages(config.state_topic).at(-1) === 'OFF', 10_000, 'the state again');
  const away = daemon.output.match(/MQTT: the broker 127.0.0.1:\d+ cannot be reached/g);
  assert.equal(away.length, 1, 'one line per outage, not one per attempt');
});
