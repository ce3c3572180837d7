// Staff login: a temporary password must be changed first; the login
// answer's 90-day reminder is carried to the landing page.
'use strict';
NS.langButton(document.getElementById('lang'));
let current = {login: '', password: ''};
const $ = (id) => document.getElementById(id);

async function signIn(login, password) {
  const r = await NS.api('POST', '/api/v1/auth/login', {login, password});
  sessionStorage.setItem('token', r.token);
  if (r.must_change_password) {
    current = {login, password};
    $('login').classList.add('hidden');
    $('change').classList.remove('hidden');
    $('new-password').focus();
    return;
  }
  if (r.password_reminder) sessionStorage.setItem('reminder', r.password_reminder); else sessionStorage.removeItem('reminder');
  location.href = 'home.html';
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  try { await signIn($('login-name').value.trim(), $('login-password').value); }
  catch (e) { $('login-error').textContent = e.status === 401 ? NS.t('Неверный логин или пароль') : e.status === 429 ? NS.t('Слишком много попыток, подождите') : e.message; }
});

$('change').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('change-error').textContent = '';
  const pw = $('new-password').value;
  if (pw !== $('new-password2').value) { $('change-error').textContent = NS.t('Пароли не совпадают'); return; }
  try {
    await NS.api('POST', '/api/v1/auth/password', {old_password: current.password, new_password: pw});
    await signIn(current.login, pw);
  } catch (e) { $('change-error').textContent = e.message; }
});
