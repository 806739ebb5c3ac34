// Shared harness for the browser tests: starts the real peercam daemon on free ports with a
// fresh state directory, launches Debian's headless Chromium with fake camera and microphone,
// and reads call statistics from the page. Everything talks to loopback only; the test command
// runs these tests inside a network namespace of their own (see scripts/test).
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import https from 'node:https';
import net from 'node:net';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

// Not import.meta.dirname: Debian 12's Node 18 lacks it.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BINARY = process.env.PEERCAM_BIN ?? join(ROOT, 'target/debug/peercam');

/** The design brief's Chromium flags: fake devices, loopback allowed, mDNS hiding left on. */
export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--allow-loopback-in-peer-connection',
  '--ignore-certificate-errors',
];

/**
 * Grants camera and microphone without asking. Chromium then treats every page as one the user
 * gave the camera to and shows it real host addresses instead of mDNS names, as it would on a
 * phone after "Allow". So only tests that use the camera or microphone (Talk, rooms) add it;
 * calling the device receive-only runs with host addresses hidden, like a phone that was
 * never asked.
 */
export const MEDIA_PERMISSION_ARGS = ['--use-fake-ui-for-media-stream'];

/** What every test daemon gets: free ports, and 127.0.0.1 for the device's ICE agent. */
const BASE_CONFIG = {
  '[http]': ['https_port = 0', 'http_port = 0'],
  '[ice]': ['local_addresses = ["127.0.0.1"]'],
  '[stun]': ['port = 0'],
};

/**
 * Merges a test's TOML into the base config: lines under a `[table]` the base also has join
 * that table (a TOML table may be declared only once), a key the test sets replacing the
 * base's; other tables follow as they are.
 */
export function mergeConfig(toml) {
  const tables = Object.fromEntries(Object.entries(BASE_CONFIG).map(([k, v]) => [k, [...v]]));
  const rest = [];
  let current = null;
  for (const line of toml.split('\n')) {
    const header = line.trim();
    if (/^\[[^\[].*\]$/.test(header)) {
      current = header;
      if (!tables[current]) tables[current] = [];
    } else if (/^\[\[.*\]\]$/.test(header)) {
      current = null;
      rest.push(line);
    } else if (current) {
      const key = line.match(/^\s*([A-Za-z0-9_-]+)\s*=/)?.[1];
      if (key) tables[current] = tables[current].filter((l) => l.match(/^\s*([A-Za-z0-9_-]+)\s*=/)?.[1] !== key);
      tables[current].push(line);
    } else {
      rest.push(line);
    }
  }
  const topLevel = [];
  while (rest.length && !/^\s*\[\[/.test(rest[0])) topLevel.push(rest.shift());
  const body = Object.entries(tables).map(([header, lines]) => `${header}\n${lines.join('\n')}`);
  return [topLevel.join('\n'), ...body, rest.join('\n')].join('\n\n');
}

/**
 * Starts the daemon with the base config and `toml` merged in. Resolves once the daemon prints
 * its URLs; `stunPort` is the responder's port when it runs. `prefix` runs it inside another
 * namespace (`nsenter ...`, see nat_lab.mjs): the test then cannot reach it on loopback, so it
 * logs in through a browser instead.
 */
export async function startDaemon(toml = '', { env = {}, password = true, prefix = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'peercam-test-'));
  const config = join(dir, 'peercam.toml');
  writeFileSync(config, mergeConfig(toml));
  const auth = !/^auth\s*=\s*"none"/m.test(toml);
  if (auth && password) setPassword(join(dir, 'state'), PASSWORD);
  const command = [...prefix, BINARY, '--config', config, '--state-dir', join(dir, 'state')];
  const child = spawn(command[0], command.slice(1), {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolveExit) => {
    child.on('exit', (code, signal) => resolveExit({ code, signal, at: Date.now() }));
  });
  let output = '';
  const collect = (chunk) => { output += chunk; };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const port = await new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start:\n${output}`)), 30_000);
    const check = () => {
      const match = output.match(/https:\/\/localhost:(\d+)\//);
      if (match) {
        clearTimeout(timer);
        resolvePort(Number(match[1]));
      }
    };
    child.stdout.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code}:\n${output}`));
    });
  });
  const stun = output.match(/STUN responder on UDP port (\d+)/);
  const session = auth && password && prefix.length === 0 ? await logIn(port, PASSWORD) : '';
  return {
    port,
    stunPort: stun ? Number(stun[1]) : null,
    pid: child.pid,
    configPath: config,
    /** Resolves with { code, signal, at } when the daemon exits. */
    exited,
    /** GET `path` over HTTPS with a logged-in session; resolves with the body. */
    get: (path) => fetchText(port, path, session),
    password: PASSWORD,
    stateDir: join(dir, 'state'),
    url: `https://127.0.0.1:${port}/`,
    get output() { return output; },
    /** The daemon's counters from /metrics, as a name → number map. */
    metrics: () => fetchMetrics(port, session),
    /** How many file descriptors the daemon holds. */
    openFds: () => readdirSync(`/proc/${child.pid}/fd`).length,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => { child.once('exit', r); setTimeout(r, 5000); });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The password every test daemon gets (set with `peercam set-password` before it starts). */
export const PASSWORD = 'peercam-test-password';

/** Sets the owner's password in `stateDir` the way an owner would. */
export function setPassword(stateDir, password) {
  execFileSync(BINARY, ['set-password', '--state-dir', stateDir], { input: `${password}\n`, stdio: ['pipe', 'ignore', 'inherit'] });
}

/** Logs in over HTTPS; resolves with the session cookie (`name=value`). */
export function logIn(port, password) {
  return new Promise((resolveCookie, reject) => {
    const body = `password=${encodeURIComponent(password)}`;
    const request = https.request({
      host: '127.0.0.1', port, path: '/login', method: 'POST', rejectUnauthorized: false,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      const cookie = (res.headers['set-cookie'] ?? [])[0]?.split(';')[0];
      if (res.statusCode === 303 && cookie) resolveCookie(cookie);
      else reject(new Error(`login failed with HTTP ${res.statusCode}`));
    });
    request.on('error', reject);
    request.end(body);
  });
}

export function fetchText(port, path, cookie = '') {
  return new Promise((resolveText, reject) => {
    const headers = cookie ? { cookie } : {};
    https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false, headers }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolveText(body));
    }).on('error', reject);
  });
}

async function fetchMetrics(port, cookie) {
  const values = {};
  for (const line of (await fetchText(port, '/metrics', cookie)).split('\n')) {
    const [name, value] = line.split(' ');
    if (name && !name.startsWith('#')) values[name] = Number(value);
  }
  return values;
}

/** A TCP port free on loopback now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    }).on('error', reject);
  });
}

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually(probe, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Registers before/after hooks that start a daemon (with extra `toml` config) and a browser for
 * the tests of one file; returns an object whose `daemon` and `browser` are set once started.
 */
export function useDaemonAndBrowser(toml = '', { media = false, microphone = null } = {}) {
  const env = { daemon: null, browser: null };
  before(async () => {
    env.daemon = await startDaemon(toml);
    env.browser = await launchBrowser({ media, microphone });
  });
  after(async () => {
    if (process.env.PEERCAM_SHOW_LOG) console.log(env.daemon?.output);
    await env.browser?.close();
    await env.daemon?.stop();
  });
  return env;
}

/**
 * Writes a 10 s, 48 kHz stereo WAV of voice-like syllables (a gliding 120-240 Hz fundamental
 * with harmonics, 250 ms on, 200 ms off) for Chromium's fake microphone. A steady tone will
 * not do: the page asks for noise suppression and gain control, as a phone call needs, and
 * they take a steady tone for background noise and silence it within a second.
 */
export function writeVoiceWav(path) {
  const rate = 48_000;
  const syllable = Math.round(rate * 0.25);
  const pause = Math.round(rate * 0.2);
  const samples = [];
  for (let s = 0; s < 22; s += 1) {
    const f0 = 120 + ((s * 37) % 120); // a pitch that wanders, as speech does
    for (let i = 0; i < syllable; i += 1) {
      const phase = (2 * Math.PI * f0 * (1 + (0.2 * i) / syllable) * i) / rate;
      let v = 0;
      for (let k = 1; k < 8; k += 1) v += Math.sin(k * phase) / k;
      samples.push(Math.round(v * Math.sin((Math.PI * i) / syllable) * 9_000));
    }
    for (let i = 0; i < pause; i += 1) samples.push(0);
  }
  const data = Buffer.alloc(samples.length * 4);
  samples.forEach((v, i) => {
    data.writeInt16LE(v, i * 4);
    data.writeInt16LE(v, i * 4 + 2);
  });
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(2, 22); // channels
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 4, 28); // bytes per second
  header.writeUInt16LE(4, 32); // bytes per frame
  header.writeUInt16LE(16, 34); // bits per sample
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([header, data]));
  return path;
}

/** The loudest sample of raw S16LE audio (`path`, from `skip` bytes on), of 32767. */
export function loudestSample(path, skip = 0) {
  const data = readFileSync(path).subarray(skip);
  let loudest = 0;
  for (let i = 0; i + 1 < data.length; i += 2) loudest = Math.max(loudest, Math.abs(data.readInt16LE(i)));
  return loudest;
}

/**
 * Waits until the caller's microphone is heard at the device: more than a quarter second of
 * 48 kHz stereo S16 counted as talkback (`talkbackBytes()`), and a sample above 2000 in the
 * sink's file `played` (silence or a suppressed voice stays under a few hundred). Resolves with
 * { bytes, loudest }; throws, naming `who`, when either does not come.
 */
export async function heardAtTheSink(talkbackBytes, played, who, timeoutMs = 10_000) {
  const bytes = await eventually(async () => {
    const n = await talkbackBytes();
    return n > 48_000 ? n : null;
  }, timeoutMs, 'talkback audio at the device sink');
  const loudest = await eventually(async () => {
    const sample = loudestSample(played);
    return sample > 2_000 ? sample : null;
  }, 10_000, `${who}, not silence, at the device sink`);
  return { bytes, loudest };
}

/** Waits until the device has no call (it must be free within 2 s of a caller leaving). */
export async function waitUntilIdle(daemon) {
  await eventually(async () => (await daemon.metrics()).peercam_in_call === 0, 2_000,
    'the device to be free within 2 s');
}

/**
 * Debian's Chromium; `media: true` grants camera and microphone (see MEDIA_PERMISSION_ARGS);
 * `microphone` is a WAV file its fake microphone plays (see writeVoiceWav; without one it sends
 * a click a second); `extraArgs` are added to its command line.
 */
export async function launchBrowser({
  media = false, microphone = null, extraArgs = [], executable = '/usr/bin/chromium',
} = {}) {
  const heard = microphone ? [`--use-file-for-fake-audio-capture=${microphone}`] : [];
  const args = [...CHROMIUM_ARGS, ...(media ? MEDIA_PERMISSION_ARGS : []), ...heard, ...extraArgs];
  return chromium.launch({ executablePath: executable, headless: false, args });
}

/**
 * A phone with two networks, as one with Wi-Fi and LTE: a network namespace of its own joined
 * to the test's by two veth links, `wifi` (10.77.1.0/24) and `lte` (10.77.2.0/24). The device
 * is at PHONE_DEVICE_ADDRESS on the test namespace's loopback, reachable over either link;
 * the phone's connections go over the `preferred` link. `executable` starts Chromium inside the phone (pass it to launchBrowser);
 * `takeAway(link)` removes that link's address and takes it down, as when the phone leaves
 * the Wi-Fi; `close()` removes it all.
 */
export async function twoNetworkPhone({ preferred = 'wifi' } = {}) {
  const holder = spawn('unshare', ['-n', 'sleep', 'infinity'], { stdio: 'ignore' });
  try {
    return await buildPhone(holder, preferred);
  } catch (e) {
    // The holder would keep this test's process alive: nothing of a phone half made stays.
    holder.kill('SIGKILL');
    throw e;
  }
}

async function buildPhone(holder, preferred) {
  const run = (cmd, ...args) => execFileSync(cmd, args, { stdio: 'pipe' });
  const ns = `/proc/${holder.pid}/ns/net`;
  const own = readlinkSync('/proc/self/ns/net');
  await eventually(async () => existsSync(ns) && readlinkSync(ns) !== own, 5_000, 'the phone namespace');
  const inPhone = (...command) => run('nsenter', `--net=${ns}`, '--', ...command);
  const noIpv6 = (dev) => `echo 1 > /proc/sys/net/ipv6/conf/${dev}/disable_ipv6`;
  inPhone('ip', 'link', 'set', 'lo', 'up');
  run('ip', 'addr', 'add', `${PHONE_DEVICE_ADDRESS}/32`, 'dev', 'lo');
  const links = { wifi: 1, lte: 2 };
  /** Brings the phone's end of `link` up with its address and its route to the device. */
  const connect = (link) => {
    const subnet = links[link];
    inPhone('ip', 'link', 'set', `${link}1`, 'up');
    inPhone('ip', 'addr', 'add', `10.77.${subnet}.2/24`, 'dev', `${link}1`);
    inPhone('ip', 'route', 'add', `${PHONE_DEVICE_ADDRESS}/32`, 'via', `10.77.${subnet}.1`,
      'dev', `${link}1`, 'metric', String(link === preferred ? 10 : 20));
  };
  for (const [link, subnet] of Object.entries(links)) {
    run('ip', 'link', 'add', `${link}0`, 'type', 'veth', 'peer', 'name', `${link}1`);
    run('ip', 'link', 'set', `${link}1`, 'netns', String(holder.pid));
    run('sh', '-c', noIpv6(`${link}0`));
    inPhone('sh', '-c', noIpv6(`${link}1`));
    run('ip', 'addr', 'add', `10.77.${subnet}.1/24`, 'dev', `${link}0`);
    run('ip', 'link', 'set', `${link}0`, 'up');
    connect(link);
  }
  await eventually(async () => {
    const up = (text) => !text.includes('tentative') && !/state DOWN|NO-CARRIER/.test(text);
    return up(inPhone('ip', 'addr').toString()) && up(run('ip', 'addr').toString());
  }, 5_000, 'both links up');
  const dir = mkdtempSync(join(tmpdir(), 'peercam-phone-'));
  const executable = join(dir, 'chromium');
  writeFileSync(executable, `#!/bin/sh\nexec nsenter --net=${ns} -- /usr/bin/chromium "$@"\n`, { mode: 0o755 });
  return {
    executable,
    /** The phone's address on `link`. */
    addressOn: (link) => `10.77.${links[link]}.2`,
    /** 'wifi' or 'lte': the link that carried the most bytes to the phone over a second. */
    async busiestLink() {
      // /proc/net/dev is this namespace's (/sys/class/net is the one sysfs was mounted in).
      const sent = () => {
        const lines = readFileSync('/proc/net/dev', 'utf8').split('\n');
        return Object.keys(links).map((link) => {
          const fields = lines.find((l) => l.trim().startsWith(`${link}0:`))?.split(':')[1].trim().split(/\s+/);
          return Number(fields?.[8] ?? 0);
        });
      };
      const start = sent();
      await new Promise((resolve) => { setTimeout(resolve, 1_000); });
      const deltas = sent().map((bytes, i) => bytes - start[i]);
      return Object.keys(links)[deltas.indexOf(Math.max(...deltas))];
    },
    takeAway(link) {
      inPhone('ip', 'addr', 'flush', 'dev', `${link}1`);
      inPhone('ip', 'link', 'set', `${link}1`, 'down');
    },
    /** Brings a link taken away back, as when the phone rejoins that network. */
    bringBack: connect,
    close() {
      holder.kill('SIGKILL');
      for (const link of Object.keys(links)) {
        try { run('ip', 'link', 'del', `${link}0`); } catch { /* gone with the namespace */ }
      }
      run('ip', 'addr', 'del', `${PHONE_DEVICE_ADDRESS}/32`, 'dev', 'lo');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Where twoNetworkPhone's phone reaches the device. */
export const PHONE_DEVICE_ADDRESS = '10.77.0.1';

/** Logs `page` in through the login form, as the owner would. */
export async function logInPage(page, origin) {
  await page.goto(`${origin}/login`);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${origin}/`);
}

/**
 * A fresh page (its own context: like a separate phone), logged in unless `loggedIn: false`
 * or the daemon runs with `auth = "none"`, at the daemon's URL.
 */
export async function openPage(browser, url, { loggedIn = true, ...contextOptions } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, ...contextOptions });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  if (loggedIn) await retryNetworkChange(() => logInPage(page, new URL(url).origin));
  await retryNetworkChange(() => page.goto(url));
  return page;
}

/**
 * A just-started Chromium may still be reading the namespace's interfaces and abort the first
 * load with ERR_NETWORK_CHANGED; that says nothing about the daemon, so try again.
 */
async function retryNetworkChange(load) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await load();
    } catch (e) {
      if (attempt >= 3 || !String(e.message).includes('ERR_NETWORK_CHANGED')) throw e;
    }
  }
}

/** The inbound-rtp statistics of one kind ('video' or 'audio') and its codec, or null. */
export async function inbound(page, kind) {
  return page.evaluate(async (kind) => {
    const pc = window.peercam.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === kind) {
        const codec = stats.get(s.codecId);
        return {
          framesDecoded: s.framesDecoded ?? 0,
          freezeCount: s.freezeCount ?? 0,
          totalFreezesDuration: s.totalFreezesDuration ?? 0,
          packetsReceived: s.packetsReceived ?? 0,
          packetsLost: s.packetsLost ?? 0,
          bytesReceived: s.bytesReceived ?? 0,
          codec: codec?.mimeType ?? null,
          fmtp: codec?.sdpFmtpLine ?? null,
          frameHeight: s.frameHeight ?? null,
        };
      }
    }
    return null;
  }, kind);
}

/**
 * Makes the test namespace's loopback (which carries the calls) a poor network: `rateKbit`
 * limits it with a token bucket (loopback's MTU set to 1500 first, or tbf drops its 64 KiB
 * packets), `lossPercent` drops that share of UDP datagrams at random (nftables; this
 * machine's kernel has no netem; 100 is a blackout). Returns a function that restores the
 * clean network.
 */
export function degradeLoopback({ rateKbit = null, lossPercent = null }) {
  const run = (cmd, ...args) => execFileSync(cmd, args, { stdio: 'pipe' });
  if (rateKbit) {
    run('ip', 'link', 'set', 'lo', 'mtu', '1500');
    run('tc', 'qdisc', 'replace', 'dev', 'lo', 'root', 'tbf', 'rate', `${rateKbit}kbit`,
      'burst', '16kb', 'latency', '200ms');
  }
  if (lossPercent) {
    run('nft', 'add', 'table', 'inet', 'peercam_loss');
    run('nft', 'add', 'chain', 'inet', 'peercam_loss', 'in',
      '{ type filter hook input priority 0 ; }');
    const which = lossPercent >= 100 ? [] : ['numgen', 'random', 'mod', '100', '<', String(lossPercent)];
    run('nft', 'add', 'rule', 'inet', 'peercam_loss', 'in', 'meta', 'l4proto', 'udp', ...which,
      'drop');
  }
  return () => {
    if (rateKbit) {
      run('tc', 'qdisc', 'del', 'dev', 'lo', 'root');
      run('ip', 'link', 'set', 'lo', 'mtu', '65536');
    }
    if (lossPercent) run('nft', 'delete', 'table', 'inet', 'peercam_loss');
  };
}

/** Waits until the page has decoded more than `frames` video frames; returns the stats. */
export async function waitForFrames(page, frames, timeoutMs = 20_000) {
  return eventually(async () => {
    const video = await inbound(page, 'video');
    return video && video.framesDecoded > frames ? video : null;
  }, timeoutMs, `more than ${frames} decoded frames`);
}

export async function status(page) {
  return page.locator('#status').evaluate((el) => ({ state: el.dataset.state, text: el.textContent }));
}

export async function waitForStatus(page, state, timeoutMs = 10_000) {
  return eventually(async () => {
    const s = await status(page);
    return s.state === state ? s : null;
  }, timeoutMs, `status "${state}"`);
}

export const callButton = (page) => page.getByRole('button', { name: 'Call device' });
export const hangUpButton = (page) => page.getByRole('button', { name: 'Hang up' });
export const talkButton = (page) => page.getByRole('button', { name: 'Talk' });
// Exact: "Watch" is also part of "Stop watching".
export const watchButton = (page) => page.getByRole('button', { name: 'Watch', exact: true });

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Opens a raw WebSocket from `page` to the daemon, sends each frame in turn and collects one
 * reply to each (null after 5 s). Returns the replies and whether the socket is still open.
 */
export async function exchange(page, frames) {
  return page.evaluate(async (frames) => {
    const ws = new WebSocket(`wss://${location.host}/ws`);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    const replies = [];
    for (const frame of frames) {
      const reply = new Promise((resolve) => { ws.onmessage = (e) => resolve(JSON.parse(e.data)); });
      ws.send(frame);
      replies.push(await Promise.race([reply, new Promise((r) => setTimeout(() => r(null), 5000))]));
    }
    const open = ws.readyState === WebSocket.OPEN;
    ws.close();
    return { replies, open };
  }, frames);
}

/**
 * Opens one raw WebSocket per room name, each joining its room, and keeps them all open (in
 * the page) so that they count against the per-address caps. Returns the first reply of each.
 */
export async function joinMany(page, rooms) {
  return page.evaluate(async (rooms) => {
    window.heldSockets = window.heldSockets ?? [];
    const replies = [];
    for (const room of rooms) {
      const ws = new WebSocket(`wss://${location.host}/ws`);
      window.heldSockets.push(ws);
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
      const reply = new Promise((resolve) => { ws.onmessage = (e) => resolve(JSON.parse(e.data)); });
      ws.send(JSON.stringify({ type: 'join', room }));
      replies.push(await reply);
    }
    return replies;
  }, rooms);
}

/**
 * Starts Debian's coturn on loopback (inside the test's network namespace), as the tutorials
 * configure it: long-term credentials with either a static user (`user`, "name:password") or
 * coturn's shared secret (`secret`, use-auth-secret). Resolves once it answers on its port.
 */
export async function startCoturn({ port = 3479, secret, user, relayPorts = [50000, 50999] }) {
  const auth = secret
    ? ['--use-auth-secret', `--static-auth-secret=${secret}`]
    : ['--lt-cred-mech', `--user=${user}`];
  const child = spawn('turnserver', [
    '-n', '--listening-ip=127.0.0.1', `--listening-port=${port}`, '--relay-ip=127.0.0.1',
    `--min-port=${relayPorts[0]}`, `--max-port=${relayPorts[1]}`, '--realm=peercam.test', '--fingerprint',
    '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers', '--log-file=stdout',
    '--simple-log', ...auth,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => { output += c; });
  child.stderr.on('data', (c) => { output += c; });
  await eventually(() => /Relay ports initialization done/.test(output) || child.exitCode !== null,
    10_000, 'coturn to start');
  if (child.exitCode !== null) throw new Error(`coturn exited:\n${output}`);
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    url: `turn:127.0.0.1:${port}?transport=udp`,
    get output() { return output; },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => { child.once('exit', r); setTimeout(r, 3000); });
    },
  };
}

/** Opens `/check` on `page` (at `origin`) and resolves with its verdict once done: { state, text }. */
export async function networkCheck(page, origin) {
  await page.goto(`${origin.replace(/\/$/, '')}/check`);
  return eventually(async () => {
    const state = await page.locator('#verdict').getAttribute('data-state');
    return state === 'running' ? null : { state, text: await page.locator('#verdict').textContent() };
  }, 60_000, 'the network check to finish');
}

/**
 * The selected ICE candidate pair of the page's call: { local: { type, relayProtocol },
 * remote: { type, address, port } }, or null.
 */
export async function selectedCandidates(page) {
  return page.evaluate(async () => {
    const stats = await window.peercam.pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const pair = stats.get(s.selectedCandidatePairId);
        const local = stats.get(pair.localCandidateId);
        const remote = stats.get(pair.remoteCandidateId);
        return {
          local: { type: local?.candidateType, relayProtocol: local?.relayProtocol ?? null },
          remote: { type: remote?.candidateType, address: remote?.address, port: remote?.port },
        };
      }
    }
    return null;
  });
}

/** The types of the selected ICE candidate pair of the page's call: { local, remote }. */
export async function selectedPair(page) {
  const pair = await selectedCandidates(page);
  return pair && { local: pair.local.type, remote: pair.remote.type };
}

/**
 * Listens on a unix datagram socket as systemd's NOTIFY_SOCKET would (Node has no unix
 * datagram sockets, so a few lines of Python do the listening). `messages` collects what the
 * daemon sent, one entry per datagram.
 */
export async function startNotifyListener() {
  const dir = mkdtempSync(join(tmpdir(), 'peercam-notify-'));
  const path = join(dir, 'notify');
  const child = spawn('python3', ['-u', '-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("LISTENING", flush=True)
while True:
    print(s.recv(4096).decode(errors="replace").replace("\\n", " | "), flush=True)
`, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages = [];
  let buffered = '';
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop();
    messages.push(...lines.filter((l) => l && l !== 'LISTENING'));
  });
  await eventually(() => existsSync(path), 5_000, 'the notify socket');
  return {
    path,
    messages,
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Makes a viewer token named `name` in `stateDir` the way an owner would; returns it. */
export function createToken(stateDir, name) {
  return execFileSync(BINARY, ['token', 'create', name, '--state-dir', stateDir],
    { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
}

/** Revokes the viewer token named `name` in `stateDir`. */
export function revokeToken(stateDir, name) {
  execFileSync(BINARY, ['token', 'revoke', name, '--state-dir', stateDir], { stdio: 'pipe' });
}

/**
 * One HTTPS request to the daemon on `port`: resolves with { status, headers, body } (body a
 * Buffer), whatever the status.
 */
export function request(port, method, path, { headers = {}, body = null } = {}) {
  return new Promise((resolveResponse, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path, method, rejectUnauthorized: false, headers,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolveResponse({
        status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks),
      }));
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/**
 * Serves tests/browser/whep_player.html from an origin of its own (plain HTTP on loopback, as
 * a dashboard on another machine would be); resolves with { url(endpoint, token, { codecs }),
 * close() }.
 */
export async function startWhepPlayer() {
  const { createServer } = await import('node:http');
  const page = readFileSync(join(ROOT, 'tests/browser/whep_player.html'));
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: (endpoint, token, { codecs = '' } = {}) => `http://127.0.0.1:${port}/`
      + `?endpoint=${encodeURIComponent(endpoint)}&token=${encodeURIComponent(token ?? '')}`
      + `&codecs=${encodeURIComponent(codecs)}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** The inbound-rtp statistics of `kind` of the WHEP player's peer connection, or null. */
export async function whepInbound(page, kind) {
  return page.evaluate(async (kind) => {
    const pc = window.whep?.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === kind) {
        return {
          framesDecoded: s.framesDecoded ?? 0,
          freezeCount: s.freezeCount ?? 0,
          totalFreezesDuration: s.totalFreezesDuration ?? 0,
          packetsReceived: s.packetsReceived ?? 0,
          codec: stats.get(s.codecId)?.mimeType ?? null,
          fmtp: stats.get(s.codecId)?.sdpFmtpLine ?? null,
        };
      }
    }
    return null;
  }, kind);
}

/** The width and height in a JPEG's first start-of-frame marker, or null when it has none. */
export function jpegSize(data) {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) return null;
  let at = 2;
  while (at + 9 < data.length) {
    if (data[at] !== 0xff) return null;
    const marker = data[at + 1];
    const length = data.readUInt16BE(at + 2);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { height: data.readUInt16BE(at + 5), width: data.readUInt16BE(at + 7) };
    }
    at += 2 + length;
  }
  return null;
}
