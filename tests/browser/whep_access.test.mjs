// Who may use /whep and /snapshot.jpg, and what bad requests get: a viewer token (bearer or
// ?token=) or a session lets in; none, a wrong or a revoked one gets 401; a malformed offer
// 400 with the reason; PATCH and DELETE on an unknown session 404; CORS preflight answered.
// The snapshot is a JPEG of the configured size (or ?width=) with nobody watching.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  PASSWORD, createToken, jpegSize, logIn, request, revokeToken, startDaemon,
} from './harness.mjs';

let daemon;
before(async () => { daemon = await startDaemon('[media]\nwidth = 640\nheight = 360\n'); });
after(() => daemon?.stop());

const bearer = (token) => ({ authorization: `Bearer ${token}` });
const offerHeaders = (token) => ({ ...bearer(token), 'content-type': 'application/sdp' });

test('no token, a wrong one or a revoked one gets 401; the use is logged', async () => {
  const token = createToken(daemon.stateDir, 'revoked-later');
  for (const headers of [{}, bearer('pcv_not-a-real-token'), bearer('')]) {
    const response = await request(daemon.port, 'POST', '/whep', {
      headers: { ...headers, 'content-type': 'application/sdp' }, body: 'v=0\r\n',
    });
    assert.equal(response.status, 401, JSON.stringify(headers));
    assert.match(response.headers['www-authenticate'], /^Bearer/);
    assert.equal(response.headers['access-control-allow-origin'], '*',
      'a player on another origin can read the refusal');
  }
  const used = await request(daemon.port, 'GET', '/snapshot.jpg', { headers: bearer(token) });
  assert.equal(used.status, 200);
  assert.match(daemon.output, /viewer token `revoked-later` used from 127\.0\.0\.1: GET \/snapshot\.jpg/);
  revokeToken(daemon.stateDir, 'revoked-later');
  const revoked = await request(daemon.port, 'GET', '/snapshot.jpg', { headers: bearer(token) });
  assert.equal(revoked.status, 401);
  const inQuery = await request(daemon.port, 'GET', `/snapshot.jpg?token=${token}`);
  assert.equal(inQuery.status, 401, 'revoked in the query too');
});

test("a token opens neither the owner's page nor its API", async () => {
  const token = createToken(daemon.stateDir, 'viewer-only');
  for (const path of ['/api/ice-servers', '/metrics']) {
    const response = await request(daemon.port, 'GET', path, { headers: bearer(token) });
    assert.equal(response.status, 401, path);
  }
  const page = await request(daemon.port, 'GET', '/', { headers: bearer(token) });
  assert.equal(page.status, 303, 'the page sends a token holder to the login page');
});

test('malformed offers get 400 or 415 with a reason', async () => {
  const token = createToken(daemon.stateDir, 'malformed');
  const cases = [
    ['v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n', /video/],
    ['\u0000\u0001 binary junk', /offer/],
    ['', /offer/],
  ];
  for (const [body, reason] of cases) {
    const response = await request(daemon.port, 'POST', '/whep', { headers: offerHeaders(token), body });
    assert.equal(response.status, 400, JSON.stringify(body));
    assert.match(response.body.toString(), reason);
  }
  const wrongType = await request(daemon.port, 'POST', '/whep', {
    headers: { ...bearer(token), 'content-type': 'text/plain' }, body: 'v=0\r\n',
  });
  assert.equal(wrongType.status, 415);
  const huge = await request(daemon.port, 'POST', '/whep', {
    headers: offerHeaders(token), body: 'a=x\r\n'.repeat(20_000),
  });
  assert.equal(huge.status, 413);
  // The daemon is still there and well.
  assert.equal((await request(daemon.port, 'GET', '/snapshot.jpg', { headers: bearer(token) })).status, 200);
});

test('PATCH and DELETE on an unknown session get 404', async () => {
  const token = createToken(daemon.stateDir, 'unknown-session');
  const patch = await request(daemon.port, 'PATCH', '/whep/no-such-session', {
    headers: { ...bearer(token), 'content-type': 'application/trickle-ice-sdpfrag' },
    body: 'a=end-of-candidates\r\n',
  });
  assert.equal(patch.status, 404);
  const remove = await request(daemon.port, 'DELETE', '/whep/no-such-session', { headers: bearer(token) });
  assert.equal(remove.status, 404);
  const unauthenticated = await request(daemon.port, 'DELETE', '/whep/no-such-session');
  assert.equal(unauthenticated.status, 401);
});

test('CORS preflight names the methods and headers a WHEP player uses', async () => {
  const response = await request(daemon.port, 'OPTIONS', '/whep', {
    headers: {
      origin: 'http://dashboard.example', 'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type',
    },
  });
  assert.equal(response.status, 204);
  assert.equal(response.headers['access-control-allow-origin'], '*');
  assert.match(response.headers['access-control-allow-methods'], /POST.*PATCH.*DELETE/);
  assert.match(response.headers['access-control-allow-headers'], /Authorization/);
  assert.match(response.headers['access-control-expose-headers'], /Location/);
  assert.equal(response.headers['accept-post'], 'application/sdp');
});

test('the snapshot is a JPEG of the configured size or the width asked for, with nobody watching', async () => {
  assert.equal((await request(daemon.port, 'GET', '/snapshot.jpg')).status, 401);
  const cookie = await logIn(daemon.port, PASSWORD);
  const full = await request(daemon.port, 'GET', '/snapshot.jpg', { headers: { cookie } });
  assert.equal(full.status, 200);
  assert.equal(full.headers['content-type'], 'image/jpeg');
  assert.equal(full.headers['cache-control'], 'no-store');
  assert.deepEqual(jpegSize(full.body), { width: 640, height: 360 });
  const small = await request(daemon.port, 'GET', '/snapshot.jpg?width=320', { headers: { cookie } });
  assert.deepEqual(jpegSize(small.body), { width: 320, height: 180 });
  const bad = await request(daemon.port, 'GET', '/snapshot.jpg?width=huge', { headers: { cookie } });
  assert.equal(bad.status, 400);
  assert.match(bad.body.toString(), /width must be/);
  const metrics = await daemon.metrics();
  assert.equal(metrics.peercam_in_call, 0);
});
