// Watching the device without calling it: a receive-only WHEP session (POST /whep, signed in
// by this page's login session) on the device's one encode. It does not take the caller's
// place, sends the device nothing and never offers Talk; `[watchers] max` limits how many
// watch at once, and the device's refusal is shown as it gives it.
import { debugPanel } from './debug.js';
import { onFirstFrame } from './peer.js';
import { clearRemote, setMode, setStatus, showRemote, ui } from './ui.js';

/** The watch in progress, or null: its peer connection and, once answered, its resource. */
let watching = null;

export const deviceWatch = {
  get pc() { return watching?.pc ?? null; },
};

export async function startWatching() {
  if (watching) return;
  const current = { pc: null, resource: null };
  watching = current;
  setMode('watch');
  debugPanel.reset();
  setStatus('connecting', 'Connecting to watch…');
  try {
    const ice = await (await fetch('/api/ice-servers', { cache: 'no-store' })).json();
    if (watching !== current) return;
    const pc = new RTCPeerConnection({
      iceServers: ice.iceServers ?? [],
      iceTransportPolicy: ice.iceTransportPolicy ?? 'all',
      bundlePolicy: 'max-bundle',
    });
    current.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (event) => {
      const stream = event.streams[0] ?? new MediaStream([event.track]);
      showRemote(stream);
      if (event.track.kind === 'video') {
        onFirstFrame(ui.remote, () => { if (watching === current) ui.stage.classList.add('live'); });
      }
    });
    pc.addEventListener('connectionstatechange', () => onState(current));
    // Candidates found before the device has answered wait for the session's resource.
    const early = [];
    pc.addEventListener('icecandidate', ({ candidate }) => {
      if (!candidate?.candidate) return;
      debugPanel.candidate('local', candidate.candidate);
      if (current.resource) trickle(current, candidate);
      else early.push(candidate);
    });
    await pc.setLocalDescription(await pc.createOffer());
    debugPanel.sdp('offer', pc.localDescription.sdp, 'this browser');
    const response = await fetch('/whep', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    const body = await response.text();
    const resource = response.status === 201 ? response.headers.get('Location') : null;
    if (watching !== current) {
      // Stopped while the device was answering: end the session it has just made.
      if (resource) endSession(resource);
      return;
    }
    if (!resource) {
      stopWatching(response.status === 503 ? 'busy' : 'error', `Cannot watch: ${body.trim()}`);
      return;
    }
    current.resource = resource;
    current.etag = response.headers.get('ETag');
    debugPanel.sdp('answer', body, 'the device');
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    for (const candidate of early.splice(0)) trickle(current, candidate);
  } catch (e) {
    if (watching === current) stopWatching('error', `Cannot watch: ${e.message}`);
  }
}

function onState(current) {
  if (watching !== current) return;
  const state = current.pc.connectionState;
  if (state === 'connected') {
    setStatus('in-call', 'Watching the device');
    debugPanel.watchLink(current.pc);
  } else if (state === 'disconnected' || state === 'failed') {
    explainLoss(current, state === 'failed');
  }
}

/**
 * The picture stopped: if the device ended this page's session (a logout elsewhere or a new
 * password ends what it opened), say so at once; otherwise a failed link is just lost, and a
 * disconnected one may still come back.
 */
async function explainLoss(current, failed) {
  const session = await fetch('/api/ice-servers', { cache: 'no-store' }).then((r) => r.status, () => 0);
  if (watching !== current) return;
  if (session === 401) {
    stopWatching('error', 'Watching ended: your session on the device ended (a new password, or a logout). Log in again.');
  } else if (failed) {
    stopWatching('error', 'Lost the connection to the device.');
  }
}

/** Sends one candidate to the session as a trickle-ICE fragment (PATCH). */
async function trickle(current, candidate) {
  const kind = current.pc.getTransceivers().find((t) => t.mid === candidate.sdpMid)?.receiver.track.kind ?? 'video';
  const fragment = `a=ice-ufrag:${candidate.usernameFragment}\r\n`
    + `m=${kind} 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:${candidate.sdpMid}\r\na=${candidate.candidate}\r\n`;
  const response = await fetch(current.resource, {
    method: 'PATCH',
    headers: {
      'Content-Type': 'application/trickle-ice-sdpfrag',
      ...(current.etag ? { 'If-Match': current.etag } : {}),
    },
    body: fragment,
  }).catch(() => null);
  if (response && response.status !== 204) console.warn('peercam: a candidate was refused', await response.text());
}

/** Ends the session on the device; `keepalive` lets it go out while the page unloads. */
function endSession(resource) {
  fetch(resource, { method: 'DELETE', keepalive: true }).catch(() => {});
}

export function stopWatching(state = 'ended', text = 'Stopped watching. Press Watch to watch again.') {
  const current = watching;
  if (!current) return;
  watching = null;
  if (current.resource) endSession(current.resource);
  debugPanel.stopLink();
  current.pc?.close();
  clearRemote();
  setMode('idle');
  setStatus(state, text);
}

/** Tells the device, if possible, that this page is going away. */
export function onPageHide() {
  if (watching?.resource) endSession(watching.resource);
}
