// The network check page: gathers candidates with the device's ICE servers and says, in plain
// words, whether STUN (server-reflexive candidates) and TURN (relay candidates) work.
import { parseCandidate } from './debug.js';

const $ = (id) => document.getElementById(id);
const GATHER_TIMEOUT_MS = 8000;

function row(c) {
  const tr = document.createElement('tr');
  tr.dataset.type = c.type;
  for (const text of [c.type, c.protocol, c.address, String(c.port)]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  $('candidates').append(tr);
}

function verdict(config, found) {
  const urls = config.iceServers.flatMap((s) => s.urls);
  const hasStun = urls.some((u) => u.startsWith('stun'));
  const hasTurn = urls.some((u) => u.startsWith('turn'));
  const parts = [];
  if (!hasStun) parts.push('STUN: no STUN server configured.');
  else parts.push(found.has('srflx') ? 'STUN works: this browser learned its address.' : 'STUN does not work: no server-reflexive candidate.');
  if (!hasTurn) parts.push('TURN: no TURN server configured.');
  else parts.push(found.has('relay') ? 'TURN works: media can be relayed.' : 'TURN does not work: no relay candidate (check the server and its credentials).');
  const ok = (!hasStun || found.has('srflx')) && (!hasTurn || found.has('relay'));
  return { ok, text: parts.join(' ') };
}

async function check() {
  $('candidates').replaceChildren();
  $('verdict').dataset.state = 'running';
  $('verdict').textContent = 'Checking…';
  const config = await (await fetch('/api/ice-servers', { cache: 'no-store' })).json();
  $('servers').textContent = `ICE servers: ${config.iceServers.flatMap((s) => s.urls).join(', ') || 'none'}` +
    (config.iceTransportPolicy === 'relay' ? ' (relay only)' : '');
  const pc = new RTCPeerConnection(config);
  pc.createDataChannel('check');
  const found = new Set();
  const done = new Promise((resolve) => {
    pc.addEventListener('icecandidate', (event) => {
      if (!event.candidate) return resolve();
      const c = parseCandidate(event.candidate.candidate);
      if (!c) return;
      found.add(c.type);
      row(c);
    });
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
  await pc.setLocalDescription(await pc.createOffer());
  await done;
  pc.close();
  const result = verdict(config, found);
  $('verdict').dataset.state = result.ok ? 'ok' : 'failed';
  $('verdict').textContent = result.text;
}

$('run').addEventListener('click', check);
check();
