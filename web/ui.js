// The page's elements and the few things every part of the page does to them.

const $ = (id) => document.getElementById(id);

export const ui = {
  stage: $('stage'),
  remote: $('remote'),
  local: $('local'),
  status: $('status'),
  deviceControls: $('device-controls'),
  call: $('call'),
  watch: $('watch'),
  stopWatching: $('stop-watching'),
  talk: $('talk'),
  hangup: $('hangup'),
  roomForm: $('room-form'),
  roomName: $('room-name'),
  connect: $('connect'),
  leave: $('leave'),
  roomControls: $('room-controls'),
  muteMic: $('mute-mic'),
  muteCamera: $('mute-camera'),
  shareScreen: $('share-screen'),
  unmute: $('unmute'),
};

/**
 * Shows `stream` in the remote video and plays it with sound where the browser allows that
 * (a page the user tapped Call on); where it does not (iOS Safari, or a call started without a
 * tap) the picture plays muted, as `muted autoplay playsinline` always may, and a button
 * offers the sound: one tap unmutes.
 */
export function showRemote(stream) {
  if (ui.remote.srcObject === stream) return;
  ui.remote.srcObject = stream;
  ui.remote.muted = false;
  ui.remote.play().catch((e) => {
    if (e.name !== 'NotAllowedError' || ui.remote.srcObject !== stream) return;
    ui.remote.muted = true;
    ui.remote.play().catch(() => {});
    ui.unmute.hidden = false;
  });
}

ui.unmute.addEventListener('click', () => {
  ui.remote.muted = false;
  ui.remote.play().catch(() => {});
  ui.unmute.hidden = true;
});

/** `state` is one of idle, connecting, waiting, in-call, reconnecting, busy, full, ended, error. */
export function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

const show = (element, visible) => {
  element.hidden = !visible;
  if ('disabled' in element) element.disabled = !visible;
};

/**
 * Shows only the controls that make sense now: 'idle', 'device' (calling it), 'watch'
 * (watching it; no Talk, which is the caller's) or 'room'.
 */
export function setMode(mode) {
  document.body.dataset.mode = mode;
  show(ui.call, mode === 'idle');
  show(ui.watch, mode === 'idle');
  show(ui.hangup, mode === 'device');
  show(ui.stopWatching, mode === 'watch');
  show(ui.talk, mode === 'idle' || mode === 'device');
  show(ui.connect, mode === 'idle');
  show(ui.leave, mode === 'room');
  ui.roomName.disabled = mode !== 'idle';
  ui.deviceControls.hidden = mode === 'room';
  ui.roomControls.hidden = mode !== 'room';
  ui.local.hidden = mode !== 'room';
  ui.stage.classList.toggle('room', mode === 'room');
  if (mode !== 'room') {
    for (const button of [ui.muteMic, ui.muteCamera, ui.shareScreen]) button.setAttribute('aria-pressed', 'false');
  }
}

export function clearRemote() {
  ui.remote.srcObject = null;
  ui.unmute.hidden = true;
  ui.stage.classList.remove('live');
}
