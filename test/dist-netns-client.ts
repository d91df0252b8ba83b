// Run by dist-netns.test.ts inside a network namespace: uploads a toolchain, sends one job,
// writes its one output and prints {status, server, exitCode}. Inputs written "@name" are read
// from the job's cwd.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runJob, uploadToolchain, type JobSpec } from "./dist-support.ts";

const spec = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as {
  url: string;
  token: string;
  toolchainFile: string;
  toolchain: string;
  job: JobSpec;
  out: string;
};
const upload = await uploadToolchain(spec.url, spec.token, spec.toolchain, readFileSync(spec.toolchainFile));
if (upload !== 201 && upload !== 200) throw new Error(`toolchain upload: ${upload}`);
const inputs: Record<string, Uint8Array | string> = {};
for (const [path, value] of Object.entries(spec.job.inputs)) {
  inputs[path] = typeof value === "string" && value.startsWith("@") ? readFileSync(join(spec.job.cwd, value.slice(1))) : value;
}
const answer = await runJob(spec.url, spec.token, { ...spec.job, inputs });
if (!answer.ok) {
  console.log(JSON.stringify({ status: answer.status, text: answer.text }));
} else {
  writeFileSync(spec.out, answer.outputs.get(spec.job.outputs[0]!)!);
  console.log(JSON.stringify({ status: answer.status, server: answer.result.server, exitCode: answer.result.exitCode }));
}
