import type { LeasedTaskResponse } from "./api";

/** The files of one task in a worker's directory, relative to it (the agent runs there). */
export function taskPaths(taskId: string) {
  return {
    taskFile: "tasks/current_task.md",
    result: `outputs/${taskId}_result.md`,
    question: `outputs/${taskId}_question.md`,
    answer: `outputs/${taskId}_answer.md`,
    specs: "outputs/tasks",
  };
}

/** `tasks/current_task.md`: the task, and how to report back, for the agent to read. */
export function renderTaskFile(task: LeasedTaskResponse, workerName: string): string {
  const p = taskPaths(task.id);
  const facts = [
    `- **Task ID**: ${task.id}`,
    `- **Role**: ${task.role}`,
    `- **Priority**: ${task.priority}`,
    `- **Attempt**: ${task.attempts} of ${task.max_attempts}`,
    `- **Depends On**: ${task.depends_on.length > 0 ? task.depends_on.join(", ") : "none"}`,
    `- **Worker**: ${workerName}`,
  ];
  const howTo = [
    `- Write your result (Markdown) to \`${p.result}\`; it becomes the task's result.`,
    `- To ask a person, write the question (Markdown) to \`${p.question}\` and stop. You will be run again with the answer in \`${p.answer}\`.`,
    "- Exit with a non-zero code if the task failed; it will be retried.",
  ];
  if (task.role === "planner") {
    howTo.push(
      `- To create tasks, write one file per task to \`${p.specs}/<name>.md\`, in this form (Component \`docs\` goes to the documentation worker, anything else to an executor; Depends On names other files' titles, their file names or task ids, or \`None\`):`,
      "",
      "  ```md",
      "  # Task: <title>",
      "",
      "  **Component**: <backend | frontend | docs | …>",
      "  **Priority**: <critical | high | normal | low>",
      "  **Depends On**: <None | titles, file names or task ids, comma-separated>",
      "",
      "  ## Description",
      "  <what to do and why>",
      "",
      "  ## Acceptance Criteria",
      "  - [ ] <a checkable outcome>",
      "  ```",
    );
  }
  return [`# Task: ${task.title}`, "", ...facts, "", task.description.trim() || "(no description)", "", "---", "", "## How to report", "", ...howTo, ""].join("\n");
}

/** What the agent reads on stdin: the task, and after an answer, the question and its answer. */
export function renderPrompt(taskFile: string, answered: { question: string; answer: string; answerFile: string } | null): string {
  if (!answered) return taskFile;
  return [
    taskFile,
    "## Your question was answered",
    "",
    "You asked:",
    "",
    ...answered.question.split("\n").map((l) => `> ${l}`),
    "",
    `The answer (also in \`${answered.answerFile}\`):`,
    "",
    answered.answer,
    "",
    "Continue the task with it.",
    "",
  ].join("\n");
}
