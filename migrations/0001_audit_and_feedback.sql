-- The audit trail and card feedback. Written once for SQLite and PostgreSQL: only types and
-- statements both accept (TEXT, BIGINT, composite keys, ON CONFLICT DO NOTHING). Times are Unix
-- milliseconds (UTC) in BIGINT, so range queries and retention compare integers on both.

-- Every card issued: what the service told whom, when, and why. A repeated hook call (same
-- hookInstance) issues the same card uuid again, so each issue is its own row.
CREATE TABLE audit_cards (
    audit_id        TEXT PRIMARY KEY,
    card_uuid       TEXT NOT NULL,
    card_type       TEXT NOT NULL,
    indicator       TEXT NOT NULL,
    service         TEXT NOT NULL,
    hook            TEXT NOT NULL,
    hook_instance   TEXT NOT NULL,
    issued_at       BIGINT NOT NULL,
    content_version TEXT NOT NULL,
    rule_ids        TEXT NOT NULL,   -- JSON array of rule ids
    evidence        TEXT NOT NULL,   -- JSON array of FHIR references
    patient         TEXT NOT NULL,   -- keyed hash unless plain ids are configured (see id_form)
    user_ref        TEXT NOT NULL,
    id_form         TEXT NOT NULL    -- 'hmac-sha256' or 'plain'
);
CREATE INDEX audit_cards_card_uuid ON audit_cards (card_uuid);
CREATE INDEX audit_cards_issued_at ON audit_cards (issued_at);

-- What each card offered: feedback is checked against it.
CREATE TABLE card_offers (
    card_uuid TEXT NOT NULL,
    kind      TEXT NOT NULL,   -- 'suggestion' or 'override-reason'
    offer_key TEXT NOT NULL,   -- suggestion uuid, or override reason as `system|code`
    label     TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    PRIMARY KEY (card_uuid, kind, offer_key)
);
CREATE INDEX card_offers_issued_at ON card_offers (issued_at);

-- One row per distinct feedback item; a repeated post maps to the same feedback_id.
CREATE TABLE feedback (
    feedback_id     TEXT PRIMARY KEY,
    service         TEXT NOT NULL,
    card_uuid       TEXT NOT NULL,
    outcome         TEXT NOT NULL,   -- 'accepted' or 'overridden'
    outcome_at      BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    override_system TEXT,
    override_code   TEXT,
    user_comment    TEXT,
    flags           TEXT NOT NULL,   -- comma-separated reasons not to trust it; '' when trusted
    trusted         BIGINT NOT NULL, -- 1 when every check passed
    client          TEXT NOT NULL    -- issuer of the client's JWT, '' without authentication
);
CREATE INDEX feedback_card_uuid ON feedback (card_uuid);
CREATE INDEX feedback_received_at ON feedback (received_at);

CREATE TABLE feedback_suggestions (
    feedback_id     TEXT NOT NULL,
    suggestion_uuid TEXT NOT NULL,
    offered         BIGINT NOT NULL, -- 1 when the card offered it
    PRIMARY KEY (feedback_id, suggestion_uuid)
);
