import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error s3rver ships no types
import S3rver from "s3rver";

/** A local S3-compatible server (s3rver) on 127.0.0.1 with a `switchboard` bucket; its data in `dir`. */
export async function startLocalS3(): Promise<{ url: string; dir: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "s3rver-"));
  const s3: { run(): Promise<{ port: number }>; close(): Promise<void> } = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dir, configureBuckets: [{ name: "switchboard" }] });
  const { port } = await s3.run();
  return {
    url: `http://127.0.0.1:${port}`,
    dir,
    async stop() {
      await s3.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
