-- Signing out moves a key's session epoch on; cookies signed in under an older one are refused
-- (src/lib/auth.ts).
ALTER TABLE `api_keys` ADD `session_epoch` integer DEFAULT 0 NOT NULL;
