import { describe, expect, it } from "vitest";
import { pullStep } from "./ModelPull";

describe("pullStep", () => {
  const start = { status: "starting", percent: null, done: false, error: null };

  it("follows the engine's percent and keeps it through steps without a size", () => {
    let s = pullStep(start, { event: "pull_progress", status: "pulling sha256:ab", percent: 25 });
    expect(s).toMatchObject({ status: "pulling sha256:ab", percent: 25, done: false });
    s = pullStep(s, { event: "pull_progress", status: "verifying sha256 digest", percent: null });
    expect(s).toMatchObject({ status: "verifying sha256 digest", percent: 25 });
    s = pullStep(s, { event: "pull_finished", status: "success", model: "tiny" });
    expect(s).toMatchObject({ status: "success", percent: 100, done: true, error: null });
  });

  it("ends on an error event with its message, and ignores other events", () => {
    const s = pullStep(start, { event: "error", status: 503, message: "download interrupted" });
    expect(s).toMatchObject({ done: true, error: "download interrupted" });
    expect(pullStep(start, { event: "ping" })).toBe(start);
  });
});
