// The page: wires the buttons to the three kinds of session. Calling the device
// (device-call.js), watching it (device-watch.js) and named browser-to-browser rooms
// (room-call.js) share the video elements, the status line and the debug panel.
import { deviceCall, hangUp, onPageHide as deviceHide, startCall, stopTalk, toggleTalk } from './device-call.js';
import { deviceWatch, onPageHide as watchHide, startWatching, stopWatching } from './device-watch.js';
import { joinRoom, leaveRoom, onPageHide as roomHide, roomCall, roomFromUrl, toggleMute, toggleScreen } from './room-call.js';
import { setMode, ui } from './ui.js';
import { debugPanel } from './debug.js';

// Read-only hooks for diagnostics and the browser tests.
window.peercam = {
  get pc() { return (deviceCall.peer ?? roomCall.peer)?.pc ?? deviceWatch.pc; },
  get lastFirstFrameMs() { return deviceCall.lastFirstFrameMs; },
};

ui.call.addEventListener('click', startCall);
ui.hangup.addEventListener('click', hangUp);
// A watcher sends the device nothing: a microphone opened by Talk beforehand is let go.
ui.watch.addEventListener('click', () => {
  stopTalk();
  startWatching();
});
ui.stopWatching.addEventListener('click', () => stopWatching());
ui.talk.addEventListener('click', toggleTalk);
ui.roomForm.addEventListener('submit', (event) => {
  event.preventDefault();
  joinRoom(ui.roomName.value.trim());
});
ui.leave.addEventListener('click', () => leaveRoom());
ui.muteMic.addEventListener('click', () => toggleMute('audio', ui.muteMic));
ui.muteCamera.addEventListener('click', () => toggleMute('video', ui.muteCamera));
ui.shareScreen.addEventListener('click', toggleScreen);
ui.shareScreen.dataset.supported = String(Boolean(navigator.mediaDevices?.getDisplayMedia));
window.addEventListener('pagehide', () => {
  deviceHide();
  watchHide();
  roomHide();
});

setMode('idle');
debugPanel.reset();
debugPanel.showRemote();
const room = roomFromUrl();
if (room) {
  ui.roomName.value = room;
  joinRoom(room);
}
