/** Server URLs as logs and errors show them (src/nats/url.ts displayUrl): never a password. */
import { describe, expect, it } from "vitest";
import { displayUrl } from "../../src/nats/url.js";

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
