/** Rotated credentials go back to the volume; what an agent put in their place does not. */
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedHome, type CredentialWriter } from "../../src/runtimes/home.js";

let root: string;
const written: string[] = [];
const writer: CredentialWriter = async (_volume, _file, _digest, next) => {
  written.push(next.toString("utf8"));
  return "written";
};
const spec = { copy: ["auth.json"], credential: { file: "auth.json", validate: () => true }, env: () => ({}) };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "write-back-"));
  for (const v of ["a", "b"]) {
    await mkdir(join(root, v));
    await writeFile(join(root, v, "auth.json"), `{"login":"${v}"}`);
  }
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe("writing a run's credentials back", () => {
  it("writes what the CLI rotated in its home", async () => {
    const home = await seedHome({ name: "a", path: join(root, "a") }, join(root, "home-1"), spec, writer);
    await writeFile(join(home.dir, "auth.json"), '{"login":"a","rotated":true}');
    expect(await home.writeBack()).toBe("written");
    expect(written.pop()).toBe('{"login":"a","rotated":true}');
  });

  it("does not follow a link the agent put there (to another volume's login)", async () => {
    const home = await seedHome({ name: "a", path: join(root, "a") }, join(root, "home-2"), spec, writer);
    await unlink(join(home.dir, "auth.json"));
    await symlink(join(root, "b", "auth.json"), join(home.dir, "auth.json"));
    expect(await home.writeBack()).toBe("unchanged");
    expect(written).toEqual([]);
  });
});
