/**
 * The one TOML edit the runtime makes: set top-level keys of a config file (before its first
 * table) to given raw values, keeping every other line, comment and table as the user wrote it.
 */
export function mergeTopLevelToml(text: string, values: Record<string, string>): string {
  const lines = text.length === 0 ? [] : text.replace(/\n$/, "").split("\n");
  const firstTable = lines.findIndex((l) => /^\s*\[/.test(l));
  const topEnd = firstTable === -1 ? lines.length : firstTable;
  const missing: string[] = [];
  for (const [key, raw] of Object.entries(values)) {
    const re = new RegExp(`^\\s*${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*=`);
    const i = lines.slice(0, topEnd).findIndex((l) => re.test(l));
    if (i === -1) missing.push(`${key} = ${raw}`);
    else lines[i] = `${key} = ${raw}`;
  }
  const header = missing.length > 0 ? ["# set by MoonMind Runtime: jobs run unattended", ...missing] : [];
  const out = [...header, ...(header.length > 0 && lines.length > 0 ? [""] : []), ...lines];
  return out.length === 0 ? "" : `${out.join("\n")}\n`;
}
