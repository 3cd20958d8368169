/**
 * Files of a job's workspace the worker writes itself instead of running git for them (each git
 * process costs the worker ~5–7 ms to start): the agent's own repository, copies of an empty git
 * dir, and values for git's config file.
 */
import { copyFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

/** A value as git's config file reads it back unchanged: quoted, with `\\`, `"` and control characters escaped. */
export function configValue(value: string): string {
  const escaped = value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/[\b]/g, "\\b");
  return `"${escaped}"`;
}

/** An empty git dir: its directories (parents first) and files, relative to it. */
export interface GitDirLayout {
  dirs: string[];
  files: Array<[string, Buffer]>;
}

export async function readLayout(gitDir: string): Promise<GitDirLayout> {
  const layout: GitDirLayout = { dirs: [], files: [] };
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(gitDir, rel), { withFileTypes: true })) {
      const name = rel ? join(rel, e.name) : e.name;
      if (e.isDirectory()) {
        layout.dirs.push(name);
        await walk(name);
      } else if (e.isFile()) layout.files.push([name, await readFile(join(gitDir, name))]);
      else throw new Error(`unexpected entry in a new git dir: ${join(gitDir, name)}`);
    }
  };
  await walk("");
  return layout;
}

/** Copies of a directory's files and directories, as `fs.cp` makes them at a tenth of its cost. */
async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  const entries = await readdir(from, { withFileTypes: true });
  await Promise.all(
    entries.map((e) => {
      if (e.isDirectory()) return copyTree(join(from, e.name), join(to, e.name));
      if (e.isFile()) return copyFile(join(from, e.name), join(to, e.name));
      throw new Error(`unexpected entry in the worker's git dir: ${join(from, e.name)}`);
    }),
  );
}

/**
 * The agent's own repository over the checkout, written from what the worker's git dir holds: the
 * core settings git probed for it, its objects and shallow boundary, the branch at the starting
 * commit, the checkout's index (so `git status` is clean) and origin the real source. Copies,
 * never links: the agent may rewrite its `.git` and nothing of the worker's changes. Files, not
 * `git init` and a second fetch: those are three more processes and ~50 ms a job.
 */
export async function giveRepository(gitDir: string, dotGit: string, branch: string, commit: string, origin: string): Promise<void> {
  const core = await readFile(join(gitDir, "config"), "utf8");
  if (!/^\s*bare = true$/m.test(core)) throw new Error(`unexpected config in ${gitDir}: ${core}`);
  const ref = join(dotGit, "refs", "heads", ...branch.split("/"));
  await mkdir(dirname(ref), { recursive: true });
  await Promise.all([mkdir(join(dotGit, "refs", "tags")), mkdir(join(dotGit, "hooks")), mkdir(join(dotGit, "info"))]);
  await Promise.all([
    writeFile(join(dotGit, "HEAD"), `ref: refs/heads/${branch}\n`),
    writeFile(ref, `${commit}\n`),
    writeFile(
      join(dotGit, "config"),
      core.replace(/^(\s*)bare = true$/m, "$1bare = false\n$1logallrefupdates = true") +
        `[remote "origin"]\n\turl = ${configValue(origin)}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n`,
    ),
    copyTree(join(gitDir, "objects"), join(dotGit, "objects")),
    copyFile(join(gitDir, "index"), join(dotGit, "index")),
    copyFile(join(gitDir, "shallow"), join(dotGit, "shallow")).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err; // a history of one commit has no boundary
    }),
  ]);
}
