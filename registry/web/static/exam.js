// The candidate's exam page: sign in with the exam password, consent, then
// publish the webcam with the microphone and the screen over WHIP (RFC 9725)
// with the exam token. A dropped connection is replaced by a new session of
// the same stream (the stream goes on); a stopped screen share is said and
// asked for again.
'use strict';
NS.langButton(document.getElementById('lang'));
const $ = (id) => document.getElementById(id);
let session = JSON.parse(sessionStorage.getItem('exam') || 'null');

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  try {
    session = await NS.api('POST', '/api/v1/exam/login', {password: $('exam-password').value.trim()});
    sessionStorage.setItem('exam', JSON.stringify(session));
    showConsent();
  } catch (e) {
    $('login-error').textContent = e.status === 401 ? 'Неверный пароль экзамена' : e.status === 403 ? 'Сейчас не время вашего экзамена' : e.message;
  }
});
function showConsent() {
  $('login').classList.add('hidden');
  $('consent-step').classList.remove('hidden');
}
$('consent').addEventListener('change', () => { $('start').disabled = !$('consent').checked; });

// Publisher keeps one WHIP session of a stream alive for as long as it has
// a track, starting a new session when the connection is lost.
class Publisher {
  constructor(endpoint, stateEl) { this.endpoint = endpoint; this.stateEl = stateEl; this.stream = null; this.pc = null; this.location = null; this.gen = 0; }
  state(text, cls) { this.stateEl.textContent = text; this.stateEl.className = cls; }
  async start(stream) {
    this.stream = stream;
    const gen = ++this.gen;
    this.close();
    const pc = new RTCPeerConnection();
    this.pc = pc;
    for (const track of stream.getTracks()) pc.addTransceiver(track, {direction: 'sendonly'});
    this.state('подключение…', 'st-wait');
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
        setTimeout(resolve, 2000);
      });
      const resp = await fetch(this.endpoint, {method: 'POST', body: pc.localDescription.sdp,
        headers: {'Content-Type': 'application/sdp', 'Authorization': 'Bearer ' + session.token}});
      const answer = await resp.text();
      if (resp.status === 401 || resp.status === 403) { this.state('экзамен окончен или доступ закрыт', 'st-bad'); return; }
      if (resp.status !== 201) throw new Error(resp.status + ' ' + answer);
      this.location = new URL(resp.headers.get('Location'), location.href).href;
      await pc.setRemoteDescription({type: 'answer', sdp: answer});
    } catch (e) {
      if (gen === this.gen) this.retry(gen);
      return;
    }
    pc.addEventListener('connectionstatechange', () => {
      if (gen !== this.gen) return;
      if (pc.connectionState === 'connected') this.state('идёт запись', 'st-live');
      else if (pc.connectionState === 'disconnected') {
        this.state('связь прервалась, переподключение…', 'st-wait');
        // A short blip may heal by itself; if not, a new session.
        setTimeout(() => { if (gen === this.gen && pc.connectionState !== 'connected') this.retry(gen); }, 3000);
      } else if (pc.connectionState === 'failed') this.retry(gen);
    });
  }
  retry(gen) {
    this.state('связь прервалась, переподключение…', 'st-wait');
    // A new session, unless the connection came back meanwhile (a blip
    // that heals just as the page gives up on it).
    setTimeout(() => {
      if (gen === this.gen && this.stream && !(this.pc && this.pc.connectionState === 'connected')) this.start(this.stream);
    }, 1000);
  }
  // close ends the session. A deliberate end (stop) sends the DELETE first
  // and closes the connection once it is answered (2 s at most): a closed
  // connection that reaches ingest first is recorded as a lost one, and the
  // timeline must say the candidate ended it.
  close(deliberate) {
    const pc = this.pc, loc = this.location;
    this.pc = null;
    this.location = null;
    let closed = false;
    const closePC = () => { if (pc && !closed) { closed = true; pc.close(); } };
    if (!loc) return closePC();
    if (!deliberate) closePC();
    fetch(loc, {method: 'DELETE', keepalive: true, headers: {'Authorization': 'Bearer ' + session.token}}).catch(() => {}).finally(closePC);
    setTimeout(closePC, 2000);
  }
  stop() { this.gen++; this.close(true); this.stream = null; }
}

let cam, screen;
// captureScreen asks for the screen; it is called first thing after a
// click, while the page still has the user activation getDisplayMedia needs.
function captureScreen() {
  return navigator.mediaDevices.getDisplayMedia({video: {frameRate: 15}, audio: false});
}
async function publishScreen(s) {
  $('screen-preview').srcObject = s;
  $('screen-stopped').classList.add('hidden');
  s.getVideoTracks()[0].addEventListener('ended', () => {
    // The candidate pressed "stop sharing": end the screen's session (its
    // stop is on the timeline), say so and offer to share again.
    screen.stop();
    screen.state('демонстрация экрана остановлена', 'st-bad');
    $('screen-stopped').classList.remove('hidden');
  });
  await screen.start(s);
}
// recordConsent records the candidate's consent, with the version of the
// text shown and this page, before anything is published: the registry
// refuses the streams without it (issue 13). A registry without the route
// answers the mux's own 404 or 405, and then the page goes on.
async function recordConsent() {
  const resp = await fetch('/api/v1/exam/consent', {method: 'POST', headers: {'Authorization': 'Bearer ' + session.token, 'Content-Type': 'application/json'},
    body: JSON.stringify({version: $('consent-text').dataset.version, page: 'exam.html'})});
  if (resp.ok) return;
  const err = (await resp.json().catch(() => ({}))).error || resp.statusText;
  if ((resp.status === 404 && err === 'Not Found') || resp.status === 405) return;
  throw new Error(err);
}
$('start').addEventListener('click', async () => {
  $('start-error').textContent = '';
  try {
    await recordConsent();
  } catch (e) { $('start-error').textContent = 'Согласие не записано: ' + e.message; return; }
  try {
    const c = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480, frameRate: 15}, audio: true});
    const s = await captureScreen();
    $('cam-preview').srcObject = c;
    $('consent-step').classList.add('hidden');
    $('recording').classList.remove('hidden');
    $('window').textContent = 'Экзамен: ' + NS.fmtSpan(session.starts_at, session.ends_at) + ' (' + NS.zoneOffset() + ') · рабочее место ' + session.webcam.replace(/-[^-]*$/, '');
    cam = new Publisher(session.whip.webcam, $('cam-state'));
    screen = new Publisher(session.whip.screen, $('screen-state'));
    await Promise.all([cam.start(c), publishScreen(s)]);
  } catch (e) { $('start-error').textContent = 'Нет доступа к камере, микрофону или экрану: ' + e.message; }
});
$('screen-again').addEventListener('click', () => captureScreen().then(publishScreen).catch((e) => { screen.state('нет доступа к экрану: ' + e.message, 'st-bad'); }));
window.addEventListener('pagehide', () => { if (cam) cam.stop(); if (screen) screen.stop(); });
if (session) showConsent();
