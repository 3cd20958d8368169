/**
 * `<data dir>/viz.url`: where a running live view serves, written once it listens and removed
 * when it stops, so `moonmind dev` can print the address even when the port was chosen (0).
 */
export const VIZ_URL_FILE = "viz.url";
