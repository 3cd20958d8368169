#!/usr/bin/env node
// The `moonmind` command. TypeScript runs through tsx, so no build step stands between a
// checkout and a working CLI. A .env in the working directory is read if present (real
// environment variables win).
import { existsSync } from "node:fs";
import { register } from "tsx/esm/api";

if (existsSync(".env") && typeof process.loadEnvFile === "function") process.loadEnvFile(".env");
register();
const { main } = await import("./index.ts");
await main(process.argv);
