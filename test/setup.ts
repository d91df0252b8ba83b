// Preloaded by bunfig.toml for every `bun test` run: cleans up after the whole run.
import { afterAll } from "bun:test";
import { cleanupAll } from "./support.ts";

afterAll(cleanupAll);
