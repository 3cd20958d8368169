/** The repository the offline demo's agents change: one commit, a README. */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";

export async function sampleRepository(path: string): Promise<string> {
  await mkdir(path, { recursive: true });
  await writeFile(join(path, "README.md"), "# Sample repository\n\nA repository the demo's agents change.\n");
  const git = (...args: string[]) =>
    execa("git", ["-c", "user.name=MoonMind Demo", "-c", "user.email=demo@moonmind.invalid", ...args], { cwd: path });
  await git("init", "-q", "-b", "main");
  await git("add", ".");
  await git("commit", "-q", "-m", "sample repository");
  return path;
}
