// The daemon as a systemd service: it tells systemd the truth (READY once listening and
// rehearsed, STATUS through a call, WATCHDOG only while frames flow, STOPPING), hangs up
// cleanly on SIGTERM, reloads its config on SIGHUP, and survives a camera that stops.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import {
  callButton, eventually, exchange, launchBrowser, mergeConfig, openPage, startDaemon,
  startNotifyListener, waitForFrames, waitForStatus, waitUntilIdle,
} from './harness.mjs';

const SMALL = '[media]\nwidth = 640\nheight = 360\n';

/** The common name on the certificate the daemon presents now. */
function certificateName(port) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().subject?.CN);
      socket.end();
    });
    socket.on('error', reject);
  });
}
let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('systemd hears READY, STATUS, WATCHDOG and STOPPING; SIGTERM hangs up within 2 s', async (t) => {
  const notify = await startNotifyListener();
  const daemon = await startDaemon(SMALL, { env: { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '400000' } });
  t.after(async () => { notify.stop(); await daemon.stop(); });
  const seen = (prefix) => notify.messages.some((m) => m.startsWith(prefix));
  await eventually(() => seen('READY=1'), 5_000, 'READY=1');
  // READY follows the media rehearsal, so the first call after it is as fast as any other
  // (the rehearsal takes ~1 s in a debug build: READY before it would be caught here).
  await eventually(() => daemon.output.includes('media warmed up in'), 300, 'the rehearsal over by READY');
  await eventually(() => seen('STATUS=Idle, waiting for a call'), 5_000, 'idle STATUS');

  const page = await openPage(browser, daemon.url);
  await callButton(page).click();
  await waitForFrames(page, 30);
  await eventually(() => seen('STATUS=In call 1 with 127.0.0.1'), 5_000, 'in-call STATUS');
  const pets = () => notify.messages.filter((m) => m === 'WATCHDOG=1').length;
  const before = pets();
  await waitForFrames(page, 60);
  await eventually(() => pets() >= before + 3, 5_000, 'watchdog pets while frames flow');

  const stoppedAt = Date.now();
  process.kill(daemon.pid, 'SIGTERM');
  const ended = await waitForStatus(page, 'ended', 5_000);
  assert.match(ended.text, /the device is shutting down/);
  const exit = await daemon.exited;
  assert.equal(exit.code, 0, 'clean exit');
  assert.ok(exit.at - stoppedAt < 2_000, `exited ${exit.at - stoppedAt} ms after SIGTERM`);
  assert.ok(seen('STOPPING=1'));
  assert.ok(notify.messages.indexOf('READY=1') < notify.messages.indexOf('STOPPING=1'));
  await page.context().close();
});

test('SIGHUP: a new ICE server and certificate take effect; a broken file is refused', async (t) => {
  const daemon = await startDaemon(SMALL);
  t.after(() => daemon.stop());
  const iceUrls = async () => JSON.parse(await daemon.get('/api/ice-servers')).iceServers.flatMap((s) => s.urls);
  assert.ok(!(await iceUrls()).includes('stun:stun.example.test:3478'));

  writeFileSync(daemon.configPath, mergeConfig(`${SMALL}[[ice.servers]]\nurls = ["stun:stun.example.test:3478"]\n`));
  process.kill(daemon.pid, 'SIGHUP');
  await eventually(async () => (await iceUrls()).includes('stun:stun.example.test:3478'), 5_000, 'the reloaded server');
  const page = await openPage(browser, daemon.url);
  const { replies } = await exchange(page, ['{"type":"join"}', '{"type":"bye"}']);
  assert.equal(replies[0].type, 'joined');
  assert.ok(replies[0].iceServers.some((s) => s.urls.includes('stun:stun.example.test:3478')),
    'the next caller gets the new server');
  await waitUntilIdle(daemon);

  // A configured certificate is picked up by the next connection.
  const dir = mkdtempSync(join(tmpdir(), 'peercam-cert-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-subj', '/CN=reloaded.peercam.test', '-days', '1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  writeFileSync(daemon.configPath, mergeConfig(`${SMALL}[http]\ncertificate = "${join(dir, 'cert.pem')}"\n` +
    `private_key = "${join(dir, 'key.pem')}"\n[[ice.servers]]\nurls = ["stun:stun.example.test:3478"]\n`));
  assert.notEqual(await certificateName(daemon.port), 'reloaded.peercam.test');
  process.kill(daemon.pid, 'SIGHUP');
  await eventually(async () => (await certificateName(daemon.port)) === 'reloaded.peercam.test',
    5_000, 'the reloaded certificate');

  writeFileSync(daemon.configPath, '[media\nbroken');
  process.kill(daemon.pid, 'SIGHUP');
  await eventually(() => /SIGHUP: kept the running config/.test(daemon.output), 5_000, 'the refusal in the log');
  assert.ok((await iceUrls()).includes('stun:stun.example.test:3478'), 'the running config is kept');
  assert.doesNotThrow(() => process.kill(daemon.pid, 0), 'the daemon is still running');
  await page.context().close();
});

test('a camera that stops: the caller is told, STATUS says so, the daemon retries and the next call works', async (t) => {
  const notify = await startNotifyListener();
  const daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\nvideo_source = "videotestsrc is-live=true num-buffers=60"\n',
    { env: { NOTIFY_SOCKET: notify.path } });
  t.after(async () => { notify.stop(); await daemon.stop(); });
  const page = await openPage(browser, daemon.url);
  await callButton(page).click();
  await waitForFrames(page, 10);
  const failed = await waitForStatus(page, 'error', 10_000);
  assert.match(failed.text, /camera or microphone stopped/);
  await waitUntilIdle(daemon);
  assert.equal((await daemon.metrics()).peercam_calls_failed_total, 1);
  const status = () => notify.messages.filter((m) => m.startsWith('STATUS='));
  await eventually(() => status().some((m) => /Camera or microphone unavailable .*trying again in 1 s/.test(m)),
    5_000, 'STATUS saying the camera is unavailable');
  await eventually(() => status().at(-1).startsWith('STATUS=Idle; the last call failed'), 10_000,
    'a probe finding the source working again');

  await callButton(page).click();
  await waitForFrames(page, 10);
  await page.context().close();
});
