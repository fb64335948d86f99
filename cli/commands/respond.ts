import { ApiFailure, apiFor } from "../api";
import type { Question } from "../api-types";
import { loadConfig } from "../config";
import { action, type CliCommand } from "../context";
import { CliError, UsageError } from "../errors";
import { textOrStdin } from "../options";
import { oneLine, printJson } from "../output";

/**
 * Question ids are minted by the API as `q_…`, but a worker may name itself `q_…` too (worker
 * ids are the client's): such a target is tried as a question first, then as a worker.
 */
export const isQuestionId = (target: string) => target.startsWith("q_");

type Api = ReturnType<typeof apiFor>;

/** The single open question of a worker; none is `undefined`, several a failure that lists them. */
async function openQuestionOf(api: Api, workerId: string): Promise<Question | undefined> {
  const { items } = await api.listAll<Question>("/v1/questions", { status: "open" }, 10_000);
  const mine = items.filter((q) => q.worker_id === workerId);
  if (mine.length > 1) {
    const list = mine.map((q) => `  ${q.id}  (task ${q.task_id}) ${oneLine(q.text, 60)}`).join("\n");
    throw new CliError(`worker ${workerId} has ${mine.length} open questions:\n${list}`, 1, `answer one by its id: switchboard respond ${mine[0]?.id} "…"`);
  }
  return mine[0];
}

const answerQuestion = async (api: Api, id: string, text: string) => (await api.post<Question>(`/v1/questions/${encodeURIComponent(id)}/answer`, { text })).body;

/**
 * `switchboard respond WORKER|QUESTION "answer"`: answers a question by its id, or the one open
 * question of a worker. A worker with none, or with several, is a failure (exit 1) that says
 * what to do instead, so an answer never lands on a question the person did not mean.
 */
export const respondCommand: CliCommand = {
  name: "respond",
  register(program, ctx) {
    program
      .command("respond")
      .summary("answer a worker's question")
      .description("Answer a question by its id (q_…), or the single open question of a worker. Needs an operator key.")
      .argument("<worker|question>", "a question id (q_…) or a worker id")
      .argument("<answer>", "the answer, in Markdown; - reads it from stdin")
      .option("--json", "print the answered question as JSON")
      .action(
        action(ctx, async (target: string, answerArg: string, opts: { json?: boolean }) => {
          if (target.trim() === "") throw new UsageError("the question id or worker id is empty", "`switchboard status` lists the open questions and who asked them");
          // Blank is refused by the API too, but after the requests: it is bad usage, exit 2.
          if (answerArg.trim() === "") throw new UsageError("the answer is empty", 'give it as text, or - to read it from stdin: switchboard respond q_… "SQLite, on D1."');
          const answer = await textOrStdin(ctx, answerArg, "the answer");
          const api = apiFor(loadConfig(ctx.env));
          let answered: Question;
          if (isQuestionId(target)) {
            try {
              answered = await answerQuestion(api, target, answer);
            } catch (error) {
              // No such question: the target may be a worker that named itself `q_…`.
              if (!(error instanceof ApiFailure && error.status === 404)) throw error;
              const question = await openQuestionOf(api, target);
              if (!question) throw new CliError(`no question ${target}, and no open question from a worker ${target}`, 1, "`switchboard status` lists the open questions and who asked them");
              answered = await answerQuestion(api, question.id, answer);
            }
          } else {
            const question = await openQuestionOf(api, target);
            if (!question) throw new CliError(`no open question from worker ${target}`, 1, "`switchboard status` lists the open questions and who asked them");
            answered = await answerQuestion(api, question.id, answer);
          }
          if (opts.json) printJson(ctx.out, answered);
          else ctx.out(`Answered ${answered.id} from ${answered.worker_id} (task ${answered.task_id}).\n`);
          return 0;
        }),
      );
  },
};
