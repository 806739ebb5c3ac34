// A phone's browser names its host candidates `<uuid>.local` (mDNS) and sends no address at
// all; webrtcbin resolves such names through the system's resolver (nss-mdns on the board,
// which is why the package depends on libnss-mdns and both images install it). Here Chromium's
// candidates are rewritten to `.local` names only, as a phone's are, and the device resolves
// them through the system resolver of its own mount namespace, where a hosts file stands in
// for the phone's mDNS answers (the mDNS exchange itself is avahi's and nss-mdns's): the call
// connects, and webrtcbin's ICE log shows each name resolved to the phone's host address (a
// call also connects through the peer-reflexive candidates learned from incoming checks, so
// the connection alone would not show it; before GLib's default main loop ran, no name was
// ever resolved).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  callButton, eventually, launchBrowser, logInPage, startDaemon, waitForFrames,
} from './harness.mjs';

/** The `.local` name the phone gives each of its addresses. */
const NAMES = { '127.0.0.1': 'peercam-phone-1.local', '10.99.0.1': 'peercam-phone-2.local' };

const dir = mkdtempSync(join(tmpdir(), 'peercam-mdns-'));
let daemon;
let browser;
before(async () => {
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, `${readFileSync('/etc/hosts', 'utf8')}\n`
    + Object.entries(NAMES).map(([address, name]) => `${address} ${name}`).join('\n') + '\n');
  // The daemon in a mount namespace of its own, with that hosts file as /etc/hosts.
  const withHosts = ['unshare', '-m', '--', 'sh', '-c',
    'mount --bind "$0" /etc/hosts && exec "$@"', hosts];
  // webrtcbin's ICE log says what each `.local` name resolved to.
  daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n',
    { prefix: withHosts, env: { GST_DEBUG: 'webrtcnice:5', GST_DEBUG_NO_COLOR: '1' } });
  // With a granted camera Chromium shows its real addresses; the page below hides them.
  browser = await launchBrowser({ media: true });
});
after(async () => {
  if (process.env.PEERCAM_SHOW_LOG) console.log(daemon?.output);
  await browser?.close();
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a phone that sends only .local host candidates is resolved and called', async (t) => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.addInitScript((names) => {
    const hide = (text) => text.replace(/(candidate:\S+ \d+ \S+ \d+ )(\S+)/g,
      (whole, head, address) => head + (names[address] ?? address));
    window.sentCandidates = [];
    const candidate = Object.getOwnPropertyDescriptor(RTCIceCandidate.prototype, 'candidate');
    Object.defineProperty(RTCIceCandidate.prototype, 'candidate', {
      get() {
        const shown = hide(candidate.get.call(this));
        if (shown) window.sentCandidates.push(shown);
        return shown;
      },
    });
    const sdp = Object.getOwnPropertyDescriptor(RTCSessionDescription.prototype, 'sdp');
    Object.defineProperty(RTCSessionDescription.prototype, 'sdp', {
      get() { return hide(sdp.get.call(this)); },
    });
  }, NAMES);
  const page = await context.newPage();
  t.after(() => context.close());
  await logInPage(page, new URL(daemon.url).origin);
  await page.goto(daemon.url);
  await callButton(page).click();
  await waitForFrames(page, 30);
  const sent = await page.evaluate(() => window.sentCandidates);
  const hosts = sent.filter((c) => / typ host/.test(c));
  assert.ok(hosts.length > 0, `host candidates were sent: ${sent}`);
  for (const c of hosts) assert.match(c, /\.local /, `only .local names: ${c}`);
  // The device resolved each name and gave ICE the phone's host candidate at its address.
  for (const [address, name] of Object.entries(NAMES)) {
    if (!hosts.some((c) => c.includes(` ${name} `))) continue;
    await eventually(() => new RegExp(`resolved to candidate a=candidate:\\S+ 1 udp \\d+ ${address.replaceAll('.', '\\.')} \\d+ typ host`)
      .test(daemon.output), 10_000, `${name} resolved to ${address}`);
  }
  await page.evaluate(() => document.getElementById('hangup').click());
});
