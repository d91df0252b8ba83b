// What the scheduler knows about its build servers, behind a small interface: kept in memory
// here; a shared store (Redis) can implement the same methods so several schedulers agree.
//
// Placement: the server with the lowest running jobs per core; among equally loaded ones, a
// server that already holds the job's toolchain comes first (it need not fetch it). A server
// whose running jobs reach its capacity (cores + 1 by default) is full. Ties after that go
// to the server that joined first, so placement is deterministic.

import type { ServerStatus } from "./protocol.ts";

export interface ServerInfo {
  id: string;
  name: string;
  cores: number;
  /** Jobs it accepts at once. */
  capacity: number;
  toolchains: readonly string[];
}

export interface SchedulerState {
  addServer(server: ServerInfo, nowMs: number): void;
  /** Forgets the server; false if it was not known. */
  removeServer(id: string): boolean;
  /** Records a heartbeat; false if the server is not known (it was dropped). */
  heartbeat(id: string, toolchains: readonly string[], nowMs: number): boolean;
  /** The server now holds `toolchain` (it fetched it for a job). */
  addToolchain(id: string, toolchain: string): void;
  /** Picks a server for a job and counts the job as running there; undefined when all are full. */
  place(toolchain: string): string | undefined;
  /** A job placed on `id` ended; `done` when it produced a result. */
  finish(id: string, done: boolean): void;
  /** Servers whose last heartbeat is older than `maxAgeMs`. */
  silentSince(nowMs: number, maxAgeMs: number): string[];
  servers(): ServerStatus[];
}

interface ServerRecord extends ServerInfo {
  toolchainSet: Set<string>;
  running: number;
  lastHeartbeatMs: number;
  jobsDone: number;
}

export class MemoryState implements SchedulerState {
  // Insertion order is join order, the final tie-break.
  private readonly byId = new Map<string, ServerRecord>();

  addServer(server: ServerInfo, nowMs: number): void {
    this.byId.set(server.id, {
      ...server,
      toolchainSet: new Set(server.toolchains),
      running: 0,
      lastHeartbeatMs: nowMs,
      jobsDone: 0,
    });
  }

  removeServer(id: string): boolean {
    return this.byId.delete(id);
  }

  heartbeat(id: string, toolchains: readonly string[], nowMs: number): boolean {
    const s = this.byId.get(id);
    if (!s) return false;
    s.lastHeartbeatMs = nowMs;
    s.toolchainSet = new Set(toolchains);
    return true;
  }

  addToolchain(id: string, toolchain: string): void {
    this.byId.get(id)?.toolchainSet.add(toolchain);
  }

  place(toolchain: string): string | undefined {
    let best: ServerRecord | undefined;
    let bestLoad = Infinity;
    let bestHolds = false;
    for (const s of this.byId.values()) {
      if (s.running >= s.capacity) continue;
      const load = s.running / s.cores;
      const holds = s.toolchainSet.has(toolchain);
      if (load < bestLoad || (load === bestLoad && holds && !bestHolds)) {
        best = s;
        bestLoad = load;
        bestHolds = holds;
      }
    }
    if (!best) return undefined;
    best.running++;
    return best.id;
  }

  finish(id: string, done: boolean): void {
    const s = this.byId.get(id);
    if (!s) return;
    s.running = Math.max(0, s.running - 1);
    if (done) s.jobsDone++;
  }

  silentSince(nowMs: number, maxAgeMs: number): string[] {
    return [...this.byId.values()].filter((s) => nowMs - s.lastHeartbeatMs > maxAgeMs).map((s) => s.id);
  }

  servers(): ServerStatus[] {
    return [...this.byId.values()].map((s) => ({
      id: s.id,
      name: s.name,
      cores: s.cores,
      running: s.running,
      toolchains: s.toolchainSet.size,
      lastHeartbeatMs: s.lastHeartbeatMs,
      jobsDone: s.jobsDone,
    }));
  }
}
