// Figures for calls on poor networks in headless Chromium (not a test: nothing is asserted).
// Run by scripts/bench (inside its network namespace: degradeLoopback shapes its loopback).
// For each network: frames decoded per second after the first 5 s, freezes (Chromium's
// freezeCount: a frame later than 3 frame intervals or 150 ms over the mean), the received
// video bitrate and the device's adaptive target every 5 s. One JSON line per network. Then a
// phone whose network changes (twoNetworkPhone): CHANGES times the link the call uses is
// taken away (and the other brought back), and the time until the picture moves again is
// recorded. One JSON line.
import {
  PHONE_DEVICE_ADDRESS, callButton, degradeLoopback, eventually, hangUpButton, inbound,
  launchBrowser, openPage, startDaemon, twoNetworkPhone, waitForFrames, waitUntilIdle,
} from '../harness.mjs';

const SECONDS = Number(process.env.SECONDS ?? 30);
const NETWORKS = [
  { name: 'clean loopback' },
  { name: '1 Mbit/s bottleneck (tbf)', rateKbit: 1000 },
  { name: '5% random UDP loss', lossPercent: 5 },
  { name: '10% random UDP loss', lossPercent: 10 },
];
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

const daemon = await startDaemon(process.env.TOML ?? '');
const browser = await launchBrowser();
const page = await openPage(browser, daemon.url);
for (const network of NETWORKS) {
  const restore = degradeLoopback(network);
  try {
    await callButton(page).click();
    await waitForFrames(page, 0, 30_000);
    await sleep(5_000);
    const first = await inbound(page, 'video');
    const targets = [];
    let last = first;
    const samples = [];
    for (let t = 0; t < SECONDS; t += 5) {
      await sleep(5_000);
      const now = await inbound(page, 'video');
      samples.push(Math.round(((now.bytesReceived - last.bytesReceived) * 8) / 5 / 1000));
      targets.push((await daemon.metrics()).peercam_video_target_kbps);
      last = now;
    }
    console.log(JSON.stringify({
      network: network.name,
      seconds: SECONDS,
      fps: Number(((last.framesDecoded - first.framesDecoded) / SECONDS).toFixed(1)),
      freezes: last.freezeCount - first.freezeCount,
      freezeSeconds: Number((last.totalFreezesDuration - first.totalFreezesDuration).toFixed(2)),
      receivedKbps: samples,
      targetKbps: targets,
    }));
    await hangUpButton(page).click();
    await waitUntilIdle(daemon);
  } finally {
    restore();
  }
}
await browser.close();
await daemon.stop();

const CHANGES = Number(process.env.CHANGES ?? 5);
const phone = await twoNetworkPhone({ preferred: 'lte' });
const phoneDaemon = await startDaemon(`${process.env.TOML ?? ''}\n[ice]\nlocal_addresses = ["${PHONE_DEVICE_ADDRESS}"]\n`);
const phoneBrowser = await launchBrowser({ executable: phone.executable });
try {
  const call = await openPage(phoneBrowser, `https://${PHONE_DEVICE_ADDRESS}:${phoneDaemon.port}/`);
  await callButton(call).click();
  await waitForFrames(call, 30, 30_000);
  const pictureBack = [];
  let away = null;
  for (let change = 0; change < CHANGES; change++) {
    const link = await phone.busiestLink();
    if (away) phone.bringBack(away);
    await sleep(2_000);
    phone.takeAway(link);
    away = link;
    const cut = Date.now();
    const before = (await inbound(call, 'video'))?.framesDecoded ?? 0;
    // The page's peer is replaced on resume: frames restart from zero on the new one.
    await eventually(async () => {
      const now = (await inbound(call, 'video'))?.framesDecoded ?? 0;
      return now > 0 && (now < before || now > before + 5) ? now : null;
    }, 30_000, 'the picture back');
    pictureBack.push(Number(((Date.now() - cut) / 1000).toFixed(2)));
    await waitForFrames(call, 30, 30_000);
  }
  const metrics = await phoneDaemon.metrics();
  console.log(JSON.stringify({
    network: 'network change (the link in use taken away)',
    pictureBackSeconds: pictureBack,
    resumed: metrics.peercam_calls_resumed_total,
    callsStarted: metrics.peercam_calls_started_total,
  }));
} finally {
  await phoneBrowser.close();
  await phoneDaemon.stop();
  phone.close();
}
