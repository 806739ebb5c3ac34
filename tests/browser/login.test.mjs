// Only the owner can watch: without a session the page sends you to log in, the WebSocket and
// the ICE servers are refused; failed logins are capped per address; the session cookie is
// HttpOnly, Secure and SameSite=Strict; a new password ends every session; a device with no
// password yet pairs with the code it prints; open rooms never open the device.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import {
  PASSWORD, callButton, eventually, exchange, fetchText, launchBrowser, logIn, openPage,
  setPassword, startDaemon, waitForFrames, waitForStatus, watchButton,
} from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** One HTTPS request; resolves with { status, headers, body }. */
function request(port, { method = 'GET', path = '/', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method, headers, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    // A successful WebSocket upgrade arrives as 'upgrade', not as a response.
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: '' });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const form = (password) => ({
  method: 'POST', path: '/login', body: `password=${encodeURIComponent(password)}`,
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
});

const upgrade = (port, cookie) => request(port, {
  path: '/ws',
  headers: {
    connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', origin: `https://127.0.0.1:${port}`,
    ...(cookie ? { cookie } : {}),
  },
});

test('without a session: the page asks to log in, /ws is 401, no ICE servers', async (t) => {
  const daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n');
  t.after(() => daemon.stop());
  const page = await openPage(browser, daemon.url, { loggedIn: false });
  assert.match(page.url(), /\/login$/);
  assert.ok(await page.getByLabel('Password').isVisible());
  assert.equal((await upgrade(daemon.port)).status, 401);
  const ice = await request(daemon.port, { path: '/api/ice-servers' });
  assert.equal(ice.status, 401);
  assert.doesNotMatch(ice.body, /iceServers/);
  assert.equal((await request(daemon.port, { path: '/metrics' })).status, 401);
  await page.context().close();

  const caller = await openPage(browser, daemon.url);
  await callButton(caller).click();
  await waitForFrames(caller, 30);
  await caller.context().close();
});

test('wrong passwords are capped per address; the right one works after the window', async (t) => {
  const daemon = await startDaemon('[login]\nmax_failures = 5\nfailure_window_seconds = 10\n');
  t.after(() => daemon.stop());
  for (let i = 0; i < 5; i++) {
    const wrong = await request(daemon.port, form('not the password'));
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /Wrong password/);
  }
  const sixth = await request(daemon.port, form(PASSWORD));
  assert.equal(sixth.status, 429);
  assert.ok(Number(sixth.headers['retry-after']) >= 1);
  assert.match(sixth.body, /Too many wrong passwords/);
  assert.match(daemon.output, /failed login from 127\.0\.0\.1/);
  // Ten seconds: five tries must fit in the window even on a slow, busy machine.
  await new Promise((r) => setTimeout(r, 10_200));
  const right = await request(daemon.port, form(PASSWORD));
  assert.equal(right.status, 303);
});

test('the session cookie is HttpOnly, Secure, SameSite=Strict; a new password ends it', async (t) => {
  const daemon = await startDaemon('');
  t.after(() => daemon.stop());
  const login = await request(daemon.port, form(PASSWORD));
  assert.equal(login.status, 303);
  const cookie = login.headers['set-cookie'][0];
  for (const flag of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Max-Age=', 'Path=/']) {
    assert.ok(cookie.includes(flag), `${flag} in ${cookie}`);
  }
  const session = cookie.split(';')[0];
  assert.equal((await request(daemon.port, { path: '/api/ice-servers', headers: { cookie: session } })).status, 200);
  assert.equal((await upgrade(daemon.port, session)).status, 101);

  setPassword(daemon.stateDir, 'a brand new password');
  assert.equal((await request(daemon.port, { path: '/api/ice-servers', headers: { cookie: session } })).status, 401,
    'the old session ended with the password change');
  assert.ok(await logIn(daemon.port, 'a brand new password'));
});

test('a new password ends the call and the watching made before it, and each page says why', async (t) => {
  const daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n');
  t.after(() => daemon.stop());
  const caller = await openPage(browser, daemon.url);
  await callButton(caller).click();
  await waitForFrames(caller, 30);
  const watcher = await openPage(browser, daemon.url);
  await watchButton(watcher).click();
  await waitForFrames(watcher, 30);

  setPassword(daemon.stateDir, 'a brand new password');
  const ended = await waitForStatus(caller, 'ended');
  assert.match(ended.text, /password was changed/);
  const stopped = await waitForStatus(watcher, 'error', 20_000);
  assert.match(stopped.text, /your session on the device ended/);
  const cookie = await logIn(daemon.port, 'a brand new password');
  const metrics = await fetchText(daemon.port, '/metrics', cookie);
  assert.match(metrics, /^peercam_viewers 0$/m);
  assert.match(metrics, /^peercam_in_call 0$/m);
  await caller.context().close();
  await watcher.context().close();
});

test('with no password set, the printed pairing link logs a phone in', async (t) => {
  const daemon = await startDaemon('', { password: false });
  t.after(() => daemon.stop());
  const link = await eventually(() => daemon.output.match(/pairing link: (https:\/\/\S+)/), 5_000,
    'the pairing link in the log');
  const code = new URL(link[1]).searchParams.get('code');
  const paired = await request(daemon.port, { path: `/login?code=${encodeURIComponent(code)}` });
  assert.equal(paired.status, 303);
  const session = paired.headers['set-cookie'][0].split(';')[0];
  assert.match(await fetchText(daemon.port, '/api/ice-servers', session), /iceServers/);
  assert.equal((await request(daemon.port, { path: '/login?code=guess' })).status, 401);
  // The link works once: opened again (a shared screenshot, the browser's history) it is refused.
  const again = await request(daemon.port, { path: `/login?code=${encodeURIComponent(code)}` });
  assert.equal(again.status, 401);
  assert.match(again.body, /works once/);
  assert.match(await fetchText(daemon.port, '/api/ice-servers', session), /iceServers/,
    'the paired session lives on');
});

test('a pairing link never takes the password', async (t) => {
  const daemon = await startDaemon('');
  t.after(() => daemon.stop());
  const link = await request(daemon.port, { path: `/login?code=${encodeURIComponent(PASSWORD)}` });
  assert.equal(link.status, 401, 'the password in a link would sit in the history');
  assert.equal((await request(daemon.port, form(PASSWORD))).status, 303, 'the form takes it');
});

test('Log out on the page ends the session on the device', async (t) => {
  const daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n');
  t.after(() => daemon.stop());
  const page = await openPage(browser, daemon.url);
  const cookie = (await page.context().cookies()).find((c) => c.name === 'peercam_session');
  assert.ok(cookie, 'logged in');
  const session = `${cookie.name}=${cookie.value}`;
  assert.equal((await request(daemon.port, { path: '/api/ice-servers', headers: { cookie: session } })).status, 200);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByText('Logged out.').waitFor();
  assert.equal((await request(daemon.port, { path: '/api/ice-servers', headers: { cookie: session } })).status, 401,
    'the session ended on the server, not only in the browser');
  await page.goto(daemon.url);
  assert.match(page.url(), /\/login$/);
  await page.context().close();
});

test('open rooms let anyone chat browser to browser but never call the device', async (t) => {
  const daemon = await startDaemon('[login]\nopen_rooms = true\n');
  t.after(() => daemon.stop());
  const guest = await openPage(browser, `${daemon.url}login`, { loggedIn: false });
  const { replies } = await exchange(guest, ['{"type":"join","room":"lobby"}', '{"type":"bye"}', '{"type":"join"}']);
  assert.equal(replies[0].type, 'created');
  assert.ok(replies[0].iceServers.every((s) => !s.username), 'no relay credentials without a session');
  assert.equal(replies[2].code, 'not-allowed');
  assert.match(replies[2].message, /log in to call the device/);
  await guest.context().close();
});

test('200 connections from one address are capped and a call from another page still works', async (t) => {
  const daemon = await startDaemon('[http]\nconnections_per_address = 20\n[media]\nwidth = 640\nheight = 360\n');
  t.after(() => daemon.stop());
  // The flood comes from the namespace's veth address; the browser calls from 127.0.0.1.
  const sockets = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  const outcomes = await Promise.all(Array.from({ length: 200 }, () => new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: daemon.port, localAddress: '10.99.0.1' });
    sockets.push(socket);
    socket.on('close', () => resolve('closed'));
    socket.on('error', () => resolve('closed'));
    // Held connections stay open until the 10 s handshake timeout; refused ones close at
    // once, but give a loaded machine a few seconds to get through all 200.
    setTimeout(() => resolve('open'), 3000);
  })));
  assert.equal(outcomes.filter((o) => o === 'open').length, 20, 'the cap holds 20 open');
  await eventually(() => /refused a connection from 10\.99\.0\.1: 20 connections already open from its address/.test(daemon.output),
    5_000, 'the refusals in the log');

  const caller = await openPage(browser, daemon.url);
  await callButton(caller).click();
  await waitForFrames(caller, 30);
  await caller.context().close();
});
