// A home with no public address (behind its provider's CGNAT) and no port mapping: the device
// dials out to the owner's public host over SSH (autossh, the shipped peercam-tunnel.service
// and tunnel.ssh_config, set up by the shipped peercam-tunnel-setup), the host (set up by the
// shipped remote/public-host/install: sshd restricted to one forward, the public HTTPS port
// passed into it by systemd-socket-proxyd, coturn with its configuration) serves the device's
// page, and the call's media goes through coturn. The tunnel comes back by itself after the
// home loses its internet. And a carrier that drops UDP: the call goes over TURN over TCP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  callButton, eventually, launchBrowser, logInPage, networkCheck, selectedPair, startDaemon,
  waitForFrames,
} from './harness.mjs';
import { PUBLIC_HOST_ADDRESS, natLab } from './nat_lab.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REMOTE = join(ROOT, 'remote');
const RELAY_PORTS = '40000-40199';

/** The command line of a shipped unit's ExecStart, with `replace`'s paths swapped in. */
function execStart(unit, replace = {}) {
  const line = readFileSync(unit, 'utf8').split('\n').find((l) => l.startsWith('ExecStart='));
  let command = line.slice('ExecStart='.length);
  for (const [from, to] of Object.entries(replace)) command = command.replaceAll(from, to);
  return command.split(/\s+/);
}

/** The Environment= lines of a shipped unit, as an object. */
function unitEnvironment(unit) {
  return Object.fromEntries(readFileSync(unit, 'utf8').split('\n')
    .filter((l) => l.startsWith('Environment='))
    .map((l) => l.slice('Environment='.length).split('=')));
}

/**
 * The lab, the public host set up by the shipped install script (sshd, the page's socket,
 * coturn), the device's tunnel set up by the shipped setup script and run as its unit runs it,
 * and the daemon with the [turn] section install printed. Everything stops after the test.
 */
async function tunnelLab(t, labOptions) {
  const lab = await natLab(labOptions);
  const dir = mkdtempSync(join(tmpdir(), 'peercam-tunnel-'));
  // sshd reads the key list as the tunnel's user.
  chmodSync(dir, 0o755);
  const stops = [];
  t.after(async () => {
    for (const stop of stops.reverse()) await stop();
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const hostRoot = join(dir, 'host');
  const deviceEtc = join(dir, 'etc');
  const deviceState = join(dir, 'state');
  mkdirSync(deviceEtc);
  writeFileSync(join(deviceEtc, 'peercam.toml'), '[http]\nhttps_port = 8443\n');

  // The public host: host keys, then sshd with the shipped drop-in.
  mkdirSync(join(hostRoot, 'etc/ssh'), { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(hostRoot, 'etc/ssh/ssh_host_ed25519_key')]);
  mkdirSync('/run/sshd', { recursive: true });
  const sshdConfig = join(hostRoot, 'etc/ssh/sshd_config');
  writeFileSync(sshdConfig, [
    'Port 22', `ListenAddress ${PUBLIC_HOST_ADDRESS}`, `HostKey ${join(hostRoot, 'etc/ssh/ssh_host_ed25519_key')}`,
    'PidFile none', 'UsePAM no', 'PermitRootLogin no',
    // The test's temporary directory is under /tmp (world-writable), which StrictModes refuses.
    'StrictModes no', 'LogLevel VERBOSE',
    `Include ${join(hostRoot, 'etc/ssh/sshd_config.d')}/*.conf`, '',
  ].join('\n'));
  const startSshd = () => lab.startOnPublicHost(['/usr/sbin/sshd', '-D', '-e', '-f', sshdConfig]);
  let sshd = startSshd();
  stops.push(() => sshd.stop());
  /** The host's sshd goes away, sessions and all (as when the host restarts). */
  const stopSshd = async () => {
    await sshd.stop();
    const sessions = execFileSync(lab.inPublicHost[0], [...lab.inPublicHost.slice(1), 'ss', '-tnpH', 'sport', '= :22'], { encoding: 'utf8' });
    for (const [, pid] of sessions.matchAll(/pid=(\d+)/g)) process.kill(Number(pid), 'SIGKILL');
  };
  const restartSshd = async () => {
    sshd = startSshd();
    await eventually(async () => /Server listening/.test(sshd.output), 5_000, 'sshd to listen');
  };

  // The device's side: its key, the host's key pinned, the ssh_config written.
  const setup = execFileSync('nsenter', [...lab.inHome.slice(1, -1), '--',
    join(REMOTE, 'peercam-tunnel-setup'), PUBLIC_HOST_ADDRESS, '--etc', deviceEtc, '--state', deviceState, '--no-start'],
  { encoding: 'utf8' });
  const key = setup.match(/install '([^']+)'/)[1];
  assert.match(key, /^ssh-ed25519 /);

  // The host's one command, with the device's key.
  const installed = execFileSync('sh', [join(REMOTE, 'public-host/install'), key, '--root', hostRoot,
    '--listen', `${PUBLIC_HOST_ADDRESS}:443`, '--external-ip', PUBLIC_HOST_ADDRESS, '--relay-ports', RELAY_PORTS],
  { encoding: 'utf8' });
  const turn = installed.match(/\[turn\][^\n]*\n[^\n]+\n[^\n]+\n/)[0];
  await stopSshd();
  await restartSshd(); // reads the drop-in install wrote

  const socketUnit = join(hostRoot, 'etc/systemd/system/peercam-public.socket');
  // The units install wrote pass systemd's own check.
  const verified = spawnSync('systemd-analyze', ['verify', socketUnit,
    join(hostRoot, 'etc/systemd/system/peercam-public.service')], { encoding: 'utf8' });
  assert.equal(verified.status, 0, verified.stderr);
  assert.equal(`${verified.stdout}${verified.stderr}`.trim(), '');
  const listen = readFileSync(socketUnit, 'utf8').match(/^ListenStream=(.+)$/m)[1];
  const proxy = lab.startOnPublicHost(['systemd-socket-activate', '-l', listen,
    ...execStart(join(hostRoot, 'etc/systemd/system/peercam-public.service'))]);
  stops.push(() => proxy.stop());
  const coturn = lab.startOnPublicHost(['turnserver', '-c', join(hostRoot, 'etc/turnserver.conf'),
    '--pidfile', join(dir, 'turnserver.pid'), '--log-file', 'stdout']);
  stops.push(() => coturn.stop());
  await eventually(async () => /Relay ports initialization done|listener opened/i.test(coturn.output), 10_000, 'coturn to start');

  // The STUN port the page hands out is coturn's on the public host (3478 there too).
  const daemon = await startDaemon(`${turn}[media]\nwidth = 640\nheight = 360\n[http]\nhttps_port = 8443\n[ice]\nlocal_addresses = []\n[stun]\nport = 3478\n`,
    { prefix: lab.inHome });
  stops.push(() => daemon.stop());
  const unit = join(REMOTE, 'peercam-tunnel.service');
  const tunnel = lab.startInHome(['env', ...Object.entries(unitEnvironment(unit)).map(([k, v]) => `${k}=${v}`),
    ...execStart(unit, { '/etc/peercam/tunnel.ssh_config': join(deviceEtc, 'tunnel.ssh_config') })]);
  stops.push(() => tunnel.stop());
  return { lab, daemon, sshd: () => sshd, stopSshd, restartSshd, tunnel, coturn };
}

async function pageLoads(browser, url) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const page = await context.newPage();
    const response = await page.goto(`${url}login`, { timeout: 5_000 }).catch(() => null);
    return response?.status() === 200;
  } finally {
    await context.close();
  }
}

test('a home behind CGNAT: the page through the tunnel, the call through coturn, the tunnel back by itself', async (t) => {
  const { lab, tunnel, sshd, stopSshd, restartSshd } = await tunnelLab(t, { router: { upnp: false, pcp: false }, cgnat: true });
  const url = `https://${PUBLIC_HOST_ADDRESS}/`;
  const browser = await launchBrowser({ executable: lab.phoneChromium });
  t.after(() => browser.close());
  await eventually(() => pageLoads(browser, url), 30_000, `the page at ${url} (tunnel: ${tunnel.output}; sshd: ${sshd().output})`);

  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await logInPage(page, url.replace(/\/$/, ''));
  await callButton(page).click();
  await waitForFrames(page, 30);
  const pair = await selectedPair(page);
  assert.ok(pair.local === 'relay' || pair.remote === 'relay', `relayed by coturn: ${JSON.stringify(pair)}`);
  const verdict = await networkCheck(page, url);
  assert.equal(verdict.state, 'ok', verdict.text);
  assert.match(verdict.text, /A call from this browser connects: relayed by/);
  assert.match(verdict.text, /STUN works/);
  assert.match(verdict.text, /TURN over UDP \(turn:31\.77\.3\.2:3478\?transport=udp\) works/);
  assert.match(verdict.text, /TURN over TCP \(turn:31\.77\.3\.2:3478\?transport=tcp\) works/);
  await context.close();

  // The home loses its internet for a moment: the tunnel holds, and the page is back with it.
  lab.homeOnline(false);
  await eventually(async () => !(await pageLoads(browser, url)), 30_000, 'the page gone with the link');
  lab.homeOnline(true);
  await eventually(() => pageLoads(browser, url), 60_000, 'the page back with the link');

  // The host goes away (sshd and its sessions): the tunnel dials until it is back, by itself.
  await stopSshd();
  await eventually(async () => !(await pageLoads(browser, url)), 30_000, 'the page gone with the host');
  await new Promise((resolve) => { setTimeout(resolve, 5_000); });
  await restartSshd();
  await eventually(() => pageLoads(browser, url), 90_000, `the page back through a new tunnel (${tunnel.output})`);
  assert.match(sshd().output, /Accepted publickey for peercam-tunnel/, 'a new session, not the old one');
});

test('a carrier that drops UDP: the page over TCP, the call over TURN over TCP', async (t) => {
  const { lab } = await tunnelLab(t, { router: { upnp: false, pcp: false }, cgnat: true, carrierDropsUdp: true });
  const url = `https://${PUBLIC_HOST_ADDRESS}/`;
  const browser = await launchBrowser({ executable: lab.phoneChromium });
  t.after(() => browser.close());
  await eventually(() => pageLoads(browser, url), 30_000, `the page at ${url}`);
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await logInPage(page, url.replace(/\/$/, ''));
  await callButton(page).click();
  await waitForFrames(page, 30);
  const relayed = await page.evaluate(async () => {
    const stats = await window.peercam.pc.getStats();
    const transport = [...stats.values()].find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const local = stats.get(stats.get(transport.selectedCandidatePairId).localCandidateId);
    return { type: local.candidateType, relayProtocol: local.relayProtocol };
  });
  assert.deepEqual(relayed, { type: 'relay', relayProtocol: 'tcp' });
  // /check: the path is TURN over TCP, and TURN over UDP cannot work from this carrier.
  const verdict = await networkCheck(page, url);
  assert.equal(verdict.state, 'ok', verdict.text);
  assert.match(verdict.text, /A call from this browser connects: relayed by your TURN server over TCP/);
  assert.match(verdict.text, /TURN does not work: TURN over UDP .* gave no relay address/);
  assert.match(verdict.text, /TURN over TCP .* works/);
  await context.close();
});
