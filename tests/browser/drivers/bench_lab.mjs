// Figures for calling from outside in the NAT lab (not a test: nothing is asserted). Run by
// `scripts/bench lab`. For each case the phone (behind a symmetric carrier NAT) opens the URL
// it would be given, logs in and calls: the selected candidate pair, the frames decoded 5 s
// after the call started, and the time from "Call device" to the first frame; or why it got
// no picture. With BEFORE=1 the binary (PEERCAM_BIN) is taken to be one from before
// `[remote]` existed: the cases are set up as its docs said (no port mapping setting, no
// tunnel). One JSON line per case, then a Markdown table.
import { eventually, launchBrowser, selectedCandidates, startDaemon } from '../harness.mjs';
import { HOME_PUBLIC_ADDRESS, natLab } from '../nat_lab.mjs';
import { callFromPhone, pageLoads, remoteSetUp } from '../remote_lab.mjs';

const BEFORE = process.env.BEFORE === '1';
const MAPPING = BEFORE ? '' : '[remote]\nport_mapping = true\nmedia_ports = "50000-50004"\n';
const SMALL = '[media]\nwidth = 640\nheight = 360\n[http]\nhttps_port = 8443\n[ice]\nlocal_addresses = []\n[stun]\nport = 3478\n';

/** A home with a port-mapping router and no TURN: the device alone in the home. */
async function mappedHome(router) {
  const lab = await natLab({ router });
  try {
    const daemon = await startDaemon(`${MAPPING}${SMALL}`, { prefix: lab.inHome });
    await eventually(async () => /From outside the home|ready on HTTPS/.test(daemon.output), 10_000, 'the banner');
    return {
      lab,
      publicUrl: `https://${HOME_PUBLIC_ADDRESS}:8443/`,
      close: async () => { await daemon.stop(); await lab.close(); },
    };
  } catch (e) {
    await lab.close();
    throw e;
  }
}

const CASES = [
  { name: 'UPnP-IGD router, no forward by hand, no TURN', setUp: () => mappedHome({ upnp: true, pcp: false }) },
  { name: 'NAT-PMP/PCP router, no forward by hand, no TURN', setUp: () => mappedHome({ upnp: false, pcp: true }) },
  {
    name: 'forward by hand (TCP 8443) + coturn',
    setUp: () => remoteSetUp({ router: { upnp: false, pcp: false }, manualForwards: [['tcp', 8443]] }, { tunnel: false }),
  },
  {
    name: 'home behind CGNAT, no UPnP: tunnel + coturn',
    setUp: () => remoteSetUp({ router: { upnp: false, pcp: false }, cgnat: true }, { tunnel: !BEFORE }),
  },
  {
    name: 'carrier drops UDP, home behind CGNAT: tunnel + TURN over TCP',
    setUp: () => remoteSetUp({ router: { upnp: false, pcp: false }, cgnat: true, carrierDropsUdp: true },
      { tunnel: !BEFORE }),
  },
];

const results = [];
for (const { name, setUp } of CASES) {
  const remote = await setUp();
  const browser = await launchBrowser({ executable: remote.lab.phoneChromium });
  const result = { case: name };
  try {
    const loads = await eventually(() => pageLoads(browser, remote.publicUrl), 20_000, 'the page').catch(() => false);
    if (!loads) {
      result.outcome = `page unreachable at ${remote.publicUrl}`;
    } else {
      const page = await callFromPhone(browser, remote.publicUrl, 1).catch((e) => {
        result.outcome = `no picture: ${e.message.split('\n')[0]}`;
        return null;
      });
      if (page) {
        const started = await page.evaluate(() => window.peercam.lastFirstFrameMs);
        await new Promise((resolve) => { setTimeout(resolve, 5_000); });
        const pair = await selectedCandidates(page);
        const frames = await page.evaluate(async () => {
          const stats = await window.peercam.pc.getStats();
          return [...stats.values()].find((s) => s.type === 'inbound-rtp' && s.kind === 'video')?.framesDecoded ?? 0;
        });
        Object.assign(result, {
          outcome: 'call',
          pair: `${pair.local.type}${pair.local.relayProtocol ? `/${pair.local.relayProtocol}` : ''} -> ${pair.remote.type} ${pair.remote.address}:${pair.remote.port}`,
          frames,
          firstFrameMs: started,
        });
        await page.context().close();
      }
    }
  } finally {
    await browser.close();
    await remote.close();
  }
  console.log(JSON.stringify(result));
  results.push(result);
}

console.log(`\n| case (${BEFORE ? 'before' : 'after'}) | selected pair (phone -> device) | frames after 5 s | first frame (ms) |`);
console.log('|---|---|---|---|');
for (const r of results) {
  console.log(r.outcome === 'call'
    ? `| ${r.case} | ${r.pair} | ${r.frames} | ${r.firstFrameMs} |`
    : `| ${r.case} | ${r.outcome} | 0 | - |`);
}
