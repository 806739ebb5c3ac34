// The network check page: connects to the device for real, as a call would (a receive-only
// WHEP session: ICE with the device's own candidates and DTLS, through every server the device
// hands out), and says which path would carry a call; then checks each TURN server alone,
// relay-only, so a TURN server that answers but cannot relay (its relay ports firewalled, the
// classic coturn mistake) is told apart from one that works. When nothing works it says what
// to fix, in the owner's words.
import { parseCandidate } from './debug.js';

const $ = (id) => document.getElementById(id);
const GATHER_TIMEOUT_MS = 8000;
const CONNECT_TIMEOUT_MS = 10000;

function row(c, attempt) {
  const tr = document.createElement('tr');
  tr.dataset.type = c.type;
  for (const text of [c.type, c.protocol, c.address, String(c.port), attempt]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  $('candidates').append(tr);
}

/** The selected pair's two candidates, from the connection's statistics. */
async function selectedPair(pc) {
  const stats = await pc.getStats();
  for (const s of stats.values()) {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      return {
        local: { type: local.candidateType, protocol: local.protocol, relayProtocol: local.relayProtocol ?? null },
        remote: { type: remote.candidateType, address: remote.address, port: remote.port },
      };
    }
  }
  return null;
}

/** A STUN or TURN URL's host and port, e.g. `31.77.3.2:3478`. */
const serverOf = (url) => url.replace(/^[a-z]+:/, '').replace(/\?.*$/, '');

/**
 * Whether one of `config`'s stun: servers answered. A browser also asks its TURN servers for
 * its address (Chromium reports those candidates as `stun:<TURN host>`), so a server-reflexive
 * candidate alone proves nothing: its `url` in the statistics names the server that gave it.
 * Where a browser does not say, any server-reflexive candidate counts.
 */
async function stunServerAnswered(pc, config, found) {
  const stunServers = config.iceServers.flatMap((s) => s.urls)
    .filter((url) => /^stuns?:/.test(url)).map(serverOf);
  const reflexive = [...(await pc.getStats()).values()]
    .filter((s) => s.type === 'local-candidate' && s.candidateType === 'srflx');
  if (reflexive.every((s) => s.url === undefined)) return found.has('srflx');
  return reflexive.some((s) => stunServers.includes(serverOf(s.url ?? '')));
}

/**
 * One real connection to the device with `config`: gathers (showing each candidate under
 * `label`), offers over WHEP, waits for ICE and DTLS. Resolves with what it found:
 * { found: Set of candidate types, stunAnswered (a server-reflexive candidate came from a
 * stun: server, not from a TURN server's allocation), connected, pair, refused }.
 */
async function attempt(config, label) {
  const pc = new RTCPeerConnection(config);
  const found = new Set();
  const result = (rest) => ({ found, stunAnswered, ...rest });
  let stunAnswered = false;
  let session = null;
  try {
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const gathered = new Promise((resolve) => {
      pc.addEventListener('icecandidate', (event) => {
        if (!event.candidate) return resolve();
        const c = parseCandidate(event.candidate.candidate);
        if (!c) return;
        found.add(c.type);
        row(c, label);
      });
      setTimeout(resolve, GATHER_TIMEOUT_MS);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered;
    stunAnswered = await stunServerAnswered(pc, config, found);
    if (config.iceTransportPolicy === 'relay' && !found.has('relay')) {
      // Relay-only with no relay address: nothing could connect; the device is not asked.
      return result({ connected: false, pair: null, refused: null });
    }
    const response = await fetch('/whep', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) {
      return result({ connected: false, pair: null, refused: `${response.status} ${(await response.text()).trim()}` });
    }
    session = response.headers.get('location');
    const connected = new Promise((resolve) => {
      const settle = () => {
        if (pc.connectionState === 'connected') resolve(true);
        if (pc.connectionState === 'failed') resolve(false);
      };
      pc.addEventListener('connectionstatechange', settle);
      setTimeout(() => resolve(false), CONNECT_TIMEOUT_MS);
    });
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    const ok = await connected;
    return result({ connected: ok, pair: ok ? await selectedPair(pc) : null, refused: null });
  } finally {
    pc.close();
    if (session) fetch(session, { method: 'DELETE', credentials: 'same-origin' }).catch(() => {});
  }
}

/** The path a connected call takes, in the owner's words. */
function describePath(pair, remote) {
  const { local, remote: device } = pair;
  if (local.type === 'relay') {
    return `relayed by your TURN server over ${(local.relayProtocol ?? 'udp').toUpperCase()}`;
  }
  if (device.type === 'relay') return 'relayed by the device\'s TURN server';
  if (remote?.externalAddress && device.address === remote.externalAddress) {
    return `through the home router's port forward (port mapping: ${device.address}:${device.port})`;
  }
  if (device.type === 'srflx') return `to the device's public address ${device.address}:${device.port}`;
  return 'directly, on the same network as the device';
}

/** TURN servers one by one: { url, server } for each URL the device hands out. */
function turnServers(config) {
  return config.iceServers.flatMap((server) => server.urls
    .filter((url) => /^turns?:/.test(url))
    .map((url) => ({ url, server: { ...server, urls: [url] } })));
}

function transportOf(url) {
  if (url.startsWith('turns:')) return 'TLS';
  return /transport=tcp/.test(url) ? 'TCP' : 'UDP';
}

/** Why a call cannot connect, from what was gathered. */
function whyNot(config, call, turns, remote) {
  const anyRelay = turns.some(({ result }) => result.connected);
  if (config.iceTransportPolicy === 'relay' && !call.found.has('relay')) {
    return 'calls are relay-only and no TURN server gave this browser a relay address.';
  }
  if (turns.length === 0) {
    const outside = remote?.portMapping && !remote.publicUrl;
    return 'no direct path, and no TURN server to relay the call' +
      (outside ? ` (port mapping: ${remote.problem ?? 'no answer from the router yet'}).` :
        ': behind a mobile carrier\'s NAT a call needs TURN, or port mapping on the home router (README, "Calling from outside").');
  }
  return anyRelay ? 'the device could not reach the relay with its own candidates.' : 'no path, and no TURN server relays (below).';
}

/** Says what happened: { ok, text } from the call attempt and the per-TURN attempts. */
function verdict(config, call, turns, remote) {
  const urls = config.iceServers.flatMap((s) => s.urls);
  const hasStun = urls.some((u) => u.startsWith('stun'));
  const parts = [];
  if (call.refused) {
    parts.push(`The device refused the check: ${call.refused}.`);
  } else if (call.connected && call.pair) {
    parts.push(`A call from this browser connects: ${describePath(call.pair, remote)}.`);
  } else {
    parts.push(`A call from this browser cannot connect: ${whyNot(config, call, turns, remote)}`);
  }
  if (!hasStun) parts.push('STUN: no STUN server configured.');
  else if (config.iceTransportPolicy === 'relay') parts.push('STUN: not used (relay-only calls).');
  else parts.push(call.stunAnswered ? 'STUN works: this browser learned its address.' : 'STUN does not work: no STUN server answered (from outside the home: the STUN port is not forwarded to the device).');
  if (turns.length === 0) parts.push('TURN: no TURN server configured.');
  for (const { url, result } of turns) {
    const how = `TURN over ${transportOf(url)} (${url})`;
    if (result.connected) parts.push(`${how} works: media can be relayed.`);
    else if (result.found.has('relay')) parts.push(`TURN does not work: ${how} answers and gives a relay address, but media cannot pass it: its relay ports are closed (open coturn's min-port to max-port, UDP, on the TURN host's firewall; and set external-ip behind a NAT).`);
    else parts.push(`TURN does not work: ${how} gave no relay address (check that it is running, its port is open, and its secret or user matches the device's).`);
  }
  return { ok: Boolean(call.connected), text: parts.join(' ') };
}

async function check() {
  $('candidates').replaceChildren();
  $('verdict').dataset.state = 'running';
  $('verdict').textContent = 'Checking…';
  const config = await (await fetch('/api/ice-servers', { cache: 'no-store' })).json();
  const remote = await fetch('/api/remote', { cache: 'no-store' }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  $('servers').textContent = `ICE servers: ${config.iceServers.flatMap((s) => s.urls).join(', ') || 'none'}` +
    (config.iceTransportPolicy === 'relay' ? ' (relay only)' : '');
  $('remote').textContent = remote?.portMapping
    ? `From outside the home: ${remote.publicUrl ?? 'not reachable'}${remote.problem ? ` (${remote.problem})` : ''}`
    : 'From outside the home: port mapping is off.';
  const call = await attempt(config, 'call');
  const turns = [];
  for (const { url, server } of turnServers(config)) {
    // One at a time: the device takes a few viewers at once.
    const result = await attempt({ iceServers: [server], iceTransportPolicy: 'relay' }, `TURN ${transportOf(url)}`);
    turns.push({ url, result });
  }
  const result = verdict(config, call, turns, remote);
  $('verdict').dataset.state = result.ok ? 'ok' : 'failed';
  $('verdict').textContent = result.text;
}

$('run').addEventListener('click', check);
check();
