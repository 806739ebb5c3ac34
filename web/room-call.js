// Named rooms: two browsers see and hear each other, as in the tutorials; the device only
// relays signaling. If the other person leaves or reloads, this side resets its connection and
// waits; if this side's socket drops, it reconnects and rejoins by itself.
import { Signaling, outgoing, signalingUrl } from './signaling.js';
import { Peer } from './peer.js';
import { debugPanel } from './debug.js';
import { clearRemote, setMode, setStatus, showRemote, ui } from './ui.js';

const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

/** The room session, or null when not in a room. */
let session = null;

export const roomCall = {
  get peer() { return session?.peer ?? null; },
};

export function roomFromUrl() {
  return new URLSearchParams(location.search).get('room');
}

/** Joins `name`: asks for the camera and microphone, then connects. */
export async function joinRoom(name) {
  if (session) return;
  if (!ROOM_NAME.test(name)) {
    setStatus('error', 'Room names are 1 to 64 letters, digits, "-", "_" or "."');
    return;
  }
  session = { name, media: null, screen: null, signaling: null, peer: null, ice: {}, attempts: 0 };
  const current = session;
  setMode('room');
  debugPanel.reset();
  setStatus('connecting', 'Asking for your camera and microphone…');
  try {
    current.media = await navigator.mediaDevices.getUserMedia({
      video: true,
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (e) {
    if (session === current) leaveRoom('error', `Camera or microphone not available: ${e.message}`);
    return;
  }
  if (session !== current) return;
  ui.local.srcObject = current.media;
  const url = new URL(location.href);
  url.searchParams.set('room', name);
  history.replaceState(null, '', url);
  connect(current);
}

function connect(current) {
  setStatus('connecting', `Connecting to room ${current.name}…`);
  const send = (message) => current.signaling.send(message);
  current.signaling = new Signaling(signalingUrl(location), {
    created: (m) => {
      current.ice = m;
      current.attempts = 0;
      waiting(current, `Waiting for someone to join room ${current.name}…`);
    },
    joined: (m) => {
      current.ice = m;
      current.attempts = 0;
      setStatus('connecting', `Joined room ${current.name}; connecting…`);
    },
    ready: (m) => {
      startPeer(current, send);
      if (m.initiator) current.peer.offer().catch((e) => fail(current, e));
    },
    offer: (m) => {
      if (!current.peer) startPeer(current, send);
      current.peer.answer(m.sdp).catch((e) => fail(current, e));
    },
    answer: (m) => current.peer?.accept(m.sdp).catch((e) => fail(current, e)),
    candidate: (m) => current.peer?.addCandidate(m),
    bye: (m) => waiting(current, `${m.reason}. Waiting for someone to join room ${current.name}…`),
    full: () => leaveRoom('full', `Room ${current.name} is full: two people are in it already.`),
    error: (m) => {
      console.warn('peercam: server says', m);
      if (!current.peer) leaveRoom('error', m.message);
    },
  }, () => reconnect(current));
  current.signaling.opened
    .then(() => send(outgoing.join(current.name)))
    .catch(() => {});
}

function startPeer(current, send) {
  current.peer?.close();
  clearRemote();
  current.peer = new Peer({
    ice: current.ice,
    send,
    onTrack: (stream) => {
      showRemote(stream);
      ui.stage.classList.add('live');
    },
    onState: (state) => {
      if (session !== current) return;
      if (state === 'connected') setStatus('in-call', `In room ${current.name}`);
      if (state === 'failed') waiting(current, 'The connection failed (no network path). Waiting…');
    },
  });
  const video = current.screen?.getVideoTracks()[0];
  for (const track of current.media.getTracks()) {
    const sending = track.kind === 'video' && video ? video : track;
    current.peer.pc.addTrack(sending, current.media);
  }
}

/** Resets the connection to the other person and waits for the next `ready`. */
function waiting(current, text) {
  if (session !== current) return;
  current.peer?.close();
  current.peer = null;
  clearRemote();
  setStatus('waiting', text);
}

function fail(current, error) {
  console.warn('peercam: room call step failed', error);
  waiting(current, `Call setup failed (${error.message}). Waiting…`);
}

/** The socket dropped without us leaving: reset, then rejoin with a growing delay. */
function reconnect(current) {
  if (session !== current) return;
  current.peer?.close();
  current.peer = null;
  clearRemote();
  const delay = RECONNECT_DELAYS_MS[Math.min(current.attempts, RECONNECT_DELAYS_MS.length - 1)];
  current.attempts += 1;
  setStatus('connecting', `Lost the connection to the server; reconnecting in ${delay / 1000} s…`);
  setTimeout(() => {
    if (session === current) connect(current);
  }, delay);
}

/** Leaves the room (if in one) and shows `text`. */
export function leaveRoom(state = 'ended', text = 'You left the room.') {
  const current = session;
  session = null;
  if (current) {
    current.signaling?.send(outgoing.bye());
    current.signaling?.close();
    current.peer?.close();
    for (const stream of [current.media, current.screen]) stream?.getTracks().forEach((t) => t.stop());
  }
  ui.local.srcObject = null;
  clearRemote();
  const url = new URL(location.href);
  if (url.searchParams.has('room')) {
    url.searchParams.delete('room');
    history.replaceState(null, '', url);
  }
  setMode('idle');
  setStatus(state, text);
}

/** Mutes or unmutes this side's microphone (or camera, for kind 'video'). */
export function toggleMute(kind, button) {
  const tracks = session?.media?.getTracks().filter((t) => t.kind === kind) ?? [];
  if (!tracks.length) return;
  const muted = button.getAttribute('aria-pressed') !== 'true';
  for (const track of tracks) track.enabled = !muted;
  button.setAttribute('aria-pressed', String(muted));
}

/** Sends the screen instead of the camera, or goes back to the camera. */
export async function toggleScreen() {
  const current = session;
  if (!current) return;
  const sender = current.peer?.pc.getSenders().find((s) => s.track?.kind === 'video');
  if (current.screen) {
    current.screen.getTracks().forEach((t) => t.stop());
    current.screen = null;
    ui.shareScreen.setAttribute('aria-pressed', 'false');
    ui.local.srcObject = current.media;
    await sender?.replaceTrack(current.media.getVideoTracks()[0]);
    return;
  }
  try {
    current.screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
  } catch (e) {
    setStatus(ui.status.dataset.state, `Screen sharing not started: ${e.message}`);
    return;
  }
  const track = current.screen.getVideoTracks()[0];
  track.addEventListener('ended', () => {
    if (session === current && current.screen) toggleScreen();
  });
  ui.shareScreen.setAttribute('aria-pressed', 'true');
  ui.local.srcObject = current.screen;
  await sender?.replaceTrack(track);
}

export function onPageHide() {
  session?.signaling?.send(outgoing.bye());
}
