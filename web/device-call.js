// Calling the device: it sends its camera and microphone; with Talk on, this browser's
// microphone goes to the device's speaker.
import { DEVICE_ROOM, Signaling, outgoing, signalingUrl } from './signaling.js';
import { Peer, onFirstFrame } from './peer.js';
import { debugPanel } from './debug.js';
import { clearRemote, setMode, setStatus, ui } from './ui.js';

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

export async function startCall() {
  if (call) return;
  const current = { peer: null, signaling: null, started: performance.now(), firstFrame: false };
  call = current;
  setMode('device');
  debugPanel.reset();
  setStatus('connecting', 'Connecting…');
  const send = (message) => current.signaling.send(message);
  current.signaling = new Signaling(signalingUrl(location), {
    joined: (m) => {
      current.peer = new Peer({
        ice: m,
        send,
        onTrack: (stream, track) => {
          if (ui.remote.srcObject !== stream) ui.remote.srcObject = stream;
          if (track.kind === 'video') onFirstFrame(ui.remote, () => markFirstFrame(current));
        },
        onState: (state) => {
          if (call !== current) return;
          if (state === 'connected') {
            setStatus('in-call', 'In call with the device');
            debugPanel.watchLink(current.peer.pc);
          }
          if (state === 'failed') endCall('error', 'Could not connect to the device (no network path).');
        },
      });
      setStatus('connecting', 'Connecting… (the device is starting its camera)');
    },
    full: () => endCall('busy', 'The device is busy: someone else is in a call. Try again later.'),
    offer: (m) => current.peer?.answer(m.sdp, answerAudioBothWays)
      .catch((e) => endCall('error', `Call failed: ${e.message}`)),
    candidate: (m) => current.peer?.addCandidate(m),
    bye: (m) => endCall('ended', `Call ended: ${m.reason}`),
    error: (m) => {
      console.warn('peercam: device says', m);
      // Before the call is up any error ends it; during it only a media failure does.
      if (!current.peer || m.code === 'media-failed') endCall('error', `Device error: ${m.message}`);
    },
  }, () => {
    if (call === current) endCall('error', 'Lost the connection to the device.');
  });
  try {
    await current.signaling.opened;
  } catch (e) {
    if (call === current) endCall('error', `Cannot reach the device: ${e.message}`);
    return;
  }
  send(outgoing.join(DEVICE_ROOM, receivableCodecs()));
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

export async function toggleTalk() {
  if (microphone) {
    microphone.getTracks().forEach((t) => t.stop());
    microphone = null;
    ui.talk.setAttribute('aria-pressed', 'false');
    await audioTransceiver(call?.peer?.pc)?.sender.replaceTrack(null);
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
  ui.talk.setAttribute('aria-pressed', 'true');
  await audioTransceiver(call?.peer?.pc)?.sender.replaceTrack(microphone.getAudioTracks()[0]);
}

/** Tells the device, if possible, that this page is going away. */
export function onPageHide() {
  call?.signaling?.send(outgoing.bye());
}
