import { describe, expect, it } from "vitest";
import { parseAssignment, parseDotenv } from "./dotenv.ts";

describe("parseDotenv", () => {
  it("reads comments, export, quotes and inline comments", () => {
    const text = [
      "# a comment",
      "",
      "export DATABASE_URL=postgres://db/web",
      "EMPTY=",
      "SINGLE='a $b # c'",
      'DOUBLE="one\\ntwo"',
      "PLAIN=value # note",
      "  SPACED = x=y",
    ].join("\n");
    expect(parseDotenv(text)).toEqual({
      DATABASE_URL: "postgres://db/web",
      EMPTY: "",
      SINGLE: "a $b # c",
      DOUBLE: "one\ntwo",
      PLAIN: "value",
      SPACED: "x=y",
    });
  });

  it("names the line that is not KEY=VALUE", () => {
    expect(() => parseDotenv("OK=1\nnot an assignment")).toThrow("line 2 is not KEY=VALUE");
  });
});

describe("parseAssignment", () => {
  it("splits at the first =", () => {
    expect(parseAssignment("A=b=c")).toEqual(["A", "b=c"]);
    expect(parseAssignment("A=")).toEqual(["A", ""]);
    expect(() => parseAssignment("A")).toThrow("expected KEY=VALUE");
    expect(() => parseAssignment("1A=x")).toThrow("expected KEY=VALUE");
  });
});
