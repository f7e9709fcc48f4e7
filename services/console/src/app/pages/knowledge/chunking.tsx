/**
 * A dataset's chunking (Dify's process_rule) as a form: the mode (automatic, custom sizes, or
 * parent-child), the separator and sizes in tokens of the embedding model, and for parent-child
 * the parents' mode and the children's sizes. Separators are shown escaped (`\n\n`), as Dify does.
 * Sizes are checked by the knowledge service (chunks 16–8192 tokens, overlap below the size);
 * its 400 names the field.
 */
import { Field } from "../../ui";

export interface ProcessRule {
  mode: "automatic" | "custom" | "hierarchical";
  rules?: {
    pre_processing_rules?: { id: string; enabled: boolean }[];
    segmentation?: { separator: string; max_tokens: number; chunk_overlap: number };
    parent_mode?: "paragraph" | "full-doc";
    subchunk_segmentation?: { separator: string; max_tokens: number; chunk_overlap: number };
  };
}

export interface ChunkingForm {
  mode: ProcessRule["mode"];
  separator: string; // escaped: "\\n\\n"
  maxTokens: number;
  overlap: number;
  removeExtraSpaces: boolean;
  removeUrlsEmails: boolean;
  parentMode: "paragraph" | "full-doc";
  subSeparator: string;
  subMaxTokens: number;
  subOverlap: number;
}

export const escapeSeparator = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t");
export const unescapeSeparator = (s: string) =>
  s.replace(/\\(\\|n|t)/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : "\\"));

/** The form's values for a dataset's stored rule (the service's defaults where it states none). */
export function formFromRule(rule: ProcessRule | undefined): ChunkingForm {
  const r = rule?.rules ?? {};
  const pre = new Map((r.pre_processing_rules ?? []).map((p) => [p.id, p.enabled]));
  return {
    mode: rule?.mode ?? "automatic",
    separator: escapeSeparator(r.segmentation?.separator || "\n\n"),
    maxTokens: r.segmentation?.max_tokens || 240,
    overlap: r.segmentation?.chunk_overlap ?? 24,
    removeExtraSpaces: pre.get("remove_extra_spaces") ?? true,
    removeUrlsEmails: pre.get("remove_urls_emails") ?? false,
    parentMode: r.parent_mode ?? "paragraph",
    subSeparator: escapeSeparator(r.subchunk_segmentation?.separator || "\n"),
    subMaxTokens: r.subchunk_segmentation?.max_tokens || 96,
    subOverlap: r.subchunk_segmentation?.chunk_overlap ?? 0,
  };
}

/** The process_rule the API takes for the form's values. */
export function ruleFromForm(f: ChunkingForm): ProcessRule {
  const pre = [
    { id: "remove_extra_spaces", enabled: f.removeExtraSpaces },
    { id: "remove_urls_emails", enabled: f.removeUrlsEmails },
  ];
  if (f.mode === "automatic") return { mode: "automatic", rules: { pre_processing_rules: pre } };
  const rule: ProcessRule = {
    mode: f.mode,
    rules: {
      pre_processing_rules: pre,
      segmentation: { separator: unescapeSeparator(f.separator), max_tokens: f.maxTokens, chunk_overlap: f.overlap },
    },
  };
  if (f.mode === "hierarchical") {
    rule.rules!.parent_mode = f.parentMode;
    rule.rules!.subchunk_segmentation = { separator: unescapeSeparator(f.subSeparator), max_tokens: f.subMaxTokens, chunk_overlap: f.subOverlap };
  }
  return rule;
}

/** One line summary, e.g. "custom: 32 tokens, overlap 0". */
export function describeRule(rule: ProcessRule | undefined): string {
  const f = formFromRule(rule);
  if (f.mode === "automatic") return "automatic";
  const base = `${f.mode === "custom" ? "custom" : "parent-child"}: ${f.maxTokens} tokens, overlap ${f.overlap}`;
  return f.mode === "hierarchical" ? `${base}; children ${f.subMaxTokens} tokens` : base;
}

export function ChunkingFields({ value, onChange }: { value: ChunkingForm; onChange: (v: ChunkingForm) => void }) {
  const set = <K extends keyof ChunkingForm>(key: K, v: ChunkingForm[K]) => onChange({ ...value, [key]: v });
  const num = (key: "maxTokens" | "overlap" | "subMaxTokens" | "subOverlap") => (e: React.ChangeEvent<HTMLInputElement>) =>
    set(key, Number(e.target.value));
  return (
    <fieldset className="stack">
      <legend>Chunking</legend>
      <Field label="Chunking mode" hint="Used for documents added without their own choice.">
        {(id) => (
          <select id={id} value={value.mode} onChange={(e) => set("mode", e.target.value as ChunkingForm["mode"])}>
            <option value="automatic">Automatic</option>
            <option value="custom">Custom sizes</option>
            <option value="hierarchical">Parent-child</option>
          </select>
        )}
      </Field>
      {value.mode !== "automatic" && (
        <div className="grid2">
          <Field label="Separator" hint="Escaped, e.g. \n\n for a blank line.">
            {(id) => <input id={id} maxLength={50} value={value.separator} onChange={(e) => set("separator", e.target.value)} />}
          </Field>
          <Field label="Max tokens per chunk">{(id) => <input id={id} type="number" min={16} max={8192} required value={value.maxTokens} onChange={num("maxTokens")} />}</Field>
          <Field label="Chunk overlap (tokens)">{(id) => <input id={id} type="number" min={0} max={8191} required value={value.overlap} onChange={num("overlap")} />}</Field>
        </div>
      )}
      {value.mode === "hierarchical" && (
        <div className="grid2">
          <Field label="Parent chunks">
            {(id) => (
              <select id={id} value={value.parentMode} onChange={(e) => set("parentMode", e.target.value as ChunkingForm["parentMode"])}>
                <option value="paragraph">Paragraphs (split as above)</option>
                <option value="full-doc">The whole document</option>
              </select>
            )}
          </Field>
          <Field label="Child separator">{(id) => <input id={id} maxLength={50} value={value.subSeparator} onChange={(e) => set("subSeparator", e.target.value)} />}</Field>
          <Field label="Max tokens per child chunk">{(id) => <input id={id} type="number" min={8} max={8192} required value={value.subMaxTokens} onChange={num("subMaxTokens")} />}</Field>
          <Field label="Child overlap (tokens)">{(id) => <input id={id} type="number" min={0} max={8191} required value={value.subOverlap} onChange={num("subOverlap")} />}</Field>
        </div>
      )}
      <label className="row">
        <input type="checkbox" checked={value.removeExtraSpaces} onChange={(e) => set("removeExtraSpaces", e.target.checked)} />
        Collapse extra spaces and blank lines
      </label>
      <label className="row">
        <input type="checkbox" checked={value.removeUrlsEmails} onChange={(e) => set("removeUrlsEmails", e.target.checked)} />
        Remove URLs and e-mail addresses
      </label>
    </fieldset>
  );
}
