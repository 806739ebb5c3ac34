// Figures for calls on poor networks in headless Chromium (not a test: nothing is asserted).
// Run by scripts/bench (inside its network namespace: degradeLoopback shapes its loopback).
// For each network: frames decoded per second after the first 5 s, freezes (Chromium's
// freezeCount: a frame later than 3 frame intervals or 150 ms over the mean), the received
// video bitrate and the device's adaptive target every 5 s. One JSON line per network.
import {
  callButton, degradeLoopback, hangUpButton, inbound, launchBrowser, openPage, startDaemon,
  waitForFrames, waitUntilIdle,
} from './harness.mjs';

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
