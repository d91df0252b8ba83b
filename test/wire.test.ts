// The client <-> daemon frames, byte level: Stderr frames ahead of the reply.

import { expect, test } from "bun:test";
import { decodeDone, encodeDone, encodeFrame, FrameReader, Kind, PROTOCOL_VERSION, takeReply, type Frame } from "../src/ipc/wire.ts";

const utf8 = new TextEncoder();
const text = (b: Uint8Array) => new TextDecoder().decode(b);

test("Stderr frames reach the sink in order, split anywhere; the Done frame after them is the reply", () => {
  const lines = ['{"artifact":"/t/libm.rmeta","emit":"metadata"}\n', "warning: x\nnote: y\n", '{"artifact":"/t/libm.rlib","emit":"link"}\n'];
  const wire = [
    ...lines.map((l) => encodeFrame(Kind.Stderr, utf8.encode(l))),
    encodeDone(0, utf8.encode("out"), new Uint8Array()),
  ];
  const bytes = new Uint8Array(wire.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of wire) {
    bytes.set(f, at);
    at += f.length;
  }
  // Every way of cutting the stream in two pieces, then byte by byte.
  const cuts = [...Array.from({ length: bytes.length - 1 }, (_, i) => [bytes.subarray(0, i + 1), bytes.subarray(i + 1)]), Array.from(bytes, (b) => Uint8Array.of(b))];
  for (const pieces of cuts) {
    const reader = new FrameReader();
    const seen: string[] = [];
    let reply: Frame | undefined;
    for (const piece of pieces) {
      expect(reply).toBeUndefined(); // nothing after the reply is read
      reply = takeReply(reader.push(piece), (chunk) => seen.push(text(chunk)));
    }
    expect(seen).toEqual(lines);
    expect(reply?.kind).toBe(Kind.Done);
    const done = decodeDone(reply!.payload);
    expect([done.exitCode, text(done.stdout), text(done.stderr)]).toEqual([0, "out", ""]);
  }
});

test("a Stderr frame of another protocol version is not taken for stderr (the client falls back)", () => {
  const reader = new FrameReader();
  const seen: Uint8Array[] = [];
  const frames = reader.push(encodeFrame(Kind.Stderr, utf8.encode("x\n"), PROTOCOL_VERSION + 1));
  const reply = takeReply(frames, (c) => seen.push(c));
  expect(seen).toEqual([]);
  expect(reply?.version).toBe(PROTOCOL_VERSION + 1);
});

test("without a sink, Stderr frames are dropped and the reply still comes through", () => {
  const frames = new FrameReader().push(new Uint8Array([...encodeFrame(Kind.Stderr, utf8.encode("x\n")), ...encodeDone(1, new Uint8Array(), utf8.encode("e"))]));
  const reply = takeReply(frames, undefined);
  expect(reply?.kind).toBe(Kind.Done);
  expect(text(decodeDone(reply!.payload).stderr)).toBe("e");
});
