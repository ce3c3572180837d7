-- Candidates and their scanned documents, exams (a group exam of a center at
-- one of its sites, in a time window, for a qualification, with theory and
-- practical parts), the candidates of an exam with their workstation devices,
-- admission and exam password, appointed experts, candidates' exam sessions,
-- and failed logins for rate limiting.

-- +goose Up
CREATE TABLE candidates (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    center_id   text NOT NULL REFERENCES centers (id),
    last_name   text NOT NULL CHECK (last_name <> ''),
    first_name  text NOT NULL CHECK (first_name <> ''),
    middle_name text NOT NULL DEFAULT '',
    -- СНИЛС as NNN-NNN-NNN NN (checksum verified by the store), or else the
    -- type and number of an identity document.
    snils       text NOT NULL DEFAULT '' CHECK (snils = '' OR snils ~ '^[0-9]{3}-[0-9]{3}-[0-9]{3} [0-9]{2}$'),
    document    text NOT NULL DEFAULT '',
    email       text NOT NULL DEFAULT '',
    phone       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (snils <> '' OR document <> '')
);
CREATE INDEX candidates_center ON candidates (center_id);
CREATE UNIQUE INDEX candidates_center_snils ON candidates (center_id, snils) WHERE snils <> '';

CREATE TABLE exams (
    id                 text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    center_id          text NOT NULL REFERENCES centers (id),
    site_id            text NOT NULL REFERENCES sites (id),
    qualification_code text NOT NULL REFERENCES qualifications (code),
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    created_by         bigint REFERENCES users (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at AND ends_at <= starts_at + interval '24 hours'),
    UNIQUE (id, site_id)
);
CREATE INDEX exams_site_time ON exams (site_id, starts_at, ends_at);
CREATE INDEX exams_center ON exams (center_id, starts_at);

-- The theory and practical parts of an exam, inside its window.
CREATE TABLE exam_parts (
    exam_id   text NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    kind      text NOT NULL CHECK (kind IN ('theory', 'practical')),
    starts_at timestamptz NOT NULL,
    ends_at   timestamptz NOT NULL CHECK (ends_at > starts_at),
    PRIMARY KEY (exam_id, kind)
);

-- A candidate of an exam at a workstation: the webcam and the screen device
-- at the exam's site whose streams are the candidate's evidence.
CREATE TABLE exam_candidates (
    exam_id            text NOT NULL,
    candidate_id       text NOT NULL REFERENCES candidates (id),
    site_id            text NOT NULL,
    webcam_device      text NOT NULL,
    screen_device      text NOT NULL,
    admission          text NOT NULL DEFAULT 'pending' CHECK (admission IN ('pending', 'admitted', 'refused')),
    refusal_reason     text NOT NULL DEFAULT '',
    admission_by       bigint REFERENCES users (id),
    admission_at       timestamptz,
    -- SHA-256 of the exam password: it has 60 random bits and works only
    -- inside the exam window, so a fast hash suffices and lets a login find
    -- the candidate by the password alone.
    password_hash      bytea UNIQUE CHECK (length(password_hash) = 32),
    password_issued_at timestamptz,
    added_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exam_id, candidate_id),
    FOREIGN KEY (exam_id, site_id) REFERENCES exams (id, site_id) ON DELETE CASCADE,
    FOREIGN KEY (site_id, webcam_device) REFERENCES devices (site, name),
    FOREIGN KEY (site_id, screen_device) REFERENCES devices (site, name),
    UNIQUE (exam_id, webcam_device),
    UNIQUE (exam_id, screen_device),
    CHECK (webcam_device <> screen_device),
    CHECK (admission <> 'refused' OR refusal_reason <> ''),
    CHECK (password_hash IS NULL OR admission = 'admitted')
);
CREATE INDEX exam_candidates_candidate ON exam_candidates (candidate_id);
CREATE INDEX exam_candidates_webcam ON exam_candidates (site_id, webcam_device);
CREATE INDEX exam_candidates_screen ON exam_candidates (site_id, screen_device);

CREATE TABLE exam_experts (
    exam_id      text NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users (id),
    appointed_by bigint REFERENCES users (id),
    appointed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exam_id, user_id)
);
CREATE INDEX exam_experts_user ON exam_experts (user_id);

-- Scanned documents: a candidate's (passport, СНИЛС, diploma, application,
-- consent) or an exam's commission protocol. The bytes are a blob-store
-- object under documents/.
CREATE TABLE documents (
    id           text PRIMARY KEY,
    candidate_id text REFERENCES candidates (id),
    exam_id      text REFERENCES exams (id),
    kind         text NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,31}$'),
    filename     text NOT NULL DEFAULT '',
    content_type text NOT NULL,
    bytes        bigint NOT NULL CHECK (bytes >= 0),
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    object_key   text NOT NULL UNIQUE,
    uploaded_by  bigint REFERENCES users (id),
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((candidate_id IS NULL) <> (exam_id IS NULL))
);
CREATE INDEX documents_candidate ON documents (candidate_id) WHERE candidate_id IS NOT NULL;
CREATE INDEX documents_exam ON documents (exam_id) WHERE exam_id IS NOT NULL;

-- A candidate's exam session, started with the exam password. Only the
-- SHA-256 of the token is kept; it expires with the exam window.
CREATE TABLE exam_sessions (
    token_hash   bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    exam_id      text NOT NULL,
    candidate_id text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    FOREIGN KEY (exam_id, candidate_id) REFERENCES exam_candidates (exam_id, candidate_id) ON DELETE CASCADE
);
CREATE INDEX exam_sessions_candidate ON exam_sessions (exam_id, candidate_id);

-- Failed logins by key ("login:<login>", "addr:<ip>", "exam-addr:<ip>"),
-- for rate limiting shared by every registry replica.
CREATE TABLE login_failures (
    key text NOT NULL,
    at  timestamptz NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);

-- Room footage is linked to exams by site and time.
CREATE INDEX segments_site_start ON segments (site, start_at);

-- +goose Down
DROP INDEX segments_site_start;
DROP TABLE login_failures;
DROP TABLE exam_sessions;
DROP TABLE documents;
DROP TABLE exam_experts;
DROP TABLE exam_candidates;
DROP TABLE exam_parts;
DROP TABLE exams;
DROP TABLE candidates;
