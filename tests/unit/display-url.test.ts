/** Server URLs as logs and errors show them (src/nats/url.ts displayUrl): never a password. */
import { describe, expect, it } from "vitest";
import { displayUrl, splitServerLogin } from "../../src/nats/url.js";

describe("displayUrl", () => {
  it("hides the password of every server in the list and keeps the rest", () => {
    expect(displayUrl("nats://worker:s3cr%40t@nats:4222")).toBe("nats://worker:***@nats:4222");
    expect(displayUrl("nats://a:b@h1:4222, nats://h2:4222")).toBe("nats://a:***@h1:4222,nats://h2:4222");
    expect(displayUrl("tls://u:p@x")).toBe("tls://u:***@x");
    expect(displayUrl("user:pw@host:4222")).toBe("user:***@host:4222");
  });

  it("leaves URLs without a password as they are", () => {
    expect(displayUrl("nats://127.0.0.1:4222")).toBe("nats://127.0.0.1:4222");
  });

  it("hides a user name that stands alone: NATS takes it for a token", () => {
    expect(displayUrl("nats://s3cr3t-token@nats:4222")).toBe("nats://***@nats:4222");
  });
});

describe("splitServerLogin", () => {
  it("takes the user and password off every server and passes them on their own", () => {
    expect(splitServerLogin("nats://worker:s3cr%40t@nats:4222")).toEqual({ servers: ["nats://nats:4222"], user: "worker", pass: "s3cr@t" });
    expect(splitServerLogin("nats://a:b@h1:4222, nats://h2:4222,h3:4222")).toEqual({
      servers: ["nats://h1:4222", "nats://h2:4222", "h3:4222"],
      user: "a",
      pass: "b",
    });
    expect(splitServerLogin("a:b@h1:4222")).toEqual({ servers: ["h1:4222"], user: "a", pass: "b" });
  });

  it("reads a user name alone as a token, and leaves plain servers alone", () => {
    expect(splitServerLogin("nats://tok3n@nats:4222")).toEqual({ servers: ["nats://nats:4222"], token: "tok3n" });
    expect(splitServerLogin("nats://127.0.0.1:4222")).toEqual({ servers: ["nats://127.0.0.1:4222"] });
  });

  it("refuses two different logins in one list", () => {
    expect(() => splitServerLogin("nats://a:b@h1:4222,nats://c:d@h2:4222")).toThrow(/two different logins/);
  });
});
