/** What a chaos run does: sizes, faults and bounds. Parsed with zod from the CLI or given by a test. */
import { z } from "zod";

const count = (max: number) => z.coerce.number().int().min(0).max(max);

export const ChaosOptionsSchema = z
  .object({
    jobs: z.coerce.number().int().min(1).max(100_000).default(800),
    workers: z.coerce.number().int().min(1).max(32).default(3),
    intakes: z.coerce.number().int().min(1).max(8).default(2),
    concurrency: z.coerce.number().int().min(1).max(64).default(4),
    /**
     * nats-servers: 1, or 3 clustered on loopback with every stream at R3; a server restart then
     * SIGKILLs one node and brings it back while the other two carry on.
     */
    servers: z.coerce.number().pipe(z.union([z.literal(1), z.literal(3)])).default(1),
    workerKills: count(1_000).default(12),
    intakeKills: count(100).default(1),
    serverRestarts: count(100).default(2),
    stalls: count(100).default(1),
    /** Seeds the fault plan and the agents' durations; printed so a run can be replayed. */
    seed: z.coerce.number().int().min(0).max(2 ** 31 - 1).optional(),
    sleepMinMs: z.coerce.number().int().min(0).default(50),
    sleepMaxMs: z.coerce.number().int().min(0).default(800),
    /** Faults strike between these fractions of the jobs finished. */
    faultFrom: z.coerce.number().min(0).max(1).default(0.05),
    faultTo: z.coerce.number().min(0).max(1).default(0.85),
    /** Jobs submitted but not yet finished, at most: keeps intake busy for the whole run. */
    backlog: z.coerce.number().int().min(1).default(300),
    /** How long, after the last fault, every job may take to finish before the rest count as stuck. */
    drainTimeoutMs: z.coerce.number().int().min(1_000).default(180_000),
    /** A fault waits for progress; with none for this long the remaining faults are skipped. */
    stallTimeoutMs: z.coerce.number().int().min(1_000).default(60_000),
    /** A new MOONMIND_WORKER_ID per incarnation (default: stable per slot, as a restarted container keeps its id). */
    freshWorkerIds: z.boolean().default(false),
    /** Keep the temporary directory (store, ledgers, actor logs) at the end. */
    keep: z.boolean().default(false),
  })
  .refine((o) => o.sleepMaxMs >= o.sleepMinMs, { message: "sleepMaxMs must be >= sleepMinMs" })
  .refine((o) => o.faultTo >= o.faultFrom, { message: "faultTo must be >= faultFrom" });

export type ChaosOptions = z.infer<typeof ChaosOptionsSchema>;
export type ChaosInput = z.input<typeof ChaosOptionsSchema>;
