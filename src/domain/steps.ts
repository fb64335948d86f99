/** The six steps a research topic runs through, in the runner's default order. */
export const STEPS = ["design", "prep", "explore", "review", "implement", "evaluate"] as const;
export type Step = (typeof STEPS)[number];

/** Turn budgets of the seed system's runner; a topic may override any of them. */
export const DEFAULT_MAX_TURNS: Record<Step, number> = {
  design: 15,
  prep: 40,
  explore: 50,
  review: 15,
  implement: 40,
  evaluate: 60,
};

export function isStep(value: string): value is Step {
  return (STEPS as readonly string[]).includes(value);
}
