// The cargo workspace the Rust tests and the benchmark build: two library crates (util, and
// greet with a build script writing OUT_DIR and a feature), and a binary, depending on regex,
// serde_json and clap (derive) from Debian's packaged crates, offline.

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** `.cargo/config.toml` that builds against /usr/share/cargo/registry with no network. */
export const OFFLINE_CARGO_CONFIG = `[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "/usr/share/cargo/registry"
[net]
offline = true
`;

export const RUST_WORKSPACE: Record<string, string> = {
  ".cargo/config.toml": OFFLINE_CARGO_CONFIG,
  "Cargo.toml": `[workspace]\nmembers = ["util", "greet", "app"]\nresolver = "2"\n`,
  "util/Cargo.toml": `[package]\nname = "util"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nregex = "1"\n`,
  "util/src/lib.rs": `pub fn words(s: &str) -> usize { regex::Regex::new(r"\\w+").unwrap().find_iter(s).count() }\n`,
  "greet/Cargo.toml": `[package]\nname = "greet"\nversion = "0.1.0"\nedition = "2021"\n[features]\nloud = []\n[dependencies]\nutil = { path = "../util" }\nserde_json = "1"\n`,
  "greet/build.rs": `fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{}/generated.rs", out), "pub const GENERATED: &str = \\"from build.rs\\";\\n").unwrap();
}
`,
  "greet/src/lib.rs": `include!(concat!(env!("OUT_DIR"), "/generated.rs"));
pub fn report(text: &str) -> String {
    let s = serde_json::json!({"words": util::words(text), "gen": GENERATED}).to_string();
    if cfg!(feature = "loud") { s.to_uppercase() } else { s }
}
`,
  "app/Cargo.toml": `[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\ngreet = { path = "../greet" }\nclap = { version = "4", features = ["derive"] }\n`,
  "app/src/main.rs": `use clap::Parser;
#[derive(Parser)]
struct Args { #[arg(long, default_value = "hello big world")] text: String }
fn main() { println!("{}", greet::report(&Args::parse().text)); }
`,
};

export function writeRustWorkspace(dir: string): string {
  for (const [name, body] of Object.entries(RUST_WORKSPACE)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), body);
  }
  return dir;
}
