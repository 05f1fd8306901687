/**
 * Waits on a condition, not on the clock: `probe` is asked again every `everyMs`
 * until it returns something truthy (which is returned), at most `polls` times.
 * The bound is a count of polls, so a slow machine only makes it take longer.
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  what: string,
  { polls = 1_500, everyMs = 20 }: { polls?: number; everyMs?: number } = {},
): Promise<NonNullable<T>> {
  let last: T | undefined
  for (let i = 0; i < polls; i++) {
    last = await probe()
    if (last) return last as NonNullable<T>
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
  throw new Error(`waitFor: ${what}: not reached after ${polls} polls (last: ${JSON.stringify(last)})`)
}

/** Whether `promise` has settled by now (it is given every pending turn of the event loop first). */
export async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false
  promise.then(
    () => (done = true),
    () => (done = true),
  )
  await new Promise((resolve) => setImmediate(resolve))
  return done
}
