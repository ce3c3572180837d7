// The privacy policy a staff user accepts (its version and the time are
// recorded) before anything else works; then back to the page that asked.
'use strict';
Object.assign(NS.dict.en, {
  'Политика обработки персональных данных': 'Personal data processing policy', 'Редакция': 'Version', 'Принимаю политику': 'I accept the policy',
  'Система nokstream обрабатывает персональные данные соискателей и работников организаций независимой оценки квалификации (Федеральный закон № 152-ФЗ «О персональных данных», Федеральный закон № 238-ФЗ «О независимой оценке квалификации»).':
    'nokstream processes the personal data of candidates and of the staff of the independent qualification assessment organisations (Federal Law 152-FZ "On personal data", Federal Law 238-FZ "On independent qualification assessment").',
  'Вы получаете доступ только к тем данным, которые нужны для вашей работы: ваша роль и организация определяют, что вы видите. Каждый просмотр записей экзамена, документов и журналов фиксируется в журнале аудита с указанной вами целью.':
    'You get access only to the data your work needs: your role and organisation decide what you see. Every view of exam recordings, documents and logs is written to the audit trail with the purpose you give.',
  'Запрещается копировать, передавать третьим лицам или использовать персональные данные и записи экзаменов в целях, не связанных с процедурой независимой оценки квалификации.':
    'Copying personal data and exam recordings, passing them to third parties, or using them for anything but the independent qualification assessment is forbidden.',
  'О вас в системе хранятся: логин, ФИО, должность, рабочие телефон и эл. почта, регион и журнал ваших действий. Они используются только для работы в системе и хранятся, пока действует ваша учётная запись, и далее в сроки хранения журнала аудита.':
    'The system keeps about you: your login, full name, position, work phone and e-mail, region, and the trail of your actions. They serve your work in the system only, and are kept while your account exists, then for as long as the audit trail is kept.',
  'Принята': 'Accepted',
});
const $ = (id) => document.getElementById(id);

// next is the page to return to: a page of this site, never an address.
function next() {
  const n = new URLSearchParams(location.search).get('next') || 'home.html';
  return /^[a-z]+\.html(\?[^#]*)?$/.test(n) && !n.startsWith('privacy.html') ? n : 'home.html';
}

(async () => {
  if (!NS.token()) { location.href = '/ui/'; return; }
  NS.langButton($('lang'));
  $('logout').addEventListener('click', NS.logout);
  const me = await NS.api('GET', '/api/v1/auth/me');
  $('who').textContent = me.login;
  const p = me.privacy_policy;
  $('policy-version').textContent = p.current;
  if (!p.required) $('policy-state').textContent = NS.t('Принята') + ': ' + NS.fmtDate(Date.parse(p.accepted_at));
  $('policy-accept').addEventListener('click', () => NS.busy($('policy-accept'), $('policy-error'), async () => {
    await NS.api('POST', '/api/v1/auth/privacy-policy', {version: p.current});
    location.href = next();
  }));
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
