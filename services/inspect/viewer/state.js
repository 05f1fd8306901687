// The page's state: what it shows, shared by its modules (a single object, mutated in place).
export const state = {
  chart: null,
  loops: [],
  selected: null,
  loop: null, // LoopPayload of the selected loop
  history: [], // page history entries of the selected loop
  stream: [],
  at: null, // history seq the slider shows; null = live
  snapshots: new Map(), // seq -> { state, summary, detail }
  tab: 'log',
  ws: null,
  connected: false,
}
