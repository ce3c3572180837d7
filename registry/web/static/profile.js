// A staff user's own profile: full name, position, region and work
// contacts (152-FZ: these and no more), read and saved through
// /api/v1/auth/profile.
'use strict';
Object.assign(NS.dict.en, {
  'Мои данные': 'My details', 'Сотрудник': 'Staff member', 'ФИО': 'Full name', 'Должность': 'Position', 'Регион': 'Region',
  'Рабочий телефон': 'Work phone', 'Рабочая эл. почта': 'Work e-mail',
  'Эти данные видят только вы, НАРК и администратор вашей организации.': "Only you, NARK and your organisation's admin see these details.",
});
const $ = (id) => document.getElementById(id);
const fields = {full_name: 'p-name', position: 'p-position', region: 'p-region', phone: 'p-phone', email: 'p-email'};

$('profile-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('p-save'), $('p-error'), async () => {
    const body = {};
    for (const [k, id] of Object.entries(fields)) body[k] = $(id).value.trim();
    await NS.api('PUT', '/api/v1/auth/profile', body);
    $('p-state').textContent = NS.t('Сохранено');
  });
});

(async () => {
  await NS.start();
  const p = await NS.api('GET', '/api/v1/auth/profile');
  for (const [k, id] of Object.entries(fields)) $(id).value = p[k] || '';
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
