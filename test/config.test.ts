import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, parseSize } from "../src/config/config.ts";
import { KilnError } from "../src/util/errors.ts";

const root = mkdtempSync(join(tmpdir(), "kiln-config-test-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
/** A fresh home directory, optionally with a config file at the given path inside it. */
function scratch(): string {
  const dir = join(root, `case-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function writeConfig(text: string, name = "kiln.toml"): string {
  const path = join(scratch(), name);
  writeFileSync(path, text);
  return path;
}

/** Loads `text` as the config named by KILN_CONF, with a scratch home. */
function loadText(text: string, env: Record<string, string> = {}) {
  const file = writeConfig(text);
  return { file, ...loadConfig({ KILN_CONF: file, ...env }, { homeDir: "/home/me" }) };
}

function errorOf(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error("expected a KilnError, but nothing was thrown");
}

function loadError(text: string, env: Record<string, string> = {}): { file: string; error: KilnError } {
  const file = writeConfig(text);
  return { file, error: errorOf(() => loadConfig({ KILN_CONF: file, ...env }, { homeDir: "/home/me" })) };
}

describe("defaults", () => {
  test("with no config file and no variables", () => {
    const home = scratch();
    const { config, warnings } = loadConfig({}, { homeDir: home });
    expect(config).toEqual({
      cacheDir: join(home, ".cache/kiln"),
      cacheSize: 10 * 1024 ** 3,
      idleTimeoutSec: 600,
      logLevel: "warn",
      logFile: undefined,
      directMode: true,
      dependMode: false,
      basedirs: [],
      remoteLevels: [],
      distSchedulerUrl: undefined,
      distToken: undefined,
      distCacheDir: undefined,
      distConnectTimeoutSec: 5,
      distRequestTimeoutSec: 600,
      distRetryAfterSec: 5,
      configFile: undefined,
    });
    expect(warnings).toEqual([]);
  });

  test("the cache lives under XDG_CACHE_HOME when it is absolute", () => {
    const home = scratch();
    expect(loadConfig({ XDG_CACHE_HOME: "/var/cache/me" }, { homeDir: home }).config.cacheDir).toBe(
      "/var/cache/me/kiln",
    );
    // The XDG spec says relative values are to be ignored.
    expect(loadConfig({ XDG_CACHE_HOME: "rel" }, { homeDir: home }).config.cacheDir).toBe(
      join(home, ".cache/kiln"),
    );
  });

  test("HOME from the environment is the home when none is passed", () => {
    const home = scratch();
    expect(loadConfig({ HOME: home }).config.cacheDir).toBe(join(home, ".cache/kiln"));
  });
});

describe("config file location", () => {
  test("~/.config/kiln/config is read when present", () => {
    const home = scratch();
    mkdirSync(join(home, ".config/kiln"), { recursive: true });
    writeFileSync(join(home, ".config/kiln/config"), '[cache.disk]\nsize = "1G"\n');
    const { config } = loadConfig({}, { homeDir: home });
    expect(config.configFile).toBe(join(home, ".config/kiln/config"));
    expect(config.cacheSize).toBe(1024 ** 3);
  });

  test("$XDG_CONFIG_HOME/kiln/config wins over ~/.config", () => {
    const home = scratch();
    const xdg = scratch();
    mkdirSync(join(xdg, "kiln"));
    writeFileSync(join(xdg, "kiln/config"), "[daemon]\nidle_timeout = 5\n");
    const { config } = loadConfig({ XDG_CONFIG_HOME: xdg }, { homeDir: home });
    expect(config.configFile).toBe(join(xdg, "kiln/config"));
    expect(config.idleTimeoutSec).toBe(5);
  });

  test("KILN_CONF names the file, and ~ in it is expanded", () => {
    const home = scratch();
    writeFileSync(join(home, "my.toml"), "[cache]\ndepend_mode = true\n");
    const { config } = loadConfig({ KILN_CONF: "~/my.toml" }, { homeDir: home });
    expect(config.configFile).toBe(join(home, "my.toml"));
    expect(config.dependMode).toBe(true);
  });

  test("a missing file named by KILN_CONF is an error that says which file and how to fix it", () => {
    const home = scratch();
    const missing = join(home, "nope.toml");
    const error = errorOf(() => loadConfig({ KILN_CONF: missing }, { homeDir: home }));
    expect(error.code).toBe("KILN_CONFIG_MISSING");
    expect(error.message).toContain(missing);
    expect(error.message).toContain("KILN_CONF");
    expect(error.hint).toContain("unset KILN_CONF");
    expect(error.hint).toContain(join(home, ".config/kiln/config"));
  });

  test("a relative KILN_CONF is refused rather than read from whatever the cwd is", () => {
    const error = errorOf(() => loadConfig({ KILN_CONF: "kiln.toml" }, { homeDir: scratch() }));
    expect(error.code).toBe("KILN_CONFIG_VALUE");
    expect(error.message).toContain("KILN_CONF");
    expect(error.hint).toContain('KILN_CONF="$PWD/kiln.toml"');
  });

  test("a config path that is a directory is an error naming it", () => {
    const dir = scratch();
    const error = errorOf(() => loadConfig({ KILN_CONF: dir }, { homeDir: scratch() }));
    expect(error.code).toBe("KILN_CONFIG_READ");
    expect(error.message).toContain(dir);
    expect(error.hint).toContain("not a directory");
  });
});

describe("file values", () => {
  test("every Kiln key is read", () => {
    const { file, config, warnings } = loadText(`
basedirs = ["/home/me/src/", "/build//out", "~/work"]

[cache]
direct_mode = false
depend_mode = true

[cache.disk]
dir = "/var/cache/kiln"
size = "500M"

[daemon]
idle_timeout = 0
log = "debug"
log_file = "/tmp/kiln.log"

[dist]
scheduler_url = "http://10.0.0.5:10600/"
cache_dir = "toolchains"
connect_timeout = 2
request_timeout = 60
retry_after = 1

[dist.auth]
type = "token"
token = "s3cret"
`);
    expect(config).toEqual({
      cacheDir: "/var/cache/kiln",
      cacheSize: 500 * 1024 ** 2,
      idleTimeoutSec: 0,
      logLevel: "debug",
      logFile: "/tmp/kiln.log",
      directMode: false,
      dependMode: true,
      basedirs: ["/home/me/src", "/build/out", "/home/me/work"],
      remoteLevels: [],
      distSchedulerUrl: "http://10.0.0.5:10600",
      distToken: "s3cret",
      distCacheDir: join(file, "../toolchains"),
      distConnectTimeoutSec: 2,
      distRequestTimeoutSec: 60,
      distRetryAfterSec: 1,
      configFile: file,
    });
    expect(warnings).toEqual([]);
  });

  test("relative paths resolve against the config file's directory; ~ expands to home", () => {
    const { file, config } = loadText('[cache.disk]\ndir = "cache"\n[daemon]\nlog_file = "~/kiln.log"\n');
    expect(config.cacheDir).toBe(join(file, "../cache"));
    expect(config.logFile).toBe("/home/me/kiln.log");
  });

  test("size may be a byte count", () => {
    expect(loadText("[cache.disk]\nsize = 1048576\n").config.cacheSize).toBe(1048576);
  });

  test("dotted keys and inline tables mean the same as sections", () => {
    expect(loadText('cache.disk.size = "2G"\n').config.cacheSize).toBe(2 * 1024 ** 3);
    expect(loadText('[cache]\ndisk = { size = "3G" }\n').config.cacheSize).toBe(3 * 1024 ** 3);
  });

  test("sccache's use_preprocessor_cache_mode sets direct mode", () => {
    const { config } = loadText(
      "[cache.disk.preprocessor_cache_mode]\nuse_preprocessor_cache_mode = false\n",
    );
    expect(config.directMode).toBe(false);
  });

  test("direct_mode and use_preprocessor_cache_mode that agree are fine; disagreeing is an error", () => {
    const agree = "[cache]\ndirect_mode = false\n[cache.disk.preprocessor_cache_mode]\nuse_preprocessor_cache_mode = false\n";
    expect(loadText(agree).config.directMode).toBe(false);
    const { file, error } = loadError(
      "[cache]\ndirect_mode = true\n[cache.disk.preprocessor_cache_mode]\nuse_preprocessor_cache_mode = false\n",
    );
    expect(error.code).toBe("KILN_CONFIG_VALUE");
    expect(error.message).toContain(file);
    expect(error.message).toContain("use_preprocessor_cache_mode");
    expect(error.message).toContain("[cache] direct_mode");
  });

  test("a byte-order mark at the start of the file is accepted", () => {
    expect(loadText('\uFEFF[cache.disk]\nsize = "1G"\n').config.cacheSize).toBe(1024 ** 3);
  });
});

describe("sccache configs", () => {
  test("unsupported sections and keys become warnings that say what is ignored and why", () => {
    const { file, config, warnings } = loadText(`
server_startup_timeout_ms = 10000
cache_stats_file = "/tmp/stats.json"

[dist]
scheduler_url = "http://1.2.3.4:10600"
toolchains = []
[dist.auth]
type = "token"
token = "secrettoken"

[cache.disk]
dir = "/tmp/.cache/sccache"
size = 7516192768
rw_mode = "READ_WRITE"

[cache.disk.preprocessor_cache_mode]
use_preprocessor_cache_mode = true
file_stat_matches = true
use_ctime_for_stat = true
ignore_time_macros = false
skip_system_headers = false
hash_working_directory = true

[cache.azure]
connection_string = "x"
[cache.gcs]
bucket = "b"
[cache.gha]
url = "http://localhost"
[cache.memcached]
endpoint = "tcp://127.0.0.1:11211"
[cache.redis]
url = "redis://user:hunter2@1.2.3.4:6379/1"
[cache.s3]
bucket = "name"
[cache.webdav]
endpoint = "http://192.168.10.42:80/some/webdav.php"
[cache.oss]
bucket = "name"
[cache.cos]
bucket = "name"
`);
    expect(config.cacheDir).toBe("/tmp/.cache/sccache");
    expect(config.cacheSize).toBe(7516192768);
    expect(config.directMode).toBe(true);
    // sccache's shared caches are read unchanged, fastest first.
    expect(config.remoteLevels.map((l) => [l.backend, "endpoint" in l ? l.endpoint : undefined])).toEqual([
      ["redis", "redis://user:hunter2@1.2.3.4:6379/1"],
      ["memcached", "tcp://127.0.0.1:11211"],
      ["webdav", "http://192.168.10.42:80/some/webdav.php"],
      ["s3", undefined],
    ]);
    for (const section of ["cache.azure", "cache.gcs", "cache.gha", "cache.oss", "cache.cos"]) {
      const warning = warnings.find((w) => w.includes(`[${section}]`));
      expect(warning).toBeDefined();
      expect(warning).toContain(file);
      expect(warning).toContain("not supported by this Kiln version yet; ignored");
    }
    expect(config.distSchedulerUrl).toBe("http://1.2.3.4:10600");
    expect(config.distToken).toBe("secrettoken");
    for (const key of ["toolchains", "server_startup_timeout_ms", "cache_stats_file", "rw_mode", "file_stat_matches", "use_ctime_for_stat", "ignore_time_macros", "skip_system_headers", "hash_working_directory"]) {
      const warning = warnings.find((w) => w.includes(key));
      expect(warning).toBeDefined();
      expect(warning).toContain(file);
      expect(warning).toEndWith("; ignored");
    }
    expect(warnings).toHaveLength(14);
    // Values of ignored sections are never echoed: they hold credentials.
    expect(warnings.join("\n")).not.toContain("hunter2");
    expect(warnings.join("\n")).not.toContain("secrettoken");
  });
});

describe("environment", () => {
  test("overrides the file", () => {
    const { config } = loadText(
      '[cache.disk]\ndir = "/from/file"\nsize = "1G"\n[daemon]\nlog = "error"\nidle_timeout = 5\n[cache]\ndirect_mode = true\n',
      {
        KILN_DIR: "/from/env/",
        KILN_CACHE_SIZE: "2G",
        KILN_LOG: "INFO",
        KILN_IDLE_TIMEOUT: "0",
        KILN_DIRECT: "off",
        KILN_DEPEND: "yes",
        KILN_ERROR_LOG: "~/err.log",
        KILN_BASEDIRS: "/a/b/::/c",
      },
    );
    expect(config.cacheDir).toBe("/from/env");
    expect(config.cacheSize).toBe(2 * 1024 ** 3);
    expect(config.logLevel).toBe("info");
    expect(config.idleTimeoutSec).toBe(0);
    expect(config.directMode).toBe(false);
    expect(config.dependMode).toBe(true);
    expect(config.logFile).toBe("/home/me/err.log");
    expect(config.basedirs).toEqual(["/a/b", "/c"]);
  });

  test("booleans accept 1/0/true/false/yes/no/on/off in any case", () => {
    const cases: [string, boolean][] = [
      ["1", true], ["true", true], ["YES", true], ["On", true],
      ["0", false], ["FALSE", false], ["no", false], ["off", false],
    ];
    for (const [text, expected] of cases) {
      expect(loadConfig({ KILN_DEPEND: text }, { homeDir: "/home/me" }).config.dependMode).toBe(expected);
    }
  });

  test("an empty variable counts as unset", () => {
    const { config } = loadConfig({ KILN_DIR: "", KILN_CACHE_SIZE: "", KILN_CONF: "" }, { homeDir: "/nonexistent-home" });
    expect(config.cacheDir).toBe("/nonexistent-home/.cache/kiln");
    expect(config.cacheSize).toBe(10 * 1024 ** 3);
    expect(config.configFile).toBeUndefined();
  });

  test("a bad boolean names the variable", () => {
    const error = errorOf(() => loadConfig({ KILN_DIRECT: "maybe" }, { homeDir: "/home/me" }));
    expect(error.code).toBe("KILN_CONFIG_VALUE");
    expect(error.message).toBe('environment variable KILN_DIRECT: "maybe" is not a boolean');
    expect(error.hint).toContain("yes/no");
  });

  test("a bad size names the variable", () => {
    const error = errorOf(() => loadConfig({ KILN_CACHE_SIZE: "lots" }, { homeDir: "/home/me" }));
    expect(error.code).toBe("KILN_CONFIG_VALUE");
    expect(error.message).toBe('environment variable KILN_CACHE_SIZE: "lots" is not a size');
    expect(error.hint).toContain('"10G"');
  });

  test("a relative KILN_DIR is refused with the absolute spelling as the fix", () => {
    const error = errorOf(() => loadConfig({ KILN_DIR: "cache" }, { homeDir: "/home/me" }));
    expect(error.message).toContain("KILN_DIR");
    expect(error.hint).toContain('KILN_DIR="$PWD/cache"');
  });

  test("relative entries in KILN_BASEDIRS are refused", () => {
    const error = errorOf(() => loadConfig({ KILN_BASEDIRS: "/ok:src" }, { homeDir: "/home/me" }));
    expect(error.message).toBe('environment variable KILN_BASEDIRS: "src" is not an absolute path');
  });

  test("bad idle timeout and log level name the variable", () => {
    const timeout = errorOf(() => loadConfig({ KILN_IDLE_TIMEOUT: "10m" }, { homeDir: "/home/me" }));
    expect(timeout.message).toBe('environment variable KILN_IDLE_TIMEOUT: "10m" is not a whole number of seconds');
    const level = errorOf(() => loadConfig({ KILN_LOG: "verbose" }, { homeDir: "/home/me" }));
    expect(level.message).toBe('environment variable KILN_LOG: "verbose" is not a log level');
    expect(level.hint).toContain("debug, info, warn, error");
  });
});

describe("config file errors", () => {
  test("TOML syntax errors name the file and the line", () => {
    const { file, error } = loadError('[cache.disk]\ndir = "/x"\nsize =\n');
    expect(error.code).toBe("KILN_CONFIG_SYNTAX");
    expect(error.message).toStartWith(`${file}:3: invalid TOML on line 3: missing value`);
    expect(error.hint).toContain("line 3");
  });

  test("an unquoted size is a syntax error whose hint shows the quoted form", () => {
    const { file, error } = loadError("# comment\n\n[cache.disk]\nsize = 10G\n");
    expect(error.code).toBe("KILN_CONFIG_SYNTAX");
    expect(error.message).toStartWith(`${file}:4:`);
    expect(error.hint).toContain('size = "10G"');
  });

  test("an unquoted path is a syntax error whose hint says to quote strings", () => {
    const { error } = loadError("[cache.disk]\ndir = /tmp/cache\n");
    expect(error.message).toContain(":2:");
    expect(error.hint).toContain("strings must be quoted");
  });

  test("a duplicate key is reported on the line of the duplicate", () => {
    const { error } = loadError('[cache.disk]\nsize = "1G"\ndir = "/a"\nsize = "2G"\n');
    expect(error.message).toContain(":4:");
    expect(error.message).toContain("redefine");
    expect(error.hint).toContain("only once");
  });

  test("a multi-line array before the error is not blamed for it", () => {
    const { error } = loadError('basedirs = [\n  "/a",\n  "/b",\n]\n[cache.disk]\nsize = 5 G\n');
    expect(error.message).toContain(":6:");
  });

  test("the text of the bad line is not echoed (it may hold a password)", () => {
    const { error } = loadError('[cache.redis]\nurl = "redis://user:hunter2@host\n');
    expect(error.message).toContain(":2:");
    expect(error.format()).not.toContain("hunter2");
  });

  test("a value of the wrong type names the file, the key and a valid example", () => {
    const { file, error } = loadError("[cache.disk]\nsize = true\n");
    expect(error.code).toBe("KILN_CONFIG_VALUE");
    expect(error.message).toBe(
      `${file}: [cache.disk] size must be a size like "10G" or a byte count, not the boolean true`,
    );
    expect(error.hint).toBe('for example: size = "10G"');
  });

  test.each([
    ['[cache.disk]\ndir = 5\n', '[cache.disk] dir must be a path string, not the number 5'],
    ['[cache]\ndirect_mode = "yes"\n', '[cache] direct_mode must be true or false, not the string "yes"'],
    ['[daemon]\nidle_timeout = "600"\n', '[daemon] idle_timeout must be a whole number of seconds, not the string "600"'],
    ['[daemon]\nlog = 3\n', '[daemon] log must be one of "debug", "info", "warn", "error", not the number 3'],
    ['basedirs = "/a"\n', 'basedirs must be a list of absolute paths, not the string "/a"'],
    ["[cache.disk.size]\nx = 1\n", "[cache.disk] size must be a size like \"10G\" or a byte count, not a table"],
  ])("wrong type: %j", (text, message) => {
    const { file, error } = loadError(text);
    expect(error.code).toBe("KILN_CONFIG_VALUE");
    expect(error.message).toBe(`${file}: ${message}`);
    expect(error.hint).toStartWith("for example: ");
  });

  test("a bad size value names the file and key", () => {
    const { file, error } = loadError('[cache.disk]\nsize = "0"\n');
    expect(error.code).toBe("KILN_CONFIG_VALUE");
    expect(error.message).toBe(`${file}: [cache.disk] size: the size must be greater than zero (got "0")`);
  });

  test("bad idle timeouts are refused", () => {
    expect(loadError("[daemon]\nidle_timeout = -1\n").error.message).toContain(
      '[daemon] idle_timeout: "-1" is not a whole number of seconds',
    );
    expect(loadError("[daemon]\nidle_timeout = 1.5\n").error.code).toBe("KILN_CONFIG_VALUE");
    const tooLong = loadError("[daemon]\nidle_timeout = 99999999\n").error;
    expect(tooLong.message).toContain("maximum");
    expect(tooLong.hint).toContain("use 0");
  });

  test("a bad log level lists the valid ones", () => {
    const { file, error } = loadError('[daemon]\nlog = "trace"\n');
    expect(error.message).toBe(`${file}: [daemon] log: "trace" is not a log level`);
    expect(error.hint).toBe('use one of debug, info, warn, error, e.g. log = "info"');
  });

  test("relative basedirs are refused", () => {
    const { file, error } = loadError('basedirs = ["/ok", "src"]\n');
    expect(error.message).toBe(`${file}: basedirs: "src" is not an absolute path`);
    expect(error.hint).toContain("must be absolute");
  });

  test("an unknown key suggests the nearest known key", () => {
    const { file, error } = loadError('[cache.disk]\ndri = "/x"\n');
    expect(error.code).toBe("KILN_CONFIG_KEY");
    expect(error.message).toBe(`${file}: unknown key \`dri\` in [cache.disk]`);
    expect(error.hint).toBe("did you mean `dir`? Keys in [cache.disk]: dir, size");
  });

  test.each([
    ["[daemon]\nidle-timeout = 5\n", "did you mean `idle_timeout`?"],
    ['[daemon]\nlogfile = "/x"\n', "did you mean `log_file`?"],
    ['[cache.disk]\ncache_dir = "/x"\n', "did you mean `dir`?"],
    ['[cache]\nsize = "1G"\n', "did you mean `size` in [cache.disk]?"],
    ['dir = "/x"\n', "did you mean `dir` in [cache.disk]?"],
  ])("unknown key suggestion: %j", (text, hint) => {
    const { error } = loadError(text);
    expect(error.code).toBe("KILN_CONFIG_KEY");
    expect(error.hint).toStartWith(hint);
  });

  test("an unknown key with nothing close says to remove it and lists the keys", () => {
    const { file, error } = loadError("[daemon]\ncolour = true\n");
    expect(error.message).toBe(`${file}: unknown key \`colour\` in [daemon]`);
    expect(error.hint).toBe("remove it or check its spelling. Keys in [daemon]: idle_timeout, log, log_file");
  });

  test("an unknown section is an error with a suggestion", () => {
    const { file, error } = loadError('[cache.dsik]\ndir = "/x"\n');
    expect(error.code).toBe("KILN_CONFIG_KEY");
    expect(error.message).toBe(`${file}: unknown section [cache.dsik]`);
    expect(error.hint).toStartWith("did you mean [cache.disk]?");
    expect(loadError('[disk]\ndir = "/x"\n').error.hint).toStartWith("did you mean [cache.disk]?");
    const none = loadError("[frobnicate]\nx = 1\n").error;
    expect(none.message).toBe(`${none.message.split(":")[0]}: unknown section [frobnicate]`);
    expect(none.hint).toStartWith("Kiln knows [cache], [cache.disk]");
  });

  test("a known section given as a plain value is an error", () => {
    const { file, error } = loadError("cache = 5\n");
    expect(error.code).toBe("KILN_CONFIG_VALUE");
    expect(error.message).toBe(`${file}: \`cache\` must be a section, not the number 5`);
    expect(error.hint).toBe("write it as a table header: [cache]");
  });
});

describe("parseSize", () => {
  test.each([
    ["123", 123],
    ["2048K", 2048 * 1024],
    ["500M", 500 * 1024 ** 2],
    ["10G", 10 * 1024 ** 3],
    ["1.5G", 1.5 * 1024 ** 3],
    ["10GiB", 10 * 1024 ** 3],
    ["10GB", 10 * 1024 ** 3],
    ["10g", 10 * 1024 ** 3],
    ["2 T", 2 * 1024 ** 4],
    ["512B", 512],
    [" 1M ", 1024 ** 2],
    [".5K", 512],
  ])("%j is %d bytes", (text, bytes) => {
    expect(parseSize(text, "test")).toBe(bytes);
  });

  test("numbers are byte counts", () => {
    expect(parseSize(4096, "test")).toBe(4096);
  });

  test.each([["abc"], ["10X"], ["G"], [""], ["-5G"], ["1.5"], ["10 GiBs"], ["1e3"]])(
    "%j is refused with a message naming where it came from",
    (text) => {
      const error = errorOf(() => parseSize(text, "environment variable KILN_CACHE_SIZE"));
      expect(error.code).toBe("KILN_CONFIG_VALUE");
      expect(error.message).toStartWith("environment variable KILN_CACHE_SIZE: ");
      expect(error.hint).toContain("1024-based");
    },
  );

  test("zero, negative, fractional and huge sizes are refused", () => {
    expect(errorOf(() => parseSize("0", "here")).message).toBe('here: the size must be greater than zero (got "0")');
    expect(errorOf(() => parseSize(0, "here")).message).toContain("greater than zero");
    expect(errorOf(() => parseSize(-1, "here")).message).toContain("greater than zero");
    expect(errorOf(() => parseSize(1.5, "here")).message).toBe("here: 1.5 is not a whole number of bytes");
    expect(errorOf(() => parseSize("99999999P", "here")).message).toContain("too large");
  });
});

describe("shared cache levels", () => {
  test("sccache's key names, KILN_* variables over the file, the chain's order, defaults", () => {
    const { config, warnings } = loadText(
      `
[cache.redis]
endpoint = "redis://10.0.0.1:6379"
password = "from-file"
db = 2
expiration = 3600
key_prefix = "kiln/"
[cache.s3]
bucket = "builds"
endpoint = "minio.lan:9000"
region = "eu-west-1"
use_ssl = false
no_credentials = false
server_side_encryption = true
[cache.webdav]
endpoint = "http://cache.lan/ccache/"
token = "t0ken"
layout = "bazel"
read_only = true
[cache.multilevel]
chain = ["disk", "s3", "redis", "webdav"]
`,
      { KILN_REDIS_PASSWORD: "from-env", KILN_S3_KEY_PREFIX: "ci/", KILN_REDIS_TIMEOUT_MS: "250" },
    );
    expect(config.remoteLevels.map((l) => l.backend)).toEqual(["s3", "redis", "webdav"]);
    const [s3, redis, webdav] = config.remoteLevels;
    expect(redis).toMatchObject({ endpoint: "redis://10.0.0.1:6379", password: "from-env", db: 2, expiration: 3600, keyPrefix: "kiln/", timeoutMs: 250, connectTimeoutMs: 1000, readOnly: false });
    expect(s3).toMatchObject({ bucket: "builds", endpoint: "minio.lan:9000", region: "eu-west-1", useSsl: false, keyPrefix: "ci/" });
    expect(webdav).toMatchObject({ token: "t0ken", layout: "bazel", readOnly: true, maxEntrySize: 64 * 1024 ** 2 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("server_side_encryption");
  });

  test("KILN_CACHE_CHAIN and the environment alone configure levels", () => {
    const { config } = loadConfig(
      { KILN_MEMCACHED_ENDPOINT: "127.0.0.1:11211", KILN_WEBDAV_ENDPOINT: "http://h/", KILN_CACHE_CHAIN: "disk,webdav,memcached", KILN_MEMCACHED_ITEM_SIZE: "8m" },
      { homeDir: scratch() },
    );
    expect(config.remoteLevels.map((l) => l.backend)).toEqual(["webdav", "memcached"]);
    expect(config.remoteLevels[1]).toMatchObject({ itemSize: 8 * 1024 ** 2 });
  });

  test.each([
    [{ KILN_CACHE_CHAIN: "disk,redis" }, "the cache chain names \"redis\", but no redis cache is configured", "KILN_REDIS_ENDPOINT"],
    [{ KILN_CACHE_CHAIN: "disk,reddis" }, 'environment variable KILN_CACHE_CHAIN: unknown cache level "reddis"', 'did you mean "redis"?'],
    [{ KILN_CACHE_CHAIN: "redis,disk", KILN_REDIS_ENDPOINT: "redis://h" }, 'KILN_CACHE_CHAIN: "disk" must come first', "level 0"],
    [{ KILN_WEBDAV_ENDPOINT: "http://h/", KILN_WEBDAV_LAYOUT: "nested" }, "KILN_WEBDAV_LAYOUT must be one of", "subdirs"],
    [{ KILN_REDIS_ENDPOINT: "redis://h", KILN_REDIS_DB: "two" }, "KILN_REDIS_DB must be a whole number", "KILN_REDIS_DB=0"],
  ] as const)("bad level settings are clear errors: %p", (env, message, hint) => {
    const error = errorOf(() => loadConfig(env, { homeDir: scratch() }));
    expect(error.message).toContain(message);
    expect(error.hint).toContain(hint);
  });
});

describe("[dist]", () => {
  test("KILN_DIST_SCHEDULER_URL and KILN_DIST_TOKEN override the file", () => {
    const { config } = loadText('[dist]\nscheduler_url = "http://a:1"\n[dist.auth]\ntype = "token"\ntoken = "from-file"\n', {
      KILN_DIST_SCHEDULER_URL: "https://sched.example:10600",
      KILN_DIST_TOKEN: "from-env",
      KILN_DIST_RETRY_AFTER: "0",
    });
    expect(config.distSchedulerUrl).toBe("https://sched.example:10600");
    expect(config.distToken).toBe("from-env");
    expect(config.distRetryAfterSec).toBe(0);
  });

  test("a scheduler URL that is not http(s) is an error naming the key, with an example", () => {
    for (const url of ["10.0.0.5:10600", "ftp://x", "http://user:pw@host:1"]) {
      const { file, error } = loadError(`[dist]\nscheduler_url = "${url}"\n[dist.auth]\ntoken = "t"\n`);
      expect(error.code).toBe("KILN_CONFIG_VALUE");
      expect(error.message).toContain(`${file}: [dist] scheduler_url`);
      expect(error.hint).toContain('scheduler_url = "http://');
    }
    const env = errorOf(() => loadConfig({ KILN_DIST_SCHEDULER_URL: "nope" }, { homeDir: scratch() }));
    expect(env.message).toContain("environment variable KILN_DIST_SCHEDULER_URL");
  });

  test("only token auth exists; the token never appears in a message", () => {
    const { error } = loadError('[dist]\nscheduler_url = "http://a:1"\n[dist.auth]\ntype = "mozilla"\ntoken = "hunter2"\n');
    expect(error.message).toContain('only type = "token"');
    expect(error.format()).not.toContain("hunter2");
    const { warnings } = loadText('[dist]\nscheduler_url = "http://a:1"\n');
    expect(warnings).toEqual([expect.stringContaining("no client token")]);
  });
});
