// The call page: calls the device, shows its camera, plays its microphone, and (with "Talk")
// sends this phone's microphone to the device's speaker.
import { DEVICE_ROOM, Signaling, outgoing, signalingUrl } from './signaling.js';

const $ = (id) => document.getElementById(id);
const ui = {
  remote: $('remote'),
  stage: document.querySelector('.stage'),
  status: $('status'),
  call: $('call'),
  talk: $('talk'),
  hangup: $('hangup'),
};

/** Everything about the current call; `null` between calls. */
let call = null;
/** The microphone, once the user pressed Talk. Kept across calls until Talk is pressed again. */
let microphone = null;

// Read-only hooks for diagnostics and the browser tests.
window.peercam = {
  get pc() { return call?.pc ?? null; },
  get firstFrameMs() { return call?.firstFrameMs ?? null; },
  lastFirstFrameMs: null,
};

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

/** Only the buttons that make sense now are shown: room for big touch targets on a phone. */
function setButtons(inCall) {
  ui.call.disabled = inCall;
  ui.call.hidden = inCall;
  ui.hangup.disabled = !inCall;
  ui.hangup.hidden = !inCall;
}

/** Video codecs this browser can receive, e.g. ["VP8", "H264", ...]; `?codecs=VP8` overrides. */
function receivableCodecs() {
  const forced = new URLSearchParams(location.search).get('codecs');
  if (forced) return forced.split(',').map((c) => c.trim()).filter(Boolean);
  const capabilities = RTCRtpReceiver.getCapabilities?.('video');
  if (!capabilities) return [];
  const names = capabilities.codecs.map((c) => c.mimeType.split('/')[1]);
  return [...new Set(names)].filter((n) => !['rtx', 'red', 'ulpfec', 'flexfec-03'].includes(n));
}

async function startCall() {
  if (call) return;
  const started = performance.now();
  const current = { pc: null, signaling: null, pendingCandidates: [], started, firstFrameMs: null };
  call = current;
  setButtons(true);
  setStatus('connecting', 'Connecting…');
  current.signaling = new Signaling(signalingUrl(location), {
    joined: (m) => onJoined(current, m),
    full: () => endCall('busy', 'The device is busy: someone else is in a call. Try again later.'),
    offer: (m) => onOffer(current, m).catch((e) => endCall('error', `Call failed: ${e.message}`)),
    candidate: (m) => onCandidate(current, m),
    bye: (m) => endCall('ended', `Call ended: ${m.reason}`),
    error: (m) => onError(current, m),
  }, () => {
    if (call === current) endCall('error', 'Lost the connection to the device.');
  });
  try {
    await current.signaling.opened;
  } catch (e) {
    if (call === current) endCall('error', `Cannot reach the device: ${e.message}`);
    return;
  }
  current.signaling.send(outgoing.join(DEVICE_ROOM, receivableCodecs()));
}

function onJoined(current, message) {
  const pc = new RTCPeerConnection({ iceServers: message.iceServers ?? [], bundlePolicy: 'max-bundle' });
  current.pc = pc;
  pc.addEventListener('icecandidate', (event) => {
    if (event.candidate) current.signaling.send(outgoing.candidate(event.candidate));
  });
  pc.addEventListener('track', (event) => {
    const stream = event.streams[0] ?? new MediaStream([event.track]);
    if (ui.remote.srcObject !== stream) ui.remote.srcObject = stream;
    if (event.track.kind === 'video') watchFirstFrame(current);
  });
  pc.addEventListener('connectionstatechange', () => {
    if (call !== current) return;
    if (pc.connectionState === 'connected') setStatus('in-call', 'In call with the device');
    if (pc.connectionState === 'failed') endCall('error', 'Could not connect to the device (network path failed).');
  });
  setStatus('connecting', 'Connecting… (the device is starting its camera)');
}

async function onOffer(current, message) {
  const pc = current.pc;
  if (!pc) return;
  await pc.setRemoteDescription({ type: 'offer', sdp: message.sdp });
  // Answer the audio as send-and-receive even without a microphone, so that Talk can start and
  // stop sending later with replaceTrack and no renegotiation.
  const audio = pc.getTransceivers().find((t) => t.receiver.track.kind === 'audio');
  if (audio) {
    audio.direction = 'sendrecv';
    if (microphone) await audio.sender.replaceTrack(microphone.getAudioTracks()[0]);
  }
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  current.signaling.send(outgoing.answer(pc.localDescription.sdp));
  for (const candidate of current.pendingCandidates.splice(0)) await addCandidate(pc, candidate);
}

function onCandidate(current, message) {
  const candidate = { candidate: message.candidate, sdpMLineIndex: message.sdpMLineIndex, sdpMid: message.sdpMid };
  if (!current.pc?.remoteDescription) {
    current.pendingCandidates.push(candidate);
    return;
  }
  addCandidate(current.pc, candidate);
}

async function addCandidate(pc, candidate) {
  try {
    await pc.addIceCandidate(candidate);
  } catch (e) {
    console.warn('peercam: ignoring a candidate', e);
  }
}

function onError(current, message) {
  console.warn('peercam: device says', message);
  // Before the call is up any error ends it; during it, only a media failure does (and that
  // also arrives as bye).
  if (!current.pc || message.code === 'media-failed') endCall('error', `Device error: ${message.message}`);
}

/** Notes when the first video frame is shown: the figure a caller feels. */
function watchFirstFrame(current) {
  const mark = () => {
    if (call !== current || current.firstFrameMs !== null) return;
    current.firstFrameMs = Math.round(performance.now() - current.started);
    window.peercam.lastFirstFrameMs = current.firstFrameMs;
    ui.stage.classList.add('live');
    console.info(`peercam: first frame after ${current.firstFrameMs} ms`);
  };
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    ui.remote.requestVideoFrameCallback(mark);
  } else {
    ui.remote.addEventListener('loadeddata', mark, { once: true });
  }
}

/** Ends the current call (if any) and shows why. */
function endCall(state, text) {
  const current = call;
  call = null;
  if (current) {
    current.signaling?.close();
    current.pc?.close();
  }
  ui.remote.srcObject = null;
  ui.stage.classList.remove('live');
  setButtons(false);
  setStatus(state, text);
}

function hangUp() {
  if (!call) return;
  call.signaling?.send(outgoing.bye());
  endCall('ended', 'Call ended. Press Call device to call again.');
}

async function toggleTalk() {
  const audioSender = () => call?.pc?.getTransceivers().find((t) => t.receiver.track.kind === 'audio')?.sender;
  if (microphone) {
    microphone.getTracks().forEach((t) => t.stop());
    microphone = null;
    ui.talk.setAttribute('aria-pressed', 'false');
    await audioSender()?.replaceTrack(null);
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
  await audioSender()?.replaceTrack(microphone.getAudioTracks()[0]);
}

ui.call.addEventListener('click', startCall);
ui.hangup.addEventListener('click', hangUp);
ui.talk.addEventListener('click', toggleTalk);
window.addEventListener('pagehide', () => {
  if (call) call.signaling?.send(outgoing.bye());
});
