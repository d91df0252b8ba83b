// Direct mode: answer a compile from a manifest without running the preprocessor. A hit
// needs every file the recorded preprocessing read to be unchanged (digests from the daemon's
// stat-validated cache) and no file to have appeared where the preprocessor would have found
// it first. A miss falls back to preprocessor mode, which records a new variant.

import { statSync } from "node:fs";
import type { FileDigest, FileDigests, Listings } from "../../daemon/file-digests.ts";
import type { PathNormalizer } from "../basedirs.ts";
import type { CFamilyCompile } from "../types.ts";
import { runsPreprocessor } from "./args.ts";
import type { Manifest, ManifestVariant } from "./manifest.ts";
import { dirname, shadowCandidates, type IncludedFile, type SearchDirs } from "./preprocessed.ts";

/**
 * Direct mode needs a preprocessing step it can stand in for, and arguments it understands:
 * anything passed straight to the preprocessor (-Wp, -Xpreprocessor) could change what it
 * reads in ways the manifest would not see.
 */
export function directEligible(parsed: CFamilyCompile): boolean {
  if (!runsPreprocessor(parsed.language)) return false;
  return !parsed.preprocessorArgs.some((a) => a.startsWith("-Wp,") || a === "-Xpreprocessor");
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** Today as the compiler will print __DATE__: in the caller's TZ (or the daemon's). */
export function localDate(env: Record<string, string | undefined>, now = new Date()): string {
  const tz = env.TZ ?? "";
  let format = dateFormats.get(tz);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat("en-CA", tz ? { timeZone: tz.replace(/^:/, "") } : {});
    } catch {
      format = new Intl.DateTimeFormat("en-CA");
    }
    dateFormats.set(tz, format);
  }
  return format.format(now);
}

export interface DirectContext {
  cwd: string;
  norm: PathNormalizer;
  digests: FileDigests;
  env: Record<string, string | undefined>;
}

/** A path or directory as the preprocessor printed it ("" is the cwd), on disk. */
function onDisk(ctx: DirectContext, printed: string): string {
  return printed === "" ? ctx.cwd : printed.startsWith("/") ? printed : `${ctx.cwd}/${printed}`;
}

/** A path stored in a manifest, on disk for this call; undefined if it needs a base we lack. */
function resolve(ctx: DirectContext, normalized: string): string | undefined {
  const p = ctx.norm.expand(normalized);
  return p === undefined ? undefined : onDisk(ctx, p);
}

/** Per absent-name list of a (memory-cached) manifest: the directory listings it last passed against. */
const passed = new WeakMap<string[], { dir: string; listings: Listings }>();

/** The first variant whose files are unchanged and whose shadowing names are still absent. */
export function findVariant(m: Manifest, ctx: DirectContext): ManifestVariant | undefined {
  const memo = new Map<string, Set<string> | null>();
  let today: string | undefined;
  variants: for (const v of m.variants) {
    if (v.date !== undefined && v.date !== (today ??= localDate(ctx.env))) continue;
    for (const [path, digest] of v.files) {
      const abs = resolve(ctx, path);
      if (abs === undefined || ctx.digests.file(abs)?.digest !== digest) continue variants;
    }
    for (const [index, mtimeMs] of v.stamps ?? []) {
      const abs = resolve(ctx, v.files[index]![0]);
      if (abs === undefined || ctx.digests.file(abs)?.mtimeMs !== mtimeMs) continue variants;
    }
    for (const [dir, names] of v.absent) {
      const abs = resolve(ctx, dir);
      if (abs === undefined) continue variants;
      // Absence only changes with a listing: skip names whose listings are the ones they passed.
      const last = passed.get(names);
      if (last?.dir === abs && ctx.digests.unchanged(last.listings, memo)) continue;
      const listings: Listings = new Map();
      for (const name of names) if (ctx.digests.exists(abs, name, memo, listings)) continue variants;
      passed.set(names, { dir: abs, listings });
    }
    return v;
  }
  return undefined;
}

/**
 * File times come from the kernel's coarse clock, which can trail Date.now() by a tick:
 * anything stamped this close to the compile's start counts as changed during it.
 */
export const CLOCK_SLACK_MS = 20;

export type RecordOutcome = { variant: ManifestVariant } | { skipped: string };

/**
 * Builds the variant a finished compile supports, from the files it read (with the file that
 * included each, as far as known) and the search list; or says why there is none: a file
 * that uses __TIME__, one that changed after the compile started, one that vanished.
 */
export function recordVariant(
  ctx: DirectContext,
  includes: IncludedFile[],
  pch: string[],
  searchDirs: SearchDirs | undefined,
  result: string,
  startedAtMs: number,
): RecordOutcome {
  if (!searchDirs) return { skipped: "the preprocessor did not print its search list" };
  const since = startedAtMs - CLOCK_SLACK_MS;
  const memo = new Map<string, Set<string> | null>();
  const files: [string, string][] = [];
  const stamps: [number, number][] = [];
  let usesDate = false;
  /** `compiled`: a precompiled header, whose macro table names __TIME__ without using it. */
  const note = (path: string, compiled = false): string | undefined => {
    const d: FileDigest | undefined = ctx.digests.file(onDisk(ctx, path));
    if (!d) return `${path} is gone`;
    if (d.mtimeMs >= since || d.ctimeMs >= since) return `${path} changed during the compile`;
    if (!compiled) {
      if (d.usesTime) return `${path} uses __TIME__`;
      if (d.usesTimestamp) stamps.push([files.length, d.mtimeMs]);
      usesDate ||= d.usesDate;
    }
    files.push([ctx.norm.path(path), d.digest]);
    return undefined;
  };
  const absentGch: [string, string][] = [];
  for (const inc of includes) {
    const why = note(inc.path);
    if (why) return { skipped: why };
    // gcc prefers a valid x.h.gch next to x.h: record it, or that it must not appear.
    const gch = `${inc.path}.gch`;
    const gchDir = dirname(gch);
    const gchName = gch.slice(gch.lastIndexOf("/") + 1);
    if (ctx.digests.exists(onDisk(ctx, gchDir), gchName, memo)) {
      const whyGch = note(gch, true);
      if (whyGch) return { skipped: whyGch };
    } else {
      absentGch.push([gchDir, gchName]);
    }
  }
  for (const p of pch) {
    const why = note(p, true);
    if (why) return { skipped: why };
  }
  // A candidate that exists now is a false reading only if it existed during the compile;
  // one that appeared since may be exactly the shadowing file this check is for.
  let appeared: string | undefined;
  const candidates = shadowCandidates(includes, searchDirs, (dir, name) => {
    const abs = onDisk(ctx, dir);
    if (!ctx.digests.exists(abs, name, memo)) return false;
    const st = statSync(`${abs}/${name}`, { throwIfNoEntry: false });
    if (!st || st.ctimeMs >= since || st.mtimeMs >= since) appeared ??= dir === "" ? name : `${dir}/${name}`;
    return true;
  });
  if (appeared !== undefined) return { skipped: `${appeared} appeared on the include path during the compile` };
  for (const [dir, name] of absentGch) {
    let names = candidates.get(dir);
    if (!names) candidates.set(dir, (names = new Set()));
    names.add(name);
  }
  // Each name shrinks to its shortest missing leading part: one "bits" stands for every
  // bits/... header a directory lacks, one "" for everything under a missing directory.
  const absent: [string, string[]][] = [];
  for (const [dir, names] of candidates) {
    const abs = onDisk(ctx, dir);
    const short = new Set<string>();
    for (const name of names) {
      const prefix = ctx.digests.missingPrefix(abs, name, memo);
      if (prefix !== undefined) short.add(prefix);
    }
    if (short.size === 0) continue;
    absent.push([ctx.norm.path(dir), short.has("") ? [""] : [...short]]);
  }
  const variant: ManifestVariant = { result, files, absent };
  if (stamps.length > 0) variant.stamps = stamps;
  if (usesDate) variant.date = localDate(ctx.env);
  return { variant };
}

