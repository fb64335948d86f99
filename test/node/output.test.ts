import { describe, expect, it } from "vitest";
import { oneLine, printable } from "../../cli/output";

describe("what the CLI prints of others' text", () => {
  it("shows control characters as cat -v does instead of sending them to the terminal", () => {
    const evil = "evil \u001b]0;pwned\u0007\u001b[2J title";
    expect(printable(evil)).toBe("evil ^[]0;pwned^G^[[2J title");
    expect(printable("a\u007fb\u009bc\td")).toBe("a^?b<U+009B>c\td");
    expect(oneLine(evil, 100)).toBe("evil ^[]0;pwned^G^[[2J title");
    expect(oneLine("first\u001b[31m\nsecond", 100)).toBe("first^[[31m…");
    // Text that is fine stays as it is, emoji and all.
    expect(printable("ship it 🚀 — done")).toBe("ship it 🚀 — done");
    // Nothing printable is left that a terminal would act on.
    expect(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(oneLine(evil, 10))).toBe(false);
  });
});
