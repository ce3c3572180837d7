// The register's public check of a certificate, by its number or the
// holder's СНИЛС. It needs no login; signed in, it is NARK's register
// section. What was asked goes in the request the page makes, never in
// the page's address.
'use strict';
Object.assign(NS.dict.en, {
  'Реестр свидетельств о квалификации': 'Register of qualification certificates', 'Проверить свидетельство': 'Check a certificate',
  'Проверка свидетельства по номеру или по СНИЛС владельца. Показываются только свидетельства, утверждённые советом.':
    "Check a certificate by its number or the holder's SNILS. Only certificates a council approved are shown.",
  'Номер свидетельства': 'Certificate number', 'или СНИЛС владельца': "or the holder's SNILS", 'Проверить': 'Check', 'Номер': 'Number', 'Владелец': 'Holder',
  'Совет и центр': 'Council and center', 'Выдано': 'Issued', 'Действует до': 'Valid until', 'Состояние': 'State', 'отозвано': 'revoked',
  'утверждено советом': 'approved by the council', 'проверено НАРК': 'verified by NARK', 'не прошло проверку НАРК': 'not verified by NARK', 'в реестре': 'registered',
  'Такого свидетельства в реестре нет.': 'No such certificate in the register.', 'Укажите номер или СНИЛС.': 'Give a number or a SNILS.',
});
const $ = (id) => document.getElementById(id);
const states = {approved: 'утверждено советом', verified: 'проверено НАРК', not_verified: 'не прошло проверку НАРК', registered: 'в реестре'};

$('check-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('r-check'), $('r-error'), async () => {
    const number = $('r-number').value.trim(), snils = $('r-snils').value.trim();
    if (!number && !snils) throw new Error(NS.t('Укажите номер или СНИЛС.'));
    const q = number ? 'number=' + encodeURIComponent(number) : 'snils=' + encodeURIComponent(snils);
    const resp = await fetch('/api/v1/register/certificates?' + q, {headers: {Accept: 'application/json'}});
    const body = await resp.json().catch(() => null);
    if (!resp.ok && resp.status !== 404) throw new Error((body && body.error) || resp.statusText);
    const list = !resp.ok ? [] : Array.isArray(body) ? body : (body && body.certificates) || [];
    NS.paginate(document.querySelector('#found tbody'), list, (c) => NS.el('tr', {'data-number': c.number},
      NS.el('td', {}, c.number), NS.el('td', {}, c.holder), NS.el('td', {}, (c.qualification || {}).name || ''),
      NS.el('td', {}, ((c.council || {}).name || '') + ' · ' + ((c.center || {}).name || '')), NS.el('td', {}, NS.fmtISO(c.issued_on)), NS.el('td', {}, NS.fmtISO(c.valid_until)),
      NS.el('td', {}, NS.el('span', {class: 'state-tag ' + (c.revoked ? 'rejected' : c.state)}, c.revoked ? NS.t('отозвано') : NS.tr(states, c.state)))),
    {empty: NS.t('Такого свидетельства в реестре нет.')});
  });
});

(async () => {
  if (NS.token()) {
    $('logout').classList.remove('hidden');
    await NS.start();
  } else {
    NS.langButton($('lang'));
    $('nav').remove();
  }
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('r-error').textContent = e.message; });
