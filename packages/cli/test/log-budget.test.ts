// The daemon's cap on log lines that peers can cause (src/node/log-budget.ts), on a hand-driven
// clock: lines past the cap are counted, and the next window's first line reports them.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { LogBudget } from '../src/node/log-budget.js'

test('at most perWindow lines per kind and window; the next window reports what was left out', () => {
  let now = 0
  const budget = new LogBudget(3, 1000, () => now)
  const reported: [string, number][] = []
  const take = (kind: string) => budget.take(kind, (n) => reported.push([kind, n]))
  const written = Array.from({ length: 10 }, () => take('badFrame'))
  assert.equal(written, [true, true, true, false, false, false, false, false, false, false])
  // Another kind has its own allowance.
  assert.ok(take('error'))
  now = 999
  assert.not.ok(take('badFrame'))
  assert.equal(reported, [])
  now = 1000
  assert.ok(take('badFrame'))
  assert.equal(reported, [['badFrame', 8]])
  assert.ok(take('badFrame') && take('badFrame'))
  assert.not.ok(take('badFrame'))
  // A window without anything left out reports nothing.
  now = 5000
  assert.ok(take('error'))
  assert.equal(reported, [['badFrame', 8]])
})

test.run()
