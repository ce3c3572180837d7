package bundle

import (
	"fmt"
	"strings"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// Readme returns the README.txt of a bundle: what it is and how to check it,
// in Russian and in English.
func Readme(m *seal.Manifest, purpose string, exportedAt time.Time) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	when := exportedAt.UTC().Format(time.RFC3339)
	w("ДОКАЗАТЕЛЬНЫЙ ПАКЕТ / EVIDENCE BUNDLE\n")
	w("======================================\n\n")
	w("Экзамен / exam:         %s\n", m.ExamID)
	w("Соискатель / candidate: %s\n", m.CandidateID)
	w("Площадка / site:        %s, %s — %s (UTC)\n", m.Site, m.WindowStart.UTC().Format(time.RFC3339), m.WindowEnd.UTC().Format(time.RFC3339))
	w("Печать / seal:          версия %d от %s, %d объектов, %d байт\n", m.Version, m.SealedAt.UTC().Format(time.RFC3339), m.Objects, m.Bytes)
	w("Корень Меркла / Merkle root: %s\n", m.MerkleRoot)
	w("Ключ / key id:          %s\n", m.KeyID)
	w("Выгружен / exported:    %s, цель / purpose: %s\n\n", when, purpose)

	w(`ПО-РУССКИ

Пакет содержит исходные видеозаписи экзамена соискателя (фрагменты fMP4 и
инициализирующие сегменты, без перекодирования), опись (seal/manifest.json) с
размером, SHA-256, потоком, интервалом времени и значениями хеш-цепочки каждого
объекта, корень дерева Меркла описи и электронную подпись Ed25519 архива
(seal/manifest.sig). timeline.json — ход экзамена (допуск, результат, апелляции,
отметки и заключения экспертов, наблюдения по записи); audit.json — журнал
обращений к этим записям; export.json — кто, когда и зачем выгрузил пакет, с
SHA-256 файлов, не входящих в опись, подписанный тем же ключом (export.sig).

Как проверить (без сети и без сервера):

  nokstream verify пакет.tar --pubkey seal.pub

где seal.pub — открытый ключ архива, полученный из надёжного источника
(GET /api/v1/keys/seal у оператора системы; --pubkey может быть и https-адресом
этого ключа, а --pin запоминает ключ на этом компьютере). Без ключа проверка идёт
по ключу из самого пакета: это доказывает целостность, но не происхождение —
сравните его идентификатор (key id выше) с опубликованным. Программа читает
пакет один раз, проверяет, что каждый файл в нём один и на своём месте в одном
каталоге, SHA-256 каждого объекта, порядок и полноту, хеш-цепочку каждого
потока, корень Меркла и подписи, и что export.json называет тот же экзамен,
соискателя и опись; называет первый неверный файл и что с ним не так (изменён,
отсутствует, переставлен, лишний, повторён). Код завершения: 0 — пакет верен и
проверен данным или запомненным ключом; 1 — любая ошибка; 3 — пакет цел, но
проверен только ключом из самого пакета (ORIGIN NOT PROVEN).

Вручную: распакуйте архив (tar -xf), для каждого объекта описи сравните
sha256sum objects/<key> со значением sha256; подпись описи проверяется так:
  openssl pkeyutl -verify -pubin -inkey seal/seal.pub -rawin -in seal/manifest.json -sigfile seal/manifest.sig
Корень Меркла вычисляется по RFC 6962 (раздел 2.1) над строками записей описи
(поля через табуляцию: kind, key, size, sha256, stream, sequence, start, end,
prev_chain, chain, init), лист = SHA-256(0x00 || строка), узел = SHA-256(0x01 ||
левый || правый). Значение цепочки сегмента = SHA-256(prev_chain || sha256).

IN ENGLISH

This bundle holds the original recordings of one candidate's exam (fMP4
segments and their init segments, not re-encoded), the manifest
(seal/manifest.json) with each object's size, SHA-256, stream, time range and
hash-chain values, the Merkle root of the manifest, and the archive's Ed25519
signature (seal/manifest.sig). timeline.json is the exam's course (admission,
result, appeals, expert marks and verdicts, observations of the recording);
audit.json is the trail of access to this evidence; export.json says who
exported the bundle, when and why, with the SHA-256 of the files the manifest
does not cover, signed with the same key (export.sig).

How to check it (offline, no server needed):

  nokstream verify bundle.tar --pubkey seal.pub

where seal.pub is the archive's public key from a source you trust (GET
/api/v1/keys/seal from the operator; --pubkey may also be the https URL of
that key, and --pin keeps the key on this machine). With no key the key inside
the bundle is used: that proves integrity, not origin — compare its key id
(above) with the published one. The verifier reads the bundle once and checks
that each file is in it once and in its place, under one directory, the
SHA-256 of every object, their order and completeness, each stream's hash
chain, the Merkle root and the signatures, and that export.json names the same
exam, candidate and manifest; it names the first bad file and what is wrong
with it (altered, missing, reordered, extra, twice). Exit status: 0 verified
with a key you gave or pinned; 1 any failure; 3 intact, but checked only with
the key inside the bundle (ORIGIN NOT PROVEN).

By hand: unpack (tar -xf), compare sha256sum objects/<key> with each manifest
entry's sha256, and check the manifest's signature with
  openssl pkeyutl -verify -pubin -inkey seal/seal.pub -rawin -in seal/manifest.json -sigfile seal/manifest.sig
The Merkle root is RFC 6962 section 2.1 over the manifest's entries, each as
its fields joined by tabs and ended by a newline (kind, key, size, sha256,
stream, sequence, start, end, prev_chain, chain, init); leaf = SHA-256(0x00 ||
line), node = SHA-256(0x01 || left || right). A segment's chain value is
SHA-256(prev_chain || sha256), the bytes of the two hex values.
`)
	if len(m.Gaps) > 0 || len(m.Problems) > 0 {
		w("\nИЗВЕСТНЫЕ НАРУШЕНИЯ ПРИ ОПЕЧАТЫВАНИИ / KNOWN AT SEALING\n")
		for _, g := range m.Gaps {
			w("  chain %s: %s\n", g.Stream, g.Detail)
		}
		for _, p := range m.Problems {
			w("  %s: %s\n", p.Key, p.Detail)
		}
	}
	return []byte(b.String())
}
