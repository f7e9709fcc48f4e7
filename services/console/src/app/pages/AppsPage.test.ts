import { describe, expect, it } from "vitest";
import { startOptions } from "./AppsPage";
import starters from "../templates.json";

describe("create from template", () => {
  it("keeps the starters and adds the catalogue's templates after them", () => {
    const options = startOptions([
      { id: "customer-service", name: "Customer service", description: "Support.", mode: "chatflow",
        datasets: [{ key: "faq", name: "Product FAQ", files: 1 }] },
    ]);
    expect(options.slice(0, starters.length).map((o) => o.value)).toEqual(starters.map((t) => t.id));
    const last = options[options.length - 1];
    expect(last.value).toBe("catalogue:customer-service");
    expect(last.label).toBe("Template: Customer service");
    expect(last.about).toContain("Product FAQ");
  });

  it("offers only the starters when the catalogue is empty or not loaded", () => {
    expect(startOptions([]).length).toBe(starters.length);
  });
});
