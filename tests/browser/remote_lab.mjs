// The NAT lab's set-ups for calling from outside (shared by remote_access.test.mjs,
// tunnel.test.mjs and drivers/bench_lab.mjs): the owner's public host made with the shipped
// remote/public-host/install (sshd limited to the tunnel's forward, the page's socket passed
// into it by systemd-socket-proxyd, coturn with the configuration install wrote), the device's
// tunnel set up by the shipped peercam-tunnel-setup and run as peercam-tunnel.service runs it,
// the daemon in the home, and a phone that calls.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callButton, eventually, logInPage, startDaemon, waitForFrames } from './harness.mjs';
import { HOME_PUBLIC_ADDRESS, PUBLIC_HOST_ADDRESS, natLab } from './nat_lab.mjs';

const REMOTE = fileURLToPath(new URL('../../remote', import.meta.url));
const RELAY_PORTS = '40000-40199';
/** The media ports the device uses in the lab. */
export const MEDIA_PORTS = [50000, 50004];

/** The command line of a unit's ExecStart, with `replace`'s paths swapped in. */
function execStart(unit, replace = {}) {
  const line = readFileSync(unit, 'utf8').split('\n').find((l) => l.startsWith('ExecStart='));
  let command = line.slice('ExecStart='.length);
  for (const [from, to] of Object.entries(replace)) command = command.replaceAll(from, to);
  return command.split(/\s+/);
}

/** A unit's Environment= settings as `NAME=value` words for env(1). */
function unitEnvironment(unit) {
  return readFileSync(unit, 'utf8').split('\n')
    .filter((l) => l.startsWith('Environment='))
    .map((l) => l.slice('Environment='.length));
}

/** The public host's sshd, running before anything of peercam's is installed there. */
async function startSshd(lab, root, stops) {
  mkdirSync(join(root, 'etc/ssh'), { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(root, 'etc/ssh/ssh_host_ed25519_key')]);
  mkdirSync('/run/sshd', { recursive: true });
  const config = join(root, 'etc/ssh/sshd_config');
  writeFileSync(config, [
    'Port 22', `ListenAddress ${PUBLIC_HOST_ADDRESS}`, `HostKey ${join(root, 'etc/ssh/ssh_host_ed25519_key')}`,
    'PidFile none', 'UsePAM no', 'PermitRootLogin no',
    // The lab's directory is under /tmp (world-writable), which StrictModes refuses.
    'StrictModes no', 'LogLevel VERBOSE',
    `Include ${join(root, 'etc/ssh/sshd_config.d')}/*.conf`, '',
  ].join('\n'));
  const sshd = {
    process: null,
    async start() {
      this.process = lab.startOnPublicHost(['/usr/sbin/sshd', '-D', '-e', '-f', config]);
      await eventually(async () => /Server listening/.test(this.process.output), 5_000, 'sshd to listen');
    },
    /** sshd goes away, sessions and all (as when the host restarts). */
    async stop() {
      await this.process.stop();
      const sessions = execFileSync(lab.inPublicHost[0], [...lab.inPublicHost.slice(1), 'ss', '-tnpH', 'sport', '= :22'],
        { encoding: 'utf8' });
      for (const [, pid] of sessions.matchAll(/pid=(\d+)/g)) process.kill(Number(pid), 'SIGKILL');
    },
  };
  await sshd.start();
  stops.push(() => sshd.stop());
  return sshd;
}

/**
 * The host's one command (remote/public-host/install) with the device's `key`; then sshd
 * reads its drop-in, the page's socket is served as its units say, and coturn runs with the
 * configuration install wrote. Resolves with the [turn] section install printed.
 */
async function installPublicHost(lab, dir, root, key, sshd, stops) {
  const installed = execFileSync('sh', [join(REMOTE, 'public-host/install'), key, '--root', root,
    '--listen', `${PUBLIC_HOST_ADDRESS}:443`, '--external-ip', PUBLIC_HOST_ADDRESS, '--relay-ports', RELAY_PORTS],
  { encoding: 'utf8' });
  await sshd.stop();
  await sshd.start();

  const units = join(root, 'etc/systemd/system');
  // The units install wrote pass systemd's own check.
  const verified = spawnSync('systemd-analyze', ['verify', join(units, 'peercam-public.socket'),
    join(units, 'peercam-public.service')], { encoding: 'utf8' });
  assert.equal(verified.status, 0, verified.stderr);
  assert.equal(`${verified.stdout}${verified.stderr}`.trim(), '');
  const listen = readFileSync(join(units, 'peercam-public.socket'), 'utf8').match(/^ListenStream=(.+)$/m)[1];
  const proxy = lab.startOnPublicHost(['systemd-socket-activate', '-l', listen,
    ...execStart(join(units, 'peercam-public.service'))]);
  stops.push(() => proxy.stop());
  const coturn = lab.startOnPublicHost(['turnserver', '-c', join(root, 'etc/turnserver.conf'),
    '--pidfile', join(dir, 'turnserver.pid'), '--log-file', 'stdout']);
  stops.push(() => coturn.stop());
  await eventually(async () => /Relay ports initialization done|listener opened/i.test(coturn.output), 10_000, 'coturn to start');
  return installed.match(/\[turn\][^\n]*\n[^\n]+\n[^\n]+\n/)[0];
}

/**
 * A lab (`labOptions`, see natLab) with the public host (coturn; sshd for the tunnel), the
 * daemon in the home with the [turn] section install printed and `toml`, and, with `tunnel`,
 * the device's tunnel. `publicUrl` is where a phone opens the page: the public host's with the
 * tunnel, else the home's address (a forward, made by hand or by port mapping). `close()` stops
 * everything.
 */
export async function remoteSetUp(labOptions, { tunnel = true, toml = '', daemonOptions = {} } = {}) {
  const lab = await natLab(labOptions);
  const dir = mkdtempSync(join(tmpdir(), 'peercam-remote-'));
  // sshd reads the key list as the tunnel's user.
  chmodSync(dir, 0o755);
  const stops = [];
  const close = async () => {
    for (const stop of stops.reverse()) await stop();
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const root = join(dir, 'host');
    const sshd = await startSshd(lab, root, stops);
    // The device's side, as the owner sets it up: its key, the host's key pinned, the
    // ssh_config written; then the host's one command with that key.
    const deviceEtc = join(dir, 'etc');
    mkdirSync(deviceEtc);
    writeFileSync(join(deviceEtc, 'peercam.toml'), '[http]\nhttps_port = 8443\n');
    const setup = execFileSync(lab.inHome[0], [...lab.inHome.slice(1), join(REMOTE, 'peercam-tunnel-setup'),
      PUBLIC_HOST_ADDRESS, '--etc', deviceEtc, '--state', join(dir, 'state'), '--no-start'], { encoding: 'utf8' });
    const key = setup.match(/install '([^']+)'/)[1];
    assert.match(key, /^ssh-ed25519 /);
    const turn = await installPublicHost(lab, dir, root, key, sshd, stops);

    // The STUN port the page hands out through the tunnel is coturn's on the public host.
    const daemon = await startDaemon(`${turn}${toml}[media]\nwidth = 640\nheight = 360\n` +
      '[http]\nhttps_port = 8443\n[ice]\nlocal_addresses = []\n[stun]\nport = 3478\n',
    { prefix: lab.inHome, ...daemonOptions });
    stops.push(() => daemon.stop());
    let tunnelProcess = null;
    if (tunnel) {
      const unit = join(REMOTE, 'peercam-tunnel.service');
      tunnelProcess = lab.startInHome(['env', ...unitEnvironment(unit),
        ...execStart(unit, { '/etc/peercam/tunnel.ssh_config': join(deviceEtc, 'tunnel.ssh_config') })]);
      stops.push(() => tunnelProcess.stop());
    }
    return {
      lab,
      daemon,
      sshd,
      tunnel: tunnelProcess,
      publicUrl: tunnel ? `https://${PUBLIC_HOST_ADDRESS}/` : `https://${HOME_PUBLIC_ADDRESS}:${daemon.port}/`,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Whether the login page loads at `url` within 5 s. */
export async function pageLoads(browser, url) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const page = await context.newPage();
    const response = await page.goto(`${url}login`, { timeout: 5_000 }).catch(() => null);
    return response?.status() === 200;
  } finally {
    await context.close();
  }
}

/** The phone opens `url`, logs in, calls; returns the page once `frames` are decoded. */
export async function callFromPhone(browser, url, frames = 30) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await logInPage(page, url.replace(/\/$/, ''));
  await callButton(page).click();
  await waitForFrames(page, frames);
  return page;
}
