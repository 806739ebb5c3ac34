// Calling the device: it sends its camera and microphone; with Talk on, this browser's
// microphone goes to the device's speaker.
import { DEVICE_ROOM, Signaling, outgoing, signalingUrl } from './signaling.js';
import { Peer, onFirstFrame } from './peer.js';
import { debugPanel } from './debug.js';
import { clearRemote, setMode, setStatus, showRemote, ui } from './ui.js';

/** The call in progress, or null. */
let call = null;
/** The microphone once Talk is on; kept across calls until Talk is pressed again. */
let microphone = null;

export const deviceCall = {
  get peer() { return call?.peer ?? null; },
  lastFirstFrameMs: null,
};

/** Video codecs this browser can receive, e.g. ["VP8", "H264"]; `?codecs=VP8` overrides. */
function receivableCodecs() {
  const forced = new URLSearchParams(location.search).get('codecs');
  if (forced) return forced.split(',').map((c) => c.trim()).filter(Boolean);
  const capabilities = RTCRtpReceiver.getCapabilities?.('video');
  if (!capabilities) return [];
  const names = capabilities.codecs.map((c) => c.mimeType.split('/')[1]);
  return [...new Set(names)].filter((n) => !['rtx', 'red', 'ulpfec', 'flexfec-03'].includes(n));
}

const audioTransceiver = (pc) => pc?.getTransceivers().find((t) => t.receiver.track.kind === 'audio');

/** How long the device's media may go silent (its audio never pauses) before the page
 * takes the path as lost and reconnects. */
const STALL_MS = 1500;
/** How long the page keeps trying to get back to the device before giving up. */
const RECONNECT_LIMIT_MS = 10_000;

export async function startCall() {
  if (call) return;
  const current = {
    peer: null, signaling: null, started: performance.now(), firstFrame: false, resume: null,
    reconnecting: null, connected: false, wasHidden: false,
  };
  call = current;
  hintAudioSession();
  setMode('device');
  debugPanel.reset();
  setStatus('connecting', 'Connecting…');
  if (!(await connectSignaling(current))) {
    if (call === current) endCall('error', 'Cannot reach the device.');
    return;
  }
  current.signaling.send(outgoing.join(DEVICE_ROOM, receivableCodecs()));
}

/** Opens a signaling connection for `current`; false when the device cannot be reached. */
async function connectSignaling(current) {
  current.signaling = new Signaling(signalingUrl(location), signalingHandlers(current), () => {
    if (call !== current) return;
    if (current.resume) reconnect(current, 'the connection to the device closed');
    else endCall('error', 'Lost the connection to the device.');
  });
  try {
    await current.signaling.opened;
    return true;
  } catch {
    return false;
  }
}

function signalingHandlers(current) {
  const send = (message) => current.signaling.send(message);
  return {
    joined: (m) => {
      current.resume = m.resume ?? null;
      current.peer?.close();
      const peer = new Peer({
        ice: m,
        send,
        onTrack: (stream, track) => {
          showRemote(stream);
          if (track.kind === 'video') onFirstFrame(ui.remote, () => markFirstFrame(current));
        },
        // A replaced peer's late events are not this call's any more.
        onState: (state) => { if (current.peer === peer) onPeerState(current, state); },
      });
      current.peer = peer;
      if (!current.reconnecting) setStatus('connecting', 'Connecting… (the device is starting its camera)');
    },
    full: () => endCall('busy', 'The device is busy: someone else is in a call. Press Watch to see it anyway, or try again later.'),
    offer: (m) => current.peer?.answer(m.sdp, answerAudioBothWays)
      .catch((e) => endCall('error', `Call failed: ${e.message}`)),
    candidate: (m) => current.peer?.addCandidate(m),
    bye: (m) => {
      // A phone that went to the background (a phone call, the screen locked) stops
      // answering and the device lets the call go: the page calls again when it is back.
      if (current.wasHidden) callAgainWhenVisible(current, m.reason);
      else endCall('ended', `Call ended: ${m.reason}`);
    },
    error: (m) => {
      console.warn('peercam: device says', m);
      if (current.wasHidden && current.reconnecting) {
        callAgainWhenVisible(current, m.message);
        return;
      }
      // Before the call is up any error ends it, as does a refused resume (the call is over);
      // during it only a media failure does.
      if (!current.peer || current.reconnecting || m.code === 'media-failed') {
        endCall('error', current.reconnecting ? `The call ended while reconnecting: ${m.message}` : `Device error: ${m.message}`);
      }
    },
  };
}

function onPeerState(current, state) {
  if (call !== current) return;
  if (state === 'connected') {
    current.connected = true;
    current.wasHidden = document.hidden;
    if (current.reconnecting) {
      console.info(`peercam: reconnected after ${Math.round(performance.now() - current.reconnecting.since)} ms`);
      current.reconnecting = null;
    }
    setStatus('in-call', 'In call with the device');
    debugPanel.watchLink(current.peer.pc);
    watchForStall(current, current.peer);
  }
  // Only a call that was up is resumed: one that never connected has no path to get back to,
  // and says so at once instead of restarting the device's camera on every try.
  if (state === 'failed' && !current.connected) {
    endCall('error', 'Could not connect to the device: no network path was found between this browser and it. '
      + 'On the home network, check that the phone is on the same Wi-Fi; from outside, see "Calling from outside" in the README.');
  } else if ((state === 'failed' || state === 'disconnected') && current.connected) {
    if (current.resume) reconnect(current, `the connection became ${state}`);
    else if (state === 'failed') endCall('error', 'Lost the connection to the device.');
  }
}

/**
 * Watches `peer` for media that stops arriving: when the phone's network changes, the old
 * path goes silent seconds before the browser's own ICE state says so.
 */
function watchForStall(current, peer) {
  let received = -1;
  let lastProgress = performance.now();
  const timer = setInterval(async () => {
    if (call !== current || current.peer !== peer || current.reconnecting) {
      clearInterval(timer);
      return;
    }
    const stats = await peer.pc.getStats().catch(() => null);
    let bytes = 0;
    stats?.forEach((report) => { if (report.type === 'inbound-rtp') bytes += report.bytesReceived ?? 0; });
    if (bytes > received) {
      received = bytes;
      lastProgress = performance.now();
    } else if (performance.now() - lastProgress > STALL_MS) {
      clearInterval(timer);
      reconnect(current, `no media for ${STALL_MS} ms`);
    }
  }, 250);
}

/**
 * The path to the device is gone (the network changed, or the signaling connection dropped):
 * says "reconnecting", then opens a new signaling connection and resumes the call with its
 * token, trying again until RECONNECT_LIMIT_MS have passed. The device answers with a fresh
 * peer: new ICE credentials and candidates over whatever path exists now.
 */
async function reconnect(current, why) {
  if (current.reconnecting || call !== current) return;
  const since = performance.now();
  current.reconnecting = { since };
  console.info(`peercam: reconnecting: ${why}`);
  setStatus('reconnecting', 'Reconnecting…');
  debugPanel.stopLink();
  let deadline = since + RECONNECT_LIMIT_MS;
  while (call === current && current.reconnecting?.since === since) {
    if (document.hidden) {
      // In the background nothing can be done (iOS suspends the page): wait for it to come
      // back, and give the reconnection its whole time from then.
      await pausedUntilVisible(current);
      deadline = performance.now() + RECONNECT_LIMIT_MS;
      if (call !== current) return;
    }
    current.signaling?.close();
    if (await connectSignaling(current)) {
      current.signaling.send(outgoing.resume(current.resume));
      // The device answers with `joined` and a new offer; if that peer does not connect
      // either, try again.
      await sleep(4000);
      if (current.peer?.pc.connectionState === 'connected') return;
    } else {
      await sleep(1000);
    }
    if (performance.now() > deadline && call === current && current.reconnecting) {
      endCall('error', 'Lost the connection to the device.');
      return;
    }
  }
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** Says the call is paused and waits until the page is visible again. */
async function pausedUntilVisible(current) {
  current.wasHidden = true;
  setStatus('reconnecting', 'Paused while this page is in the background; the call goes on when you come back.');
  while (document.hidden && call === current) {
    await new Promise((resolve) => {
      document.addEventListener('visibilitychange', resolve, { once: true });
    });
  }
}

/**
 * The device ended a call while this page was in the background: a pause, not a hang-up. Once
 * the page is visible again, it calls again (the device is free, or says it is busy).
 */
async function callAgainWhenVisible(current, why) {
  if (call !== current) return;
  console.info(`peercam: the call was let go in the background (${why}); calling again when visible`);
  current.reconnecting ??= { since: performance.now() };
  current.signaling?.close();
  current.peer?.close();
  await pausedUntilVisible(current);
  if (call !== current) return;
  call = null;
  clearRemote();
  await startCall();
}

/**
 * A call in progress notes that its page went to the background; once it has been back and
 * playing for a while, a later end is a real one again.
 */
document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    if (call) call.wasHidden = true;
    return;
  }
  const current = call;
  setTimeout(() => {
    if (call === current && current && !document.hidden && !current.reconnecting
      && current.peer?.pc.connectionState === 'connected') current.wasHidden = false;
  }, 10_000);
});

/**
 * Tells the browser how this page uses sound, where it can be told (Safari's
 * navigator.audioSession): 'playback' while only listening, so the device's sound comes from
 * the loudspeaker; 'play-and-record' while Talk is on, as in a phone call.
 */
function hintAudioSession() {
  if (!navigator.audioSession) return;
  navigator.audioSession.type = microphone ? 'play-and-record' : 'playback';
}

/**
 * Answers the device's audio as send-and-receive even without a microphone, so Talk can start
 * and stop sending later with replaceTrack and no renegotiation.
 */
async function answerAudioBothWays(pc) {
  const audio = audioTransceiver(pc);
  if (!audio) return;
  audio.direction = 'sendrecv';
  if (microphone) await audio.sender.replaceTrack(microphone.getAudioTracks()[0]);
}

function markFirstFrame(current) {
  if (call !== current || current.firstFrame) return;
  current.firstFrame = true;
  deviceCall.lastFirstFrameMs = Math.round(performance.now() - current.started);
  ui.stage.classList.add('live');
  console.info(`peercam: first frame after ${deviceCall.lastFirstFrameMs} ms`);
}

function endCall(state, text) {
  const current = call;
  call = null;
  debugPanel.stopLink();
  // A call the page gives up on is over for the device too: it is not held for a resume.
  if (state === 'error') current?.signaling?.send(outgoing.bye());
  current?.signaling?.close();
  current?.peer?.close();
  clearRemote();
  setMode('idle');
  setStatus(state, text);
}

export function hangUp() {
  if (!call) return;
  call.signaling?.send(outgoing.bye());
  endCall('ended', 'Call ended. Press Call device to call again.');
}

/** Lets the microphone go (Talk off), if Talk was on. */
export async function stopTalk() {
  if (!microphone) return;
  microphone.getTracks().forEach((t) => t.stop());
  microphone = null;
  hintAudioSession();
  ui.talk.setAttribute('aria-pressed', 'false');
  await audioTransceiver(call?.peer?.pc)?.sender.replaceTrack(null);
}

export async function toggleTalk() {
  if (microphone) {
    await stopTalk();
    return;
  }
  try {
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (e) {
    setStatus(call ? ui.status.dataset.state : 'error', `Microphone not available: ${e.message}`);
    return;
  }
  hintAudioSession();
  ui.talk.setAttribute('aria-pressed', 'true');
  await audioTransceiver(call?.peer?.pc)?.sender.replaceTrack(microphone.getAudioTracks()[0]);
}

/** Tells the device, if possible, that this page is going away. */
export function onPageHide() {
  call?.signaling?.send(outgoing.bye());
}
