/** The watchdog's activity, coalesced by the session actor (services/session-actor.ts). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { coalescedActivity } from '../services/session-actor.ts'

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('coalescedActivity', () => {
  it('sends the first activity at once and the rest of an interval as one at its end', () => {
    const sent: number[] = []
    const a = coalescedActivity(() => sent.push(Date.now()), 100)
    const t0 = Date.now()
    a.activity()
    expect(sent).toEqual([t0])
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(5)
      a.activity()
    }
    expect(sent).toHaveLength(1) // 10 more within the interval: none yet
    vi.advanceTimersByTime(49)
    expect(sent).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(sent).toEqual([t0, t0 + 100]) // one, at the end of the interval
    vi.advanceTimersByTime(1000)
    expect(sent).toHaveLength(2) // nothing more happened: nothing more sent
  })

  it('sends at once again after a quiet interval', () => {
    const sent: number[] = []
    const a = coalescedActivity(() => sent.push(Date.now()), 100)
    const t0 = Date.now()
    a.activity()
    vi.advanceTimersByTime(250)
    a.activity()
    expect(sent).toEqual([t0, t0 + 250])
  })

  it('never reports activity late by more than the interval, and never early', () => {
    // Activity every 30 ms for 1 s: the watchdog hears of it at least every 100 ms.
    const sent: number[] = []
    const a = coalescedActivity(() => sent.push(Date.now()), 100)
    const t0 = Date.now()
    const real: number[] = []
    for (let t = 0; t <= 1000; t += 30) {
      if (t > 0) vi.advanceTimersByTime(30)
      real.push(Date.now())
      a.activity()
    }
    expect(real[real.length - 1]).toBe(t0 + 990)
    vi.advanceTimersByTime(200)
    const gaps = sent.slice(1).map((t, i) => t - sent[i]!)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(100)
    expect(sent.length).toBeLessThan(real.length) // 34 activities, ~11 sent
    // the last real activity is covered by a send at or after it
    expect(sent[sent.length - 1]!).toBeGreaterThanOrEqual(real[real.length - 1]!)
  })

  it('sends nothing after stop', () => {
    const sent: number[] = []
    const a = coalescedActivity(() => sent.push(Date.now()), 100)
    a.activity()
    a.activity()
    a.stop()
    vi.advanceTimersByTime(1000)
    expect(sent).toHaveLength(1)
  })
})
