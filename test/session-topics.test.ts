import { describe, expect, it } from "vitest";
import type { SessionResponse } from "../src/routes/schemas";
import { call, createSession, createTeam, expectProblem, json, uid } from "./helpers";

type TopicList = { items: { id: string; status: string; current_step: string | null; hypothesis: string | null }[]; next_cursor: string | null };

async function addTopics(key: string, sid: string, n: number) {
  for (let i = 0; i < n; i += 10) {
    const answers = await Promise.all(
      Array.from({ length: Math.min(10, n - i) }, (_, j) => call(`/v1/sessions/${sid}/topics`, { method: "POST", key, json: { id: `t${String(i + j).padStart(3, "0")}`, hypothesis: `h${i + j}` } })),
    );
    for (const a of answers) {
      expect(a.status).toBe(201);
      await a.text();
    }
  }
}

describe("a session's topics: the summary shows the first 100, the list has them all", () => {
  it("a summary of a session with 103 topics shows 100 in full and says there are 103; the list pages through all 103", async () => {
    const team = await createTeam();
    const sid = uid("s");
    await createSession(team.api_key, sid);
    await addTopics(team.api_key, sid, 103);

    const summary = await json<SessionResponse>(await call(`/v1/sessions/${sid}`, { key: team.api_key }));
    expect(summary.topics_total).toBe(103);
    expect(summary.topics).toHaveLength(100);
    expect(summary.topics[0]).toMatchObject({ hypothesis: expect.stringMatching(/^h\d+$/), steps: expect.any(Object) });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: TopicList = await json<TopicList>(await call(`/v1/sessions/${sid}/topics?limit=40${cursor ? `&cursor=${cursor}` : ""}`, { key: team.api_key }));
      seen.push(...page.items.map((t) => t.id));
      for (const t of page.items) expect(t).toMatchObject({ status: "created", current_step: null, hypothesis: `h${Number(t.id.slice(1))}` });
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(103);
    expect(new Set(seen).size).toBe(103);
  });

  it("a new session's summary says 0 topics; another team's session is 404 on the list; a bad cursor is 400", async () => {
    const a = await createTeam();
    const b = await createTeam();
    const sid = uid("s");
    const created = await call("/v1/sessions", { method: "POST", key: a.api_key, json: { id: sid } });
    expect(await json(created)).toMatchObject({ topics: [], topics_total: 0 });
    await expectProblem(await call(`/v1/sessions/${sid}/topics`, { key: b.api_key }), 404);
    await expectProblem(await call(`/v1/sessions/${sid}/topics?cursor=nonsense`, { key: a.api_key }), 400);
    expect(await json(await call(`/v1/sessions/${sid}/topics`, { key: a.api_key }))).toEqual({ items: [], next_cursor: null });
  });
});

describe("one creation time for a session and a topic, wherever they are read", () => {
  it("the lists (from the index) and the summaries (from the hubs) show the same created_at", async () => {
    const team = await createTeam();
    const sid = uid("s");
    const created = (await createSession(team.api_key, sid)) as SessionResponse;
    const topicRes = await call(`/v1/sessions/${sid}/topics`, { method: "POST", key: team.api_key, json: { id: "t1" } });
    const topic = await json<{ created_at: string }>(topicRes);

    const sessions = await json<{ items: { id: string; created_at: string }[] }>(await call("/v1/sessions", { key: team.api_key }));
    expect(sessions.items.find((s) => s.id === sid)?.created_at).toBe(created.created_at);
    const summary = await json<SessionResponse>(await call(`/v1/sessions/${sid}`, { key: team.api_key }));
    expect(summary.created_at).toBe(created.created_at);

    const topics = await json<{ items: { id: string; created_at: string }[] }>(await call(`/v1/sessions/${sid}/topics`, { key: team.api_key }));
    expect(topics.items[0]?.created_at).toBe(topic.created_at);
    expect(summary.topics[0]?.created_at).toBe(topic.created_at);
    const one = await json<{ created_at: string }>(await call(`/v1/sessions/${sid}/topics/t1`, { key: team.api_key }));
    expect(one.created_at).toBe(topic.created_at);
  });
});
