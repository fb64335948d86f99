-- The peer's PostgreSQL schema: the seed system's shape (events in PostgreSQL, live fan-out
-- over Redis), with what Switchboard guarantees, so the comparison is like for like:
-- exactly once per event id, and a per-topic sequence with no gap for Last-Event-ID replay.
CREATE TABLE teams (id text PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE api_keys (hash text PRIMARY KEY, team_id text NOT NULL REFERENCES teams (id));
CREATE TABLE sessions (
  team_id text NOT NULL, id text NOT NULL, title text, metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, id)
);
-- last_seq is the topic's stream sequence: taking it locks the row, so one topic's events
-- are numbered in commit order (one writer per topic, as a TopicHub is).
CREATE TABLE topics (
  team_id text NOT NULL, session_id text NOT NULL, id text NOT NULL,
  last_seq bigint NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, session_id, id)
);
-- Every event is kept: the SSE servers replay any Last-Event-ID from here.
CREATE TABLE events (
  team_id text NOT NULL, session_id text NOT NULL, topic_id text NOT NULL, seq bigint NOT NULL,
  event_id text NOT NULL, type text NOT NULL, body text NOT NULL,
  PRIMARY KEY (team_id, session_id, topic_id, seq)
);
CREATE TABLE applied (team_id text NOT NULL, event_id text NOT NULL, PRIMARY KEY (team_id, event_id));
CREATE TABLE tool_calls (
  team_id text NOT NULL, session_id text NOT NULL, topic_id text NOT NULL, step text NOT NULL, tool text NOT NULL,
  calls bigint NOT NULL,
  PRIMARY KEY (team_id, session_id, topic_id, step, tool)
);

-- One event in one round trip and one transaction: its seq, or NULL when its id was applied
-- before (a retried callback). A topic is created by its first event, as a TopicHub is.
CREATE FUNCTION apply_event(p_team text, p_sid text, p_tid text, p_event_id text, p_type text, p_body text, p_step text, p_tools jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE s bigint;
BEGIN
  INSERT INTO applied (team_id, event_id) VALUES (p_team, p_event_id) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN RETURN NULL; END IF;
  INSERT INTO topics (team_id, session_id, id, last_seq) VALUES (p_team, p_sid, p_tid, 1)
    ON CONFLICT (team_id, session_id, id) DO UPDATE SET last_seq = topics.last_seq + 1
    RETURNING last_seq INTO s;
  INSERT INTO events (team_id, session_id, topic_id, seq, event_id, type, body) VALUES (p_team, p_sid, p_tid, s, p_event_id, p_type, p_body);
  IF p_tools IS NOT NULL THEN
    INSERT INTO tool_calls (team_id, session_id, topic_id, step, tool, calls)
      SELECT p_team, p_sid, p_tid, p_step, t.name, t.calls FROM jsonb_to_recordset(p_tools) AS t (name text, calls bigint)
      ON CONFLICT (team_id, session_id, topic_id, step, tool) DO UPDATE SET calls = tool_calls.calls + excluded.calls;
  END IF;
  RETURN s;
END $$;
