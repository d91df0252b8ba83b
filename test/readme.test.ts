// The README is part of the product: its first screen and its config example must work.

import { expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../src/config/config.ts";
import { REPO, scratch } from "./support.ts";

const readme = readFileSync(join(REPO, "README.md"), "utf8");

test("the first screen gives the install-and-demo command and the test command, which CI runs", () => {
  const firstScreen = readme.split("\n").slice(0, 25).join("\n");
  expect(firstScreen).toContain("npm ci && npm run demo");
  expect(firstScreen).toContain("npm test");
  const scripts = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).scripts;
  expect(scripts.demo).toBeDefined();
  expect(scripts.test).toBeDefined();
  expect(readFileSync(join(REPO, ".ci", "run"), "utf8")).toMatch(/^npm test$/m);
});

test("the config example in the README loads without errors or warnings", () => {
  const toml = /```toml\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(toml).toBeDefined();
  const file = join(scratch(), "config");
  writeFileSync(file, toml!);
  const { config, warnings } = loadConfig({ KILN_CONF: file, HOME: "/home/someone" });
  expect(warnings).toEqual([]);
  expect(config.cacheDir).toBe("/home/someone/.cache/kiln");
  expect(config.cacheSize).toBe(10 * 1024 ** 3);
  expect(config.directMode).toBe(true);
});

test("every config example in the README loads without errors or warnings", () => {
  // kiln-dist's scheduler.toml and server.toml are checked by test/dist-cli.test.ts.
  const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .filter((toml) => !/^# (scheduler|server)\.toml:/.test(toml));
  expect(blocks.length).toBeGreaterThan(3);
  for (const toml of blocks) {
    const file = join(scratch(), "config");
    writeFileSync(file, toml);
    const { warnings } = loadConfig({ KILN_CONF: file, HOME: "/home/someone" });
    expect(warnings).toEqual([]);
  }
});
