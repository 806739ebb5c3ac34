// A lab of real routers in network namespaces, all made by the test and gone after it: a home
// LAN with the device behind a home router (nftables masquerade, and Debian's miniupnpd
// speaking UPnP-IGD, NAT-PMP/PCP, or nothing), optionally behind its internet provider's own
// NAT (CGNAT: the home router's external address is 100.64.0.2), a phone behind a carrier's
// symmetric NAT (`masquerade fully-random`; optionally one that drops UDP), a public host
// (31.77.3.2, for coturn and the tunnel's server side), and the internet between them: the
// test's own namespace, which routes between the "public" blocks.
//
// miniupnpd refuses private, shared and documentation ranges as its external address, so the
// public side uses 31.77.0.0/16: an ordinary block, which here exists only inside these
// namespaces (the test's namespace has no route out).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './harness.mjs';

/** The home router's external address: what the device's public URL names. */
export const HOME_PUBLIC_ADDRESS = '31.77.1.2';
/** The device's address on the home LAN. */
export const DEVICE_LAN_ADDRESS = '192.168.77.2';
/** The owner's public host (coturn, the tunnel's server side). */
export const PUBLIC_HOST_ADDRESS = '31.77.3.2';

const run = (cmd, ...args) => execFileSync(cmd, args, { stdio: 'pipe' }).toString();

/** A network namespace held open by a sleeping process; `exec` runs a command inside it. */
async function namespace() {
  const holder = spawn('unshare', ['-n', 'sleep', 'infinity'], { stdio: 'ignore' });
  const path = `/proc/${holder.pid}/ns/net`;
  const own = readlinkSync('/proc/self/ns/net');
  await eventually(async () => existsSync(path) && readlinkSync(path) !== own, 5_000, 'a namespace');
  const exec = (...command) => run('nsenter', `--net=${path}`, '--', ...command);
  exec('ip', 'link', 'set', 'lo', 'up');
  // No IPv6 anywhere: duplicate-address detection would change addresses under Chromium.
  exec('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
  return { holder, path, pid: holder.pid, exec, prefix: ['nsenter', `--net=${path}`, '--'] };
}

/** A veth pair from namespace `a` (or the test's own, null) to `b`, addressed and up. */
function link(a, aName, aAddress, b, bName, bAddress) {
  const where = (ns) => (ns ? ['netns', String(ns.pid)] : []);
  run('ip', 'link', 'add', `lab${bName}${b.pid}`, 'type', 'veth', 'peer', 'name', `lab${aName}${b.pid}`);
  const [aTmp, bTmp] = [`lab${aName}${b.pid}`, `lab${bName}${b.pid}`];
  run('ip', 'link', 'set', bTmp, ...where(b), 'name', bName);
  if (a) run('ip', 'link', 'set', aTmp, ...where(a), 'name', aName);
  const inA = a ? a.exec : run;
  const aDev = a ? aName : aTmp;
  if (!a) run('sh', '-c', `echo 1 > /proc/sys/net/ipv6/conf/${aTmp}/disable_ipv6`);
  inA('ip', 'addr', 'add', aAddress, 'dev', aDev);
  inA('ip', 'link', 'set', aDev, 'up');
  b.exec('ip', 'addr', 'add', bAddress, 'dev', bName);
  b.exec('ip', 'link', 'set', bName, 'up');
  return aDev;
}

/**
 * The home router's nftables: forwards from the LAN, replies back in, and whatever miniupnpd
 * adds to its chains (in one `inet filter` table, as miniupnpd-nftables expects); masquerade
 * out of the WAN keeps ports (endpoint-independent).
 */
const HOME_ROUTER_RULES = `
table inet filter {
  chain miniupnpd {
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" accept
    ct status dnat accept
    jump miniupnpd
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan0" masquerade
  }
}
`;

/** A NAT's nftables table `name`: masquerade out of `wan0`, with `options` (e.g. fully-random). */
const natRules = (name, options = '') => `
table ip ${name} {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    oifname "wan0" masquerade ${options}
  }
}
`;

/** The carrier's NAT: symmetric (a new port for every destination), as phone networks are. */
const CARRIER_RULES = natRules('carrier', 'fully-random');

/** A carrier that lets no UDP through (some do, besides DNS): only TCP leaves the phone. */
const CARRIER_DROPS_UDP = `
table ip carrier_filter {
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "lan0" meta l4proto udp drop
  }
}
`;

/** The internet provider's NAT in front of the home (CGNAT): the home router gets 100.64.0.2. */
const ISP_RULES = natRules('isp');

/**
 * Builds the lab. `router`: which protocols the home router's miniupnpd speaks, `{ upnp,
 * pcp, igdV1 }` (upnp and pcp false: no miniupnpd, a router with no port mapping); `cgnat`: the home behind
 * its provider's NAT; `carrierDropsUdp`: the phone's carrier lets only TCP through;
 * `manualForwards`: forwards made by hand on the home router, `[['tcp', 8443], ...]`. Returns:
 * - `inHome`, `inPublicHost`: command prefixes that run a program on the device's LAN (the
 *   daemon) or on the public host;
 * - `phoneChromium`, `homeChromium`: Chromium executables in the phone and on the home LAN;
 * - `forwards()`: the home router's DNAT rules now (miniupnpd's chain);
 * - `routerLog`: what miniupnpd said;
 * - `close()`: everything removed.
 */
export async function natLab({
  router = { upnp: true, pcp: true }, cgnat = false, carrierDropsUdp = false, manualForwards = [],
} = {}) {
  const made = [];
  const dir = mkdtempSync(join(tmpdir(), 'peercam-lab-'));
  try {
    const home = await namespace();
    made.push(home);
    const gateway = await namespace();
    made.push(gateway);
    const carrier = await namespace();
    made.push(carrier);
    const phone = await namespace();
    made.push(phone);
    const publicHost = await namespace();
    made.push(publicHost);
    const isp = cgnat ? await namespace() : null;
    if (isp) made.push(isp);
    run('sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (const ns of [gateway, carrier, isp].filter(Boolean)) ns.exec('sysctl', '-qw', 'net.ipv4.ip_forward=1');

    link(gateway, 'lan0', '192.168.77.1/24', home, 'eth0', `${DEVICE_LAN_ADDRESS}/24`);
    home.exec('ip', 'route', 'add', 'default', 'via', '192.168.77.1');
    const wanLinks = [];
    if (isp) {
      // The provider's NAT holds the public address; the home router gets a shared one.
      link(isp, 'lan0', '100.64.0.1/24', gateway, 'wan0', '100.64.0.2/24');
      gateway.exec('ip', 'route', 'add', 'default', 'via', '100.64.0.1');
      wanLinks.push(link(null, 'wan', '31.77.1.1/24', isp, 'wan0', `${HOME_PUBLIC_ADDRESS}/24`));
      isp.exec('ip', 'route', 'add', 'default', 'via', '31.77.1.1');
      isp.exec('nft', '-f', writeFile(dir, 'isp.nft', ISP_RULES));
    } else {
      wanLinks.push(link(null, 'wan', '31.77.1.1/24', gateway, 'wan0', `${HOME_PUBLIC_ADDRESS}/24`));
      gateway.exec('ip', 'route', 'add', 'default', 'via', '31.77.1.1');
    }
    wanLinks.push(link(null, 'pub', '31.77.3.1/24', publicHost, 'eth0', `${PUBLIC_HOST_ADDRESS}/24`));
    publicHost.exec('ip', 'route', 'add', 'default', 'via', '31.77.3.1');
    wanLinks.push(link(null, 'wan', '31.77.2.1/24', carrier, 'wan0', '31.77.2.2/24'));
    carrier.exec('ip', 'route', 'add', 'default', 'via', '31.77.2.1');
    link(carrier, 'lan0', '10.64.0.1/24', phone, 'eth0', '10.64.0.2/24');
    phone.exec('ip', 'route', 'add', 'default', 'via', '10.64.0.1');
    gateway.exec('nft', '-f', writeFile(dir, 'home.nft', HOME_ROUTER_RULES));
    for (const [protocol, port] of manualForwards) {
      gateway.exec('nft', 'add', 'rule', 'inet', 'filter', 'prerouting', 'iifname', 'wan0', protocol,
        'dport', String(port), 'dnat', 'ip', 'to', `${DEVICE_LAN_ADDRESS}:${port}`);
    }
    carrier.exec('nft', '-f', writeFile(dir, 'carrier.nft', CARRIER_RULES));
    if (carrierDropsUdp) carrier.exec('nft', '-f', writeFile(dir, 'carrier-udp.nft', CARRIER_DROPS_UDP));

    let miniupnpd = null;
    let routerLog = '';
    if (router.upnp || router.pcp) {
      const config = writeFile(dir, 'miniupnpd.conf', [
        'ext_ifname=wan0', 'listening_ip=lan0', 'http_port=0',
        `enable_upnp=${router.upnp ? 'yes' : 'no'}`, `enable_natpmp=${router.pcp ? 'yes' : 'no'}`,
        // An IGDv1 router (WANIPConnection:1), as older routers are; else miniupnpd's IGDv2.
        `force_igd_desc_v1=${router.igdV1 ? 'yes' : 'no'}`,
        'secure_mode=yes', 'system_uptime=yes', 'uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b',
        `lease_file=${join(dir, 'leases')}`,
        'allow 1024-65535 192.168.77.0/24 1024-65535', 'deny 0-65535 0.0.0.0/0 0-65535', '',
      ].join('\n'));
      miniupnpd = spawn(...spawnIn(gateway, ['miniupnpd', '-d', '-f', config]), { stdio: ['ignore', 'pipe', 'pipe'] });
      miniupnpd.stdout.on('data', (c) => { routerLog += c; });
      miniupnpd.stderr.on('data', (c) => { routerLog += c; });
      await eventually(async () => /Listening for NAT-PMP|HTTP listening/.test(routerLog) || miniupnpd.exitCode !== null,
        5_000, 'miniupnpd to start');
      if (miniupnpd.exitCode !== null) throw new Error(`miniupnpd exited:\n${routerLog}`);
    }
    const chromiumIn = (ns, name) => {
      const executable = join(dir, name);
      writeFileSync(executable, `#!/bin/sh\nexec ${ns.prefix.join(' ')} /usr/bin/chromium "$@"\n`, { mode: 0o755 });
      return executable;
    };
    return {
      inHome: home.prefix,
      inPublicHost: publicHost.prefix,
      /** Runs `command` on the public host in the background; `stop()` ends it. */
      startOnPublicHost: (command) => startIn(publicHost, command),
      startInHome: (command) => startIn(home, command),
      /** Takes the home's link to the internet down (`false`) or brings it back (`true`). */
      homeOnline(up) {
        gateway.exec('ip', 'link', 'set', 'wan0', up ? 'up' : 'down');
        // Down took the default route with it.
        if (up) gateway.exec('ip', 'route', 'replace', 'default', 'via', cgnat ? '100.64.0.1' : '31.77.1.1');
      },
      phoneChromium: chromiumIn(phone, 'phone-chromium'),
      homeChromium: chromiumIn(home, 'home-chromium'),
      forwards: () => gateway.exec('nft', 'list', 'chain', 'inet', 'filter', 'prerouting_miniupnpd')
        .split('\n').filter((line) => line.includes('dnat')).map((line) => line.trim()),
      get routerLog() { return routerLog; },
      async close() {
        if (miniupnpd && miniupnpd.exitCode === null) {
          miniupnpd.kill('SIGTERM');
          await new Promise((r) => { miniupnpd.once('exit', r); setTimeout(r, 3000); });
        }
        for (const dev of wanLinks) {
          try { run('ip', 'link', 'del', dev); } catch { /* gone with its namespace */ }
        }
        cleanUp(made, dir);
      },
    };
  } catch (e) {
    cleanUp(made, dir);
    throw e;
  }
}

function cleanUp(namespaces, dir) {
  for (const ns of namespaces) ns.holder.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}

function writeFile(dir, name, text) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A long-running program inside `ns`: { child, output, stop() }. */
function startIn(ns, command) {
  const child = spawn(...spawnIn(ns, command), { stdio: ['ignore', 'pipe', 'pipe'] });
  const started = { child, output: '' };
  child.stdout.on('data', (c) => { started.output += c; });
  child.stderr.on('data', (c) => { started.output += c; });
  started.stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => { child.once('exit', r); setTimeout(r, 3000); });
  };
  return started;
}

/** `spawn` arguments that run `command` inside `ns`. */
function spawnIn(ns, command) {
  return [ns.prefix[0], [...ns.prefix.slice(1), ...command]];
}
