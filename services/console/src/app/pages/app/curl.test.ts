import { describe, expect, it } from "vitest";
import { curlExample, startVariables } from "./ApiAccessTab";

const doc = {
  workflow: {
    graph: {
      nodes: [
        { id: "it", parent_id: "loop", data: { type: "start", variables: [{ variable: "inner" }] } },
        {
          id: "start",
          data: {
            type: "start",
            variables: [
              { variable: "city", label: "City", type: "text-input", required: true },
              { variable: "days", type: "number", required: false },
              { variable: "unit", type: "select", options: ["metric", "imperial"] },
              { variable: "photo", type: "file" },
            ],
          },
        },
      ],
    },
  },
};

describe("the API access examples", () => {
  it("read the top-level start node's variables", () => {
    expect(startVariables(doc).map((v) => v.variable)).toEqual(["city", "days", "unit", "photo"]);
    expect(startVariables({})).toEqual([]);
  });

  it("fill a workflow's curl with the app's own inputs (files left out)", () => {
    const curl = curlExample("workflow", "http://localhost:3000", startVariables(doc));
    expect(curl).toContain("http://localhost:3000/v1/workflows/run");
    const body = JSON.parse(curl.slice(curl.indexOf("-d '") + 4, curl.lastIndexOf("'")));
    expect(body.inputs).toEqual({ city: "<City>", days: 1, unit: "metric" });
    expect(body.query).toBeUndefined();
  });

  it("send chat apps to chat-messages with a query, completion apps to completion-messages", () => {
    expect(curlExample("chatflow", "http://h", [])).toContain("http://h/v1/chat-messages");
    expect(curlExample("agent", "http://h", [])).toContain('"query": "Hello!"');
    expect(curlExample("completion", "http://h", [])).toContain("http://h/v1/completion-messages");
  });

  it("quote a single quote inside the shell's single-quoted body", () => {
    const curl = curlExample("workflow", "http://h", [{ variable: "q", default: "it's" }]);
    expect(curl).toContain(`"q": "it'\\''s"`);
  });
});
