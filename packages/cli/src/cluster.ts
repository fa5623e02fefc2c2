/*
 * A local cluster of `pastry node` processes, for `pastry demo` and the multi-process tests: start
 * members, read their stdout contract lines, talk to their admin APIs, and stop them all, leaving no
 * stray process behind even when the parent fails.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

/** How long a member may take to print its `listening` line. */
const LISTEN_TIMEOUT_MS = 20_000
/** How long a member may take to exit after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 10_000

/** One `pastry node` process. */
export interface Member {
  readonly index: number
  readonly process: ChildProcess
  readonly id: string
  readonly address: string
  readonly admin: string
  /** Resolves when the member prints `{"event":"active"}`; rejects if it exits first. */
  readonly active: Promise<void>
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  readonly exited: Promise<number | string>
  /** Lines the member wrote to stderr, the last 200. */
  readonly stderr: string[]
  /** Lines the member wrote to stdout, the first 100 (the contract has two). */
  readonly stdout: string[]
}

/** Options for {@link LocalCluster}. */
export interface ClusterOptions {
  /** Extra `pastry node` arguments for every member. */
  readonly nodeArgs?: readonly string[]
  /** Host to bind (default 127.0.0.1). */
  readonly host?: string
  /** Keep the members' stderr (logs) lines (default true). */
  readonly keepLogs?: boolean
  /**
   * How to run `pastry`: Node flags and the entry script. Default: this process's own flags and
   * entry point, which is right when the caller is the `pastry` command itself.
   */
  readonly command?: { readonly execArgv: readonly string[]; readonly entry: string }
}

/**
 * Runs `pastry node` processes. The command is this process's own entry point with the same Node
 * flags, so a cluster started from sources runs sources and one started from the build runs the build.
 */
export class LocalCluster {
  readonly members: Member[] = []
  readonly #options: ClusterOptions
  readonly #onExit = () => this.killAll()

  constructor(options: ClusterOptions = {}) {
    this.#options = options
    process.once('exit', this.#onExit)
  }

  /**
   * Starts one member with extra arguments (for example `--bootstrap`) and resolves once it is
   * listening. Rejects if it exits or stays silent for 20 s.
   */
  async add(args: readonly string[] = []): Promise<Member> {
    const host = this.#options.host ?? '127.0.0.1'
    const entry = this.#options.command?.entry ?? process.argv[1]
    if (entry === undefined) throw new Error('cannot find the pastry entry point')
    const child = spawn(
      process.execPath,
      [
        ...(this.#options.command?.execArgv ?? process.execArgv),
        entry,
        'node',
        '--listen',
        `${host}:0`,
        '--admin',
        `${host}:0`,
        ...(this.#options.nodeArgs ?? []),
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const stderr: string[] = []
    if (this.#options.keepLogs !== false) {
      createInterface({ input: child.stderr }).on('line', (line) => {
        stderr.push(line)
        if (stderr.length > 200) stderr.shift()
      })
    } else child.stderr.resume()
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'))
    })
    const lines = createInterface({ input: child.stdout })
    const stdout: string[] = []
    lines.on('line', (line) => {
      if (stdout.length < 100) stdout.push(line)
    })
    let onActive: () => void = () => {}
    const active = new Promise<void>((resolve, reject) => {
      onActive = resolve
      void exited.then((code) => reject(new Error(`node exited (${code}) before it was active`)))
    })
    active.catch(() => {}) // observed by whoever awaits it; never unhandled
    const listening = new Promise<{ id: string; address: string; admin: string }>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('node did not start listening within 20 s')),
        LISTEN_TIMEOUT_MS,
      )
      void exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`node exited (${code}) before listening: ${stderr.slice(-5).join('\n')}`))
      })
      lines.on('line', (line) => {
        let event: Record<string, unknown>
        try {
          event = JSON.parse(line) as Record<string, unknown>
        } catch {
          return
        }
        if (event.event === 'listening') {
          clearTimeout(timer)
          resolve(event as { id: string; address: string; admin: string })
        } else if (event.event === 'active') onActive()
      })
    })
    let info: { id: string; address: string; admin: string }
    try {
      info = await listening
    } catch (error) {
      child.kill('SIGKILL')
      throw error
    }
    const member: Member = {
      index: this.members.length,
      process: child,
      id: info.id,
      address: info.address,
      admin: info.admin,
      active,
      exited,
      stderr,
      stdout,
    }
    this.members.push(member)
    return member
  }

  /** Members whose process is still running. */
  get running(): Member[] {
    return this.members.filter((m) => m.process.exitCode === null && m.process.signalCode === null)
  }

  /** Sends `signal` to a member and resolves with its exit code or signal. */
  async kill(member: Member, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | string> {
    member.process.kill(signal)
    return member.exited
  }

  /**
   * Stops every running member with SIGTERM (a graceful leave), killing any that take longer than
   * 10 s, and resolves with each one's exit code.
   */
  async stop(): Promise<(number | string)[]> {
    const running = this.running
    const codes = await Promise.all(
      running.map(async (m) => {
        m.process.kill('SIGTERM')
        const timer = setTimeout(() => m.process.kill('SIGKILL'), STOP_TIMEOUT_MS)
        const code = await m.exited
        clearTimeout(timer)
        return code
      }),
    )
    process.off('exit', this.#onExit)
    return codes
  }

  /** Kills every running member at once (SIGKILL). Safe to call at any time, even on exit. */
  killAll(): void {
    for (const m of this.running) m.process.kill('SIGKILL')
  }
}

/** Calls a member's admin API and returns the parsed JSON body; throws on a non-2xx answer. */
export async function admin<T = unknown>(
  member: Pick<Member, 'admin'>,
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await fetch(`http://${member.admin}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(10_000),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${text}`)
  return JSON.parse(text) as T
}

/** `/status` of a member, as the admin API documents it. */
export interface MemberStatus {
  readonly id: string
  readonly address: string
  readonly state: string
  readonly leafSet: readonly { id: string; address: string }[]
  readonly routingTableEntries: number
  readonly neighbourhood: readonly { id: string; address: string }[]
}

/** One `/delivered` record. */
export interface DeliveredEntry {
  readonly id: string
  readonly key: string
  readonly data: string
  readonly hops: number
  readonly origin: string
  readonly latencyMs: number | null
}

/** One `/received` record: a message, or a gap (`gap` set, no `data` or `seq`). */
export interface ReceivedEntry {
  readonly topic: string
  readonly data?: string
  readonly publisher: string
  readonly epoch: number
  readonly seq?: number
  readonly gap?: { readonly fromSeq: number; readonly toSeq: number }
  readonly receivedAtMs: number
}

/** One `/topics` entry: a member's place in a topic's tree. */
export interface TopicStatus {
  readonly topic: string
  readonly subscribed: boolean
  readonly root: boolean
  readonly parent: { readonly id: string; readonly address: string } | null
  readonly children: readonly { readonly id: string; readonly address: string }[]
  readonly received: number
  readonly gaps: number
}
