/** Every machine by the name its diagram and the live view use. */
import { authMachine } from "../../machines/auth.machine.js";
import { jobMachine } from "../../machines/job.machine.js";
import { workerMachine } from "../../machines/worker.machine.js";

export const MACHINES = { worker: workerMachine, auth: authMachine, job: jobMachine } as const;
export type MachineName = keyof typeof MACHINES;
