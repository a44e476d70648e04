-- Revoking a client (removed from the API's credentials file, or given a new secret) deletes
-- its issued bearer tokens and its console sessions by client id.
CREATE INDEX IF NOT EXISTS api_tokens_client ON api_tokens (client_id);
CREATE INDEX IF NOT EXISTS console_sessions_client ON console_sessions (client_id);
