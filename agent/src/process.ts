/** Process helpers shared by the node (its data-dir lock) and the CLI (finding a running node). */

/** Whether a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
