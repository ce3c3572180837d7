// The center's candidates: search by name or СНИЛС, register and edit a
// candidate, upload and view their documents. Nothing of a candidate goes
// into a URL: the server searches by name or СНИЛС from a POST's body and
// pages; the selection is kept in the page.
'use strict';
Object.assign(NS.dict.en, {
  'Кандидаты центра': "The center's candidates", 'Поиск по ФИО или СНИЛС': 'Search by name or SNILS', 'Новый кандидат': 'New candidate',
  'ФИО': 'Name', 'СНИЛС': 'SNILS', 'Документ': 'Document', 'Фамилия': 'Last name', 'Имя': 'First name', 'Отчество': 'Middle name',
  'Документ, удостоверяющий личность': 'Identity document', 'Эл. почта': 'E-mail', 'Телефон': 'Phone', 'Документы': 'Documents',
  'Вид': 'Kind', 'Файл': 'File', 'Загружен': 'Uploaded', 'Вид документа': 'Kind of document', 'Скан (PDF, JPEG, PNG, TIFF)': 'Scan (PDF, JPEG, PNG, TIFF)',
  'Загрузить': 'Upload', 'Открыть': 'Open', 'Кандидат': 'Candidate', 'Кандидат зарегистрирован': 'Candidate registered',
  'Изменения сохранены': 'Changes saved', 'Документов нет: загрузите скан документа, удостоверяющего личность.': 'No documents: upload a scan of the identity document.',
  'Никого не нашлось: проверьте написание или зарегистрируйте кандидата.': 'Nobody found: check the spelling or register the candidate.',
  'Кандидатов ещё нет: зарегистрируйте первого в форме справа.': 'No candidates yet: register the first with the form beside.',
  'паспорт': 'passport', 'диплом': 'diploma', 'заявление': 'application', 'согласие': 'consent', 'другое': 'other', 'фото': 'photo', 'Скан документа': 'Document scan',
});
const $ = (id) => document.getElementById(id);
const st = window.cands = {selected: null, offset: 0, seq: 0};
const fields = {last_name: 'c-last', first_name: 'c-first', middle_name: 'c-middle', snils: 'c-snils', document: 'c-document', email: 'c-email', phone: 'c-phone'};
const PAGE = 15;

// render marks the selected candidate in the rows shown.
function render() {
  for (const tr of document.querySelectorAll('#candidates tbody tr[data-candidate]')) tr.classList.toggle('selected', tr.dataset.candidate === st.selected);
}

// load shows a page of the search's answer: the server searches by name
// or СНИЛС (in the request's body, never in a URL) and pages.
async function load() {
  const seq = ++st.seq;
  const q = $('search').value.trim();
  const page = await NS.api('POST', '/api/v1/candidates/search', {q, limit: PAGE, offset: st.offset});
  if (seq !== st.seq) return; // a later search answered first
  const tbody = document.querySelector('#candidates tbody');
  tbody.textContent = '';
  for (const c of page.candidates) {
    const open = NS.el('button', {type: 'button', class: 'btn small light open'}, NS.t('Открыть'));
    open.addEventListener('click', () => select(c.id));
    tbody.append(NS.el('tr', {'data-candidate': c.id}, NS.el('td', {}, NS.candName(c)),
      NS.el('td', {}, c.snils || ''), NS.el('td', {}, c.document || ''), NS.el('td', {}, open)));
  }
  if (!page.total) {
    tbody.append(NS.el('tr', {class: 'empty-row'}, NS.el('td', {colspan: '4', class: 'muted'},
      NS.t(q ? 'Никого не нашлось: проверьте написание или зарегистрируйте кандидата.' : 'Кандидатов ещё нет: зарегистрируйте первого в форме справа.'))));
  }
  NS.serverPager(document.getElementById('candidates'), page, (offset) => { st.offset = offset; load().catch(showError); });
  document.getElementById('candidates').dataset.query = q; // what the rows shown answer
  render();
}
const showError = (e) => { $('error').textContent = e.message; };

function fill(c) {
  for (const [k, id] of Object.entries(fields)) $(id).value = (c && c[k]) || '';
  $('form-title').textContent = c ? NS.t('Кандидат') + ': ' + NS.candName(c) : NS.t('Новый кандидат');
  $('documents-box').classList.toggle('hidden', !c);
  $('c-state').textContent = '';
  $('c-error').textContent = '';
  $('doc-view').textContent = '';
}

async function select(id) {
  st.selected = id;
  const c = await NS.api('GET', '/api/v1/candidates/' + encodeURIComponent(id));
  fill(c);
  render();
  await loadDocuments();
  $('c-last').focus();
}

async function loadDocuments() {
  const docs = await NS.api('GET', '/api/v1/candidates/' + encodeURIComponent(st.selected) + '/documents') || [];
  NS.paginate(document.querySelector('#documents tbody'), docs, (d) => {
    const open = NS.el('button', {type: 'button', class: 'btn small light open-doc'}, NS.t('Открыть'));
    open.addEventListener('click', () => NS.busy(open, $('doc-error'), () => NS.openDocument(d, $('doc-view'))));
    return NS.el('tr', {'data-document': d.id}, NS.el('td', {}, NS.tr(NS.docKinds, d.kind)), NS.el('td', {}, d.filename || d.id),
      NS.el('td', {}, NS.fmtDate(Date.parse(d.uploaded_at))), NS.el('td', {}, open));
  }, {size: 10, empty: NS.t('Документов нет: загрузите скан документа, удостоверяющего личность.')});
}

let searchTimer = 0;
$('search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { st.offset = 0; load().catch(showError); }, 250);
});
$('search-form').addEventListener('submit', (ev) => ev.preventDefault());
$('new-candidate').addEventListener('click', () => { st.selected = null; fill(null); render(); $('c-last').focus(); });
$('candidate-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('c-save'), $('c-error'), async () => {
    const body = {};
    for (const [k, id] of Object.entries(fields)) body[k] = $(id).value.trim();
    const c = st.selected ? await NS.api('PUT', '/api/v1/candidates/' + encodeURIComponent(st.selected), body)
      : await NS.api('POST', '/api/v1/candidates', body);
    const created = !st.selected;
    await load();
    await select(c.id);
    $('c-state').textContent = NS.t(created ? 'Кандидат зарегистрирован' : 'Изменения сохранены');
  });
});
$('upload-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('doc-upload'), $('doc-error'), async () => {
    const f = $('doc-file').files[0];
    if (!f) throw new Error(NS.t('Выберите файл'));
    const resp = await fetch('/api/v1/candidates/' + encodeURIComponent(st.selected) + '/documents?kind=' + encodeURIComponent($('doc-kind').value) +
      // The file's own name may carry the person's name: it is sent as
      // the kind of document and the extension only.
      '&filename=' + encodeURIComponent($('doc-kind').value + (/\.[a-z0-9]{1,5}$/i.exec(f.name) || [''])[0].toLowerCase()), {method: 'POST', body: f, headers: {Authorization: 'Bearer ' + NS.token(), 'Content-Type': f.type || 'application/octet-stream'}});
    if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error || resp.statusText);
    $('doc-file').value = '';
    await loadDocuments();
  });
});

(async () => {
  await NS.start();
  for (const k of ['passport', 'snils', 'diploma', 'application', 'consent', 'other']) $('doc-kind').append(NS.el('option', {value: k}, NS.tr(NS.docKinds, k)));
  await load();
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
