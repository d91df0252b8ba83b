// The scheduler's placement rules on its in-memory state.

import { expect, test } from "bun:test";
import { MemoryState } from "../src/dist/state.ts";

const T1 = "1".repeat(64);
const T2 = "2".repeat(64);

function fleet(): MemoryState {
  const state = new MemoryState();
  state.addServer({ id: "small", name: "small", cores: 2, capacity: 3, toolchains: [] }, 0);
  state.addServer({ id: "big", name: "big", cores: 8, capacity: 9, toolchains: [T1] }, 0);
  return state;
}

test("jobs go to the lowest running jobs per core until every server is full", () => {
  const state = fleet();
  const placed = Array.from({ length: 12 }, () => state.place(T2));
  // Loads after each: the big server takes 4 jobs for every one on the small one.
  expect(placed.filter((p) => p === "big").length).toBe(9);
  expect(placed.filter((p) => p === "small").length).toBe(3);
  expect(state.place(T2)).toBeUndefined();
  state.finish("small", true);
  expect(state.place(T2)).toBe("small");
  expect(state.servers().map((s) => [s.name, s.running, s.jobsDone])).toEqual([["small", 3, 1], ["big", 9, 0]]);
});

test("among equally loaded servers, one holding the toolchain comes first; otherwise join order", () => {
  const state = fleet();
  expect(state.place(T1)).toBe("big"); // both idle: big holds T1
  const other = fleet();
  expect(other.place(T2)).toBe("small"); // both idle, neither holds T2: the first to join
  other.addToolchain("big", T2);
  const third = fleet();
  third.addToolchain("big", T2);
  expect(third.place(T2)).toBe("big");
});

test("a holder that is busier loses to an idle server without the toolchain", () => {
  const state = fleet();
  // big holds T1 and wins while both are idle; then 1/8 running loses to 0/2.
  expect([state.place(T1), state.place(T1)]).toEqual(["big", "small"]);
});

test("heartbeats, silence and removal", () => {
  const state = fleet();
  expect(state.heartbeat("small", [T2], 5000)).toBe(true);
  expect(state.silentSince(6000, 3000)).toEqual(["big"]);
  expect(state.removeServer("big")).toBe(true);
  expect(state.heartbeat("big", [], 7000)).toBe(false);
  expect(state.servers()).toMatchObject([{ name: "small", toolchains: 1, lastHeartbeatMs: 5000 }]);
  state.finish("gone", true); // a job of a dropped server ending late is harmless
});
