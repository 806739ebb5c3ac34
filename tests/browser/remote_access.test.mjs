// Calling the device from outside the home, in a lab of real routers (nat_lab.mjs): the phone
// sits behind a carrier's symmetric NAT, the device behind a home router running Debian's
// miniupnpd, and there is no TURN server. With `[remote] port_mapping = true` the device asks
// the router for its forwards at start (UPnP-IGD, or PCP/NAT-PMP), the phone opens the public
// URL the device announced, logs in and calls, and the call runs on the forwarded media port;
// /check names that path; when the daemon stops, the router's forwards are gone. With port mapping off, nothing is
// asked of the router, not even by a call (libnice's own UPnP is off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, launchBrowser, networkCheck, selectedCandidates, startDaemon } from './harness.mjs';
import { DEVICE_LAN_ADDRESS, HOME_PUBLIC_ADDRESS, natLab } from './nat_lab.mjs';
import { MEDIA_PORTS, callFromPhone } from './remote_lab.mjs';

const MAPPED = `[remote]
port_mapping = true
media_ports = "${MEDIA_PORTS.join('-')}"
[ice]
local_addresses = []
[media]
width = 640
height = 360
`;

/** Starts the lab and the daemon in its home; stops both (daemon first) after the test. */
async function setUp(t, router, toml) {
  const lab = await natLab({ router });
  let daemon;
  try {
    daemon = await startDaemon(toml, { prefix: lab.inHome });
  } catch (e) {
    await lab.close();
    throw e;
  }
  t.after(async () => {
    if (process.env.PEERCAM_SHOW_LOG) console.log(daemon.output, lab.routerLog);
    await daemon.stop();
    await lab.close();
  });
  return { lab, daemon };
}

async function mappedCallFromOutside(t, router, protocol) {
  const { lab, daemon } = await setUp(t, router, MAPPED);
  const url = `https://${HOME_PUBLIC_ADDRESS}:${daemon.port}/`;
  const announced = await eventually(async () => daemon.output.match(/From outside the home: (\S+)/)?.[1],
    10_000, 'the public URL in the banner');
  assert.equal(announced, url);
  const forwards = lab.forwards();
  for (const port of [daemon.port, daemon.stunPort, ...MEDIA_PORTS]) {
    assert.ok(forwards.some((rule) => rule.includes(`dport ${port} dnat ip to ${DEVICE_LAN_ADDRESS}:${port}`)),
      `port ${port} forwarded, in ${JSON.stringify(forwards)}`);
  }

  const browser = await launchBrowser({ executable: lab.phoneChromium });
  t.after(() => browser.close());
  const page = await callFromPhone(browser, url);
  const { remote } = await selectedCandidates(page);
  assert.equal(remote.type, 'srflx', 'the device\'s forwarded candidate carries the call');
  assert.equal(remote.address, HOME_PUBLIC_ADDRESS);
  assert.ok(remote.port >= MEDIA_PORTS[0] && remote.port <= MEDIA_PORTS[1], `port ${remote.port}`);
  const reach = await page.evaluate(async () => (await fetch('/api/remote')).json());
  assert.equal(reach.publicUrl, url);
  assert.equal(reach.protocol, protocol);
  assert.equal(reach.problem, null);
  // The page's debug view says the same.
  const shown = await page.locator('#remote-access').textContent();
  assert.match(shown, new RegExp(`Public URL: ${url.replaceAll('.', '\\.')}`));
  assert.match(shown, new RegExp(`Router: ${protocol}, external address ${HOME_PUBLIC_ADDRESS.replaceAll('.', '\\.')}`));
  // /check, from the phone: a real connection, on the path the call took.
  const verdict = await networkCheck(page, url);
  assert.equal(verdict.state, 'ok', verdict.text);
  assert.match(verdict.text, new RegExp(`connects: through the home router's port forward \\(port mapping: ${HOME_PUBLIC_ADDRESS.replaceAll('.', '\\.')}:500\\d\\d\\)`));
  assert.match(verdict.text, /STUN works/, 'the forwarded STUN port answers the phone');
  await page.context().close();

  await daemon.stop();
  assert.deepEqual(lab.forwards(), [], 'the forwards are deleted when the daemon stops');
  return { lab };
}

test('a router speaking UPnP-IGD: the phone calls through the forwards the device made', async (t) => {
  const { lab } = await mappedCallFromOutside(t, { upnp: true, pcp: false }, 'UPnP-IGD');
  assert.match(lab.routerLog, /WANIPConnection:2#AddPortMapping/, 'IGDv2');
});

test('an older router speaking UPnP-IGD v1: the same', async (t) => {
  const { lab } = await mappedCallFromOutside(t, { upnp: true, pcp: false, igdV1: true }, 'UPnP-IGD');
  assert.match(lab.routerLog, /WANIPConnection:1#AddPortMapping/, 'IGDv1');
});

test('a router speaking NAT-PMP/PCP only: the same, by PCP', async (t) => {
  await mappedCallFromOutside(t, { upnp: false, pcp: true }, 'PCP');
});

test('port mapping off: nothing is forwarded, not even during a call on the home LAN', async (t) => {
  const { lab, daemon } = await setUp(t, { upnp: true, pcp: true }, MAPPED.replace('port_mapping = true', 'port_mapping = false'));
  assert.match(daemon.output, /From outside the home: port mapping is off/);
  const browser = await launchBrowser({ executable: lab.homeChromium });
  t.after(() => browser.close());
  // Home Wi-Fi: the call connects on the LAN, and its ICE agent asks the router for nothing.
  const page = await callFromPhone(browser, `https://${DEVICE_LAN_ADDRESS}:${daemon.port}/`);
  const { remote } = await selectedCandidates(page);
  assert.equal(remote.address, DEVICE_LAN_ADDRESS);
  assert.ok(remote.port >= MEDIA_PORTS[0] && remote.port <= MEDIA_PORTS[1], 'media_ports hold without mapping');
  assert.deepEqual(lab.forwards(), []);
  assert.doesNotMatch(lab.routerLog, /redirecting port|PCP request|AddPortMapping/);
});

test('a home behind its provider\'s NAT: port mapping says it cannot help, and leaves nothing open', async (t) => {
  const lab = await natLab({ router: { upnp: true, pcp: true }, cgnat: true });
  const daemon = await startDaemon(MAPPED, { prefix: lab.inHome }).catch(async (e) => { await lab.close(); throw e; });
  t.after(async () => {
    await daemon.stop();
    await lab.close();
  });
  const said = await eventually(async () => daemon.output.match(/remote access: (.*)/)?.[1], 10_000, 'port mapping\'s verdict');
  // miniupnpd on a private address refuses and says why only in NAT-PMP's words ("network
  // failure"); the device puts it in the owner's.
  assert.match(said, /not reachable from outside: the router has no public address of its own \(.*\): the internet provider's own NAT \(CGNAT, DS-Lite\) is in front of this home.*tunnel/);
  // The banner comes once the media warm-up is over too (seconds later on a loaded machine).
  await eventually(() => /\(not reachable from outside: the router has no public address/.test(daemon.output),
    30_000, 'the verdict in the banner');
  assert.deepEqual(lab.forwards(), []);
});

/**
 * With a 30 s lease on `router`, the forwards are asked for again at half of it and all still
 * there after the first lease ended; `requests(log, daemon)` counts the router's requests.
 */
async function renewedBeforeTheLeaseEnds(t, router, requests) {
  const { lab, daemon } = await setUp(t, router,
    MAPPED.replace('port_mapping = true', 'port_mapping = true\nlease_seconds = 30'));
  const started = Date.now();
  const asked = () => requests(lab.routerLog, daemon);
  await eventually(async () => asked() >= 1, 10_000, 'the first forward');
  const first = asked();
  // Renewed at half the lease (15 s), before the router would drop it at 30 s.
  await eventually(async () => asked() > first, 25_000, 'a renewal');
  await eventually(async () => Date.now() - started > 32_000, 35_000, 'the first lease to have ended');
  const forwards = lab.forwards();
  assert.ok(forwards.some((rule) => rule.includes(`dport ${daemon.port} dnat`)), JSON.stringify(forwards));
  assert.ok(forwards.length >= 2 + MEDIA_PORTS[1] - MEDIA_PORTS[0] + 1, 'every forward renewed');
}

test('the forwards are renewed before their lease ends, and stay while the device runs', async (t) => {
  await renewedBeforeTheLeaseEnds(t, { upnp: true, pcp: false },
    (log, daemon) => log.split(`AddPortMapping: ext port ${daemon.port} `).length - 1);
});

test('the same by PCP: a renewal refreshes the mapping (same nonce), it makes no new one', async (t) => {
  await renewedBeforeTheLeaseEnds(t, { upnp: false, pcp: true }, (log) => {
    // Once every forward has been made (the last media port), count the requests after it.
    const made = log.indexOf(`added mapping UDP ${MEDIA_PORTS[1]}->`);
    if (made < 0) return 0;
    // Each mapping is named by its nonce; a renewal keeps it. (miniupnpd sometimes logs a
    // refresh as "added mapping" again, so the words alone say nothing.)
    const nonces = new Map();
    for (const [, forward, nonce] of log.matchAll(/added mapping (\S+ \d+)->\S+ 'PCP MAP (\w+)'/g)) {
      if (!nonces.has(forward)) nonces.set(forward, nonce);
      assert.equal(nonce, nonces.get(forward), `a renewal of ${forward} made a new mapping`);
    }
    const later = log.slice(made);
    return 1 + later.split('PCP request received').length - 1;
  });
});
