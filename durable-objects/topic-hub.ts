import type { AgentEvent } from "../src/domain/events";
import type { Step } from "../src/domain/steps";
import { type TopicState, type TopicSummary, applyTopicEvent, newTopic, topicSummary } from "../src/domain/topic";
import { type ApplyReport, Hub } from "./hub";

export interface TopicInit {
  id: string;
  session_id: string;
  team_id: string;
  hypothesis?: string | null;
  max_turns?: Partial<Record<Step, number>>;
  /** When the topic was created, if the caller already stamped its index row (else now). */
  created_at?: string;
}

/** One topic of a session (named `{team_id}:{session_id}:{topic_id}`): its steps, alphas and stream. */
export class TopicHub extends Hub<TopicState, TopicSummary> {
  protected reduce(state: TopicState, event: AgentEvent, now: string) {
    return applyTopicEvent(state, event, now);
  }

  protected summarize(state: TopicState): TopicSummary {
    return topicSummary(state);
  }

  /**
   * Creates the topic if it does not exist yet. A topic is also created by its first event
   * (queues keep no order, so a step may arrive before `topic_added`); a hypothesis that
   * arrives later fills in one that is still empty.
   */
  async ensure(init: TopicInit, { onlyIfNew = false } = {}): Promise<{ created: boolean; summary: TopicSummary; version: number }> {
    const created = this.state === null;
    if (created) {
      this.save(initialTopic(init));
    } else if (!onlyIfNew && init.hypothesis && this.state && this.state.hypothesis === null) {
      this.save({ ...this.state, hypothesis: init.hypothesis });
    }
    return { created, summary: this.summarize(this.state as TopicState), version: this.version };
  }

  /**
   * Applies events, creating the topic when one of them is accepted: an event for a topic that
   * does not exist yet creates it (queues keep no order), but a refused one does not. `exists`
   * is false when nothing was accepted into a topic that did not exist: it still does not.
   */
  async apply(init: TopicInit, events: AgentEvent[]): Promise<ApplyReport<TopicSummary> & { created: boolean; exists: boolean }> {
    if (this.state !== null) {
      await this.ensure(init);
      return { ...this.applyEvents(events), created: false, exists: true };
    }
    const report = this.applyEvents(events, initialTopic(init));
    const exists = this.state !== null;
    return { ...report, created: exists, exists };
  }
}

/** A new topic's state, created when its index row says (or now). */
function initialTopic(init: TopicInit): TopicState {
  const { created_at, ...rest } = init;
  return newTopic({ ...rest, now: created_at ?? new Date().toISOString() });
}
