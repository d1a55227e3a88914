DROP INDEX contact_events_corp_seq;
DROP TABLE contact_events;
DROP INDEX callback_nonces_keep_until;
DROP TABLE callback_nonces;
DROP TABLE corp_authorizations;
DROP TABLE suite_tickets;
