import { describe, expect, it } from "vitest";
import { describeRule, escapeSeparator, formFromRule, ruleFromForm, unescapeSeparator, type ProcessRule } from "./chunking";

describe("dataset chunking form", () => {
  it("round-trips a stored custom rule through the form", () => {
    const stored: ProcessRule = {
      mode: "custom",
      rules: {
        pre_processing_rules: [{ id: "remove_extra_spaces", enabled: false }, { id: "remove_urls_emails", enabled: true }],
        segmentation: { separator: "\n", max_tokens: 32, chunk_overlap: 4 },
      },
    };
    const form = formFromRule(stored);
    expect(form).toMatchObject({ mode: "custom", separator: "\\n", maxTokens: 32, overlap: 4, removeExtraSpaces: false, removeUrlsEmails: true });
    expect(ruleFromForm(form)).toEqual(stored);
    expect(describeRule(stored)).toBe("custom: 32 tokens, overlap 4");
  });

  it("sends parent-child settings only in that mode, and no sizes for automatic", () => {
    const form = { ...formFromRule(undefined), mode: "hierarchical" as const, subMaxTokens: 64, parentMode: "full-doc" as const };
    const rule = ruleFromForm(form);
    expect(rule.rules?.parent_mode).toBe("full-doc");
    expect(rule.rules?.subchunk_segmentation).toEqual({ separator: "\n", max_tokens: 64, chunk_overlap: 0 });
    const automatic = ruleFromForm({ ...form, mode: "automatic" });
    expect(automatic.mode).toBe("automatic");
    expect(automatic.rules?.segmentation).toBeUndefined();
    expect(describeRule(undefined)).toBe("automatic");
  });

  it("escapes separators both ways, backslashes included", () => {
    for (const raw of ["\n\n", "\t", "a\\nb", "。"]) expect(unescapeSeparator(escapeSeparator(raw))).toBe(raw);
    expect(unescapeSeparator("\\n\\n")).toBe("\n\n");
  });
});
