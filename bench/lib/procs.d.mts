// Types for the Node tests that reuse these helpers (test/node/dev-worker.ts).
export function groupProcesses(pgid: number): { pid: number; comm: string; cpuTicks: number }[];
export function listeningPorts(pid: number): number[];
