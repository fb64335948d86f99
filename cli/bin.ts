import { main } from "./switchboard";

// Exit once stdout and stderr have flushed: a pipe is asynchronous on some platforms, and a
// long table or JSON document must not be cut off by process.exit.
function exit(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
}

main(process.argv.slice(2)).then(exit, (error: unknown) => {
  process.stderr.write(`switchboard: ${error instanceof Error ? error.message : String(error)}\n`);
  exit(1);
});
