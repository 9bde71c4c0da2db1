/**
 * Pure logic of the Packrat sidebar and profile viewer: no JupyterLab or DOM imports,
 * so the node test runner can check it directly.
 */

/** One model instance of a pool's plan, as the server extension reports it. */
export interface IInstance {
  threads: number;
  batch: number;
  cores: number[];
  setting: string;
}

/** Who runs a pool: one of this Jupyter server's kernels (its notebook), or another process. */
export interface IOwner {
  group: 'kernel' | 'other';
  label: string;
  pid: number;
  notebook: string | null;
}

/**
 * A pool's latency-objective figures (Pool.stats()); every one null when it has no objective.
 * `slo_attainment` is a fraction of the requests offered with a deadline; `goodput_rps` counts
 * answers within their deadline per second.
 */
export interface ISlo {
  slo_ms: number | null;
  slo_attainment: number | null;
  goodput_rps: number | null;
  rejected: number | null;
  dropped: number | null;
  late: number | null;
}

/** One model of a fleet: the host cores it holds, its plan's instances and its own stats. */
export interface IFleetMember {
  name: string;
  model: string;
  plan: string;
  state: string;
  cores: number[];
  instances: IInstance[];
  served: number | null;
  throughput: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  reconfigurations: number | null;
  slo: ISlo;
}

/** A fleet's selection group (Clipper): several members answering as one model name. */
export interface IFleetGroup {
  name: string;
  policy: string;
  members: string[];
}

/** One live pool as `GET /packrat-lab/pools` reports it (never with a token); a fleet is one entry too. */
export interface IPool {
  id: string;
  kind: 'pool' | 'fleet';
  pid: number;
  model: string;
  name: string;
  url: string;
  started: number;
  plan: string;
  display: string;
  instances: IInstance[];
  state: string;
  throughput: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  cores: number | null;
  auto: boolean | null;
  estimated_batch: number | null;
  reconfigurations: number | null;
  slo: ISlo;
  /** A fleet's models (empty for a one-model pool). */
  members: IFleetMember[];
  groups: IFleetGroup[];
  /** A fleet's host cores, the width of every member's core map. */
  host_cores: number[];
  reachable: boolean;
  error: string | null;
  owner: IOwner;
}

/** One row of the plan map: the optimizer's pick at total batch B. */
export interface IPlanMapRow {
  batch: number;
  config: string;
  plan: string;
  instances: number;
  expected_ms: number | null;
  fat_ms: number | null;
  speedup: number | null;
}

/** The profile viewer's data from `GET /packrat-lab/profile?path=`. */
export interface IProfileView {
  path: string;
  model: string;
  statistic: string;
  threads: number[];
  batches: number[];
  latency_ms: (number | null)[][];
  setting: string[][];
  noisy: [number, number][];
  cores: number;
  plan_map: IPlanMapRow[];
  plan_map_note: string | null;
  host_differences: string[];
}

/**
 * Poll delays: `initial` after a success, doubling on each consecutive error up to `max`.
 */
export class Backoff {
  constructor(
    readonly initial = 1000,
    readonly max = 30000
  ) {
    if (!(initial > 0) || !(max >= initial)) {
      throw new Error(`backoff needs 0 < initial <= max, got ${initial} and ${max}; example: new Backoff(1000, 30000)`);
    }
    this._delay = initial;
  }

  /** The delay to wait before the next poll. */
  get delay(): number {
    return this._delay;
  }

  /** Consecutive failures so far. */
  get failures(): number {
    return this._failures;
  }

  /** A poll succeeded: back to the initial delay. */
  succeed(): number {
    this._failures = 0;
    this._delay = this.initial;
    return this._delay;
  }

  /** A poll failed: double the delay, capped at max. */
  fail(): number {
    this._failures += 1;
    this._delay = Math.min(this.max, this.initial * 2 ** this._failures);
    return this._delay;
  }

  private _delay: number;
  private _failures = 0;
}

/** The card's title: the model, plus the pool's name when the user gave one (not the default `pool-MODEL`). */
export function poolTitle(pool: Pick<IPool, 'model' | 'name'>): string {
  return pool.name && pool.name !== `pool-${pool.model}` ? `${pool.model} · ${pool.name}` : pool.model;
}

/** Fold identical instances: `⟨2,1,4⟩ + ⟨1,2,8⟩` (count, threads, batch) in first-seen order. */
export function formatPlan(instances: IInstance[]): string {
  const groups: { key: string; count: number; inst: IInstance }[] = [];
  for (const inst of instances) {
    const key = `${inst.threads}x${inst.batch}@${inst.setting}`;
    const found = groups.find(g => g.key === key);
    if (found) {
      found.count += 1;
    } else {
      groups.push({ key, count: 1, inst });
    }
  }
  return groups
    .map(g => `⟨${g.count},${g.inst.threads},${g.inst.batch}⟩${g.inst.setting && g.inst.setting !== 'default' ? ' ' + g.inst.setting : ''}`)
    .join(' + ');
}

/** What the switch box asked for: a plan text like `2x1x4`, or a total batch B chosen from the profile. */
export type PlanRequest = { plan: string } | { batch: number };

const PLAN_PART = /^\s*\d+\s*x\s*\d+\s*x\s*\d+\s*(@\s*[A-Za-z_][\w-]*)?\s*$/;

/** Parse the switch box: an integer is a batch B, `IxTxB(+IxTxB)*` is a plan; anything else throws. */
export function parsePlanInput(text: string): PlanRequest {
  const value = text.trim();
  if (/^\d+$/.test(value)) {
    const batch = Number(value);
    if (batch >= 1) {
      return { batch };
    }
  } else if (value && value.split('+').every(part => PLAN_PART.test(part))) {
    return { plan: value.replace(/\s+/g, '') };
  }
  throw new Error(`'${text}' is neither a plan nor a batch; examples: 2x1x4, 1x2x8+2x1x4 or 16`);
}

/** The card's second line: auto mode with its estimated B, and how many switches so far. */
export function describeControl(pool: Pick<IPool, 'auto' | 'estimated_batch' | 'reconfigurations'>): string {
  const parts: string[] = [];
  if (pool.auto) {
    parts.push(pool.estimated_batch !== null ? `auto · estimated B ${pool.estimated_batch}` : 'auto');
  }
  if (pool.reconfigurations) {
    parts.push(`${pool.reconfigurations} switch${pool.reconfigurations === 1 ? '' : 'es'}`);
  }
  return parts.join(' · ');
}

/** Human numbers: `12.3 ms`, `1.25 s`, `—` when unknown. */
export function formatMs(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '—';
  }
  if (value >= 1000) {
    return `${(value / 1000).toFixed(2)} s`;
  }
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}

/** Requests per second (the pool counts requests, each one or more samples), compact. */
export function formatRate(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '—';
  }
  return value >= 100 ? `${value.toFixed(0)} req/s` : `${value.toFixed(1)} req/s`;
}

/** One cell of the core map: which instance (index, -1 for idle) owns each core. */
export interface ICoreCell {
  core: number;
  instance: number;
}

/**
 * Cores of the host coloured by owning instance. Instances without pinned cores take
 * consecutive cores, so the map still shows how the plan splits the host.
 */
export function coreMap(instances: IInstance[], hostCores: number | null): ICoreCell[] {
  const owner = new Map<number, number>();
  let next = 0;
  instances.forEach((inst, index) => {
    const cores = inst.cores.length ? inst.cores : Array.from({ length: inst.threads }, () => next++);
    for (const core of cores) {
      owner.set(core, index);
      next = Math.max(next, core + 1);
    }
  });
  const used = owner.size ? Math.max(...owner.keys()) + 1 : 0;
  const total = Math.max(used, hostCores && hostCores > 0 ? Math.floor(hostCores) : 0);
  return Array.from({ length: total }, (_, core) => ({ core, instance: owner.get(core) ?? -1 }));
}

function asNumber(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function asString(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

function asRecord(value: unknown): Record<string, unknown> {
  return (value && typeof value === 'object' ? value : {}) as Record<string, unknown>;
}

function asNumbers(value: unknown): number[] {
  return Array.isArray(value) ? value.filter((c): c is number => typeof c === 'number' && Number.isFinite(c)) : [];
}

function parseInstance(raw: unknown): IInstance | null {
  if (!raw || typeof raw !== 'object') {
    return null;
  }
  const r = raw as Record<string, unknown>;
  const threads = asNumber(r.threads);
  const batch = asNumber(r.batch);
  if (threads === null || batch === null) {
    return null;
  }
  return { threads, batch, cores: asNumbers(r.cores), setting: asString(r.setting, 'default') };
}

function parseInstances(value: unknown): IInstance[] {
  return Array.isArray(value) ? value.map(parseInstance).filter((i): i is IInstance => i !== null) : [];
}

/** The SLO figures the server extension reports (missing ones are null). */
export function parseSlo(raw: unknown): ISlo {
  const r = asRecord(raw);
  return {
    slo_ms: asNumber(r.slo_ms),
    slo_attainment: asNumber(r.slo_attainment),
    goodput_rps: asNumber(r.goodput_rps),
    rejected: asNumber(r.rejected),
    dropped: asNumber(r.dropped),
    late: asNumber(r.late)
  };
}

function parseMember(raw: unknown): IFleetMember | null {
  const r = asRecord(raw);
  if (typeof r.name !== 'string' || !r.name) {
    return null;
  }
  return {
    name: r.name,
    model: asString(r.model, r.name),
    plan: asString(r.plan),
    state: asString(r.state, 'unknown'),
    cores: asNumbers(r.cores),
    instances: parseInstances(r.instances),
    served: asNumber(r.served),
    throughput: asNumber(r.throughput),
    p50_ms: asNumber(r.p50_ms),
    p99_ms: asNumber(r.p99_ms),
    reconfigurations: asNumber(r.reconfigurations),
    slo: parseSlo(r.slo)
  };
}

function parseGroup(raw: unknown): IFleetGroup | null {
  const r = asRecord(raw);
  if (typeof r.name !== 'string' || !r.name) {
    return null;
  }
  const members = Array.isArray(r.members) ? r.members.filter((m): m is string => typeof m === 'string') : [];
  return { name: r.name, policy: asString(r.policy), members };
}

/** The server's error text from a JSON body like {"message": ...}, or the fallback when it has none. */
export function errorMessage(body: unknown, fallback: string): string {
  const r = asRecord(body);
  return typeof r.message === 'string' && r.message ? r.message : fallback;
}

/** The owner the server extension reports; a pool without one counts as another process's. */
export function parseOwner(raw: unknown, pid: number): IOwner {
  const r = asRecord(raw);
  return {
    group: r.group === 'kernel' ? 'kernel' : 'other',
    label: asString(r.label, `pid ${pid}`),
    pid: asNumber(r.pid) ?? pid,
    notebook: typeof r.notebook === 'string' && r.notebook ? r.notebook : null
  };
}

/** Pools split into this server's kernels and other pools on this host, each oldest first. */
export function groupPools(pools: IPool[]): { kernel: IPool[]; other: IPool[] } {
  const byAge = [...pools].sort((a, b) => a.started - b.started);
  return { kernel: byAge.filter(p => p.owner.group === 'kernel'), other: byAge.filter(p => p.owner.group !== 'kernel') };
}

/** Short owner tag for a title: the notebook's file name, or the command's first words. */
export function ownerTag(owner: IOwner): string {
  if (owner.notebook) {
    return owner.notebook.split('/').pop() ?? owner.notebook;
  }
  const command = owner.label.replace(/\s*\(pid \d+\)$/, '');
  const words = command.split(' ').filter(w => w && !w.startsWith('-'));
  return words.slice(0, 2).join(' ') || `pid ${owner.pid}`;
}

/** Distinct card titles: `model · owner`, plus `· pid N` where two pools would still read the same. */
export function distinctTitles(pools: IPool[]): Map<string, string> {
  const base = new Map(pools.map(p => [p.id, `${poolTitle(p)} · ${ownerTag(p.owner)}`]));
  const counts = new Map<string, number>();
  for (const title of base.values()) {
    counts.set(title, (counts.get(title) ?? 0) + 1);
  }
  const out = new Map<string, string>();
  for (const p of pools) {
    const title = base.get(p.id) ?? p.model;
    out.set(p.id, (counts.get(title) ?? 0) > 1 ? `${title} · pid ${p.pid}` : title);
  }
  return out;
}

/** The Stop dialog's text: a pool this server's kernels did not start names its owner. */
export function stopConfirmation(pool: Pick<IPool, 'model' | 'plan' | 'url' | 'owner'>): string {
  const what = `Stop ${pool.model} (${pool.plan})? Its workers exit and requests are refused.`;
  if (pool.owner.group === 'kernel') {
    return `${what} It belongs to ${pool.owner.label}.`;
  }
  return `${what} This Jupyter server did not start it: it is owned by ${pool.owner.label} at ${pool.url}.`;
}

/** A fraction as a percent: `97.3 %`, `—` when unknown. */
export function formatPercent(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) {
    return '—';
  }
  return `${(fraction * 100).toFixed(1)} %`;
}

/** True when the pool has a latency objective: a default `slo_ms`, or requests offered with a deadline. */
export function hasSlo(slo: ISlo): boolean {
  return slo.slo_ms !== null || slo.slo_attainment !== null;
}

/** One labelled SLO figure of a card, with a tooltip saying exactly what it counts. */
export interface ISloFigure {
  key: keyof ISlo;
  label: string;
  value: string;
  title: string;
}

function formatCount(value: number | null): string {
  return value === null ? '—' : String(Math.round(value));
}

/**
 * The SLO row of a card: objective, attainment (percent of offered), goodput (req/s) and the
 * misses by kind; every value `—` when there is no objective.
 */
export function sloFigures(slo: ISlo): ISloFigure[] {
  const on = hasSlo(slo);
  const shown = (text: string) => (on ? text : '—');
  return [
    {
      key: 'slo_ms',
      label: 'SLO',
      value: on ? (slo.slo_ms === null ? 'per request' : formatMs(slo.slo_ms)) : '—',
      title: 'latency objective: the pool default, or deadlines set per request'
    },
    {
      key: 'slo_attainment',
      label: 'attained',
      value: shown(formatPercent(slo.slo_attainment)),
      title: 'answered within the deadline, as a percent of the requests offered with a deadline'
    },
    {
      key: 'goodput_rps',
      label: 'goodput',
      value: shown(formatRate(slo.goodput_rps)),
      title: 'answers within their deadline per second (recent window)'
    },
    { key: 'rejected', label: 'rejected', value: shown(formatCount(slo.rejected)), title: 'refused at admission: predicted to miss' },
    {
      key: 'dropped',
      label: 'dropped',
      value: shown(formatCount(slo.dropped)),
      title: 'admitted, deadline passed before it started: never run'
    },
    { key: 'late', label: 'late', value: shown(formatCount(slo.late)), title: 'answered after its deadline' }
  ];
}

/** A fleet member's stats line: `12 served · 41.2 req/s · p50 4.1 ms · p99 9.2 ms`. */
export function describeMember(member: Pick<IFleetMember, 'served' | 'throughput' | 'p50_ms' | 'p99_ms'>): string {
  return `${formatCount(member.served)} served · ${formatRate(member.throughput)} · p50 ${formatMs(member.p50_ms)} · p99 ${formatMs(member.p99_ms)}`;
}

/** One host core in a fleet member's map: held by this member (with its instance), by another member, or idle. */
export interface IFleetCoreCell {
  core: number;
  /** the member holding the core, null when idle */
  owner: string | null;
  /** index of this member's instance pinned there; -1 when another member holds the core or none is pinned */
  instance: number;
}

/**
 * One member's core map over the fleet's host cores (ids as the OS numbers them): which cores it
 * holds, coloured by its instance, and which the other members hold. Instances reported without
 * cores (an unreachable fleet) are laid on the member's cores in order.
 */
export function fleetCoreMap(hostCores: number[], members: IFleetMember[], name: string): IFleetCoreCell[] {
  const holder = new Map<number, string>();
  for (const m of members) {
    for (const core of m.cores) {
      holder.set(core, m.name);
    }
  }
  const member = members.find(m => m.name === name);
  const instanceOf = new Map<number, number>();
  if (member) {
    const free = [...member.cores];
    member.instances.forEach((inst, index) => {
      const cores = inst.cores.length ? inst.cores : free.splice(0, inst.threads);
      for (const core of cores) {
        instanceOf.set(core, index);
      }
    });
  }
  const all = [...hostCores];
  for (const core of [...holder.keys()].sort((a, b) => a - b)) {
    if (!all.includes(core)) {
      all.push(core); // a member core the host list lacks: still shown
    }
  }
  return all.map(core => {
    const owner = holder.get(core) ?? null;
    return { core, owner, instance: owner === name ? (instanceOf.get(core) ?? -1) : -1 };
  });
}

/** What the fleet's move box asked for: a plan per model name. */
export interface IFleetPlans {
  plans: Record<string, string>;
}

const FLEET_EXAMPLE = 'example: a=1x1x4 b=1x3x8';

/**
 * Parse the fleet's move box, `a=1x1x4 b=1x3x8` (spaces or commas between models); every name must
 * be one of the fleet's models and every plan IxTxB(+IxTxB)*; anything else throws.
 */
export function parseFleetPlansInput(text: string, names: string[]): IFleetPlans {
  const parts = text
    .trim()
    .split(/[\s,;]+(?=[^=+\s,;]+\s*=)/)
    .map(p => p.trim())
    .filter(p => p);
  if (!parts.length) {
    throw new Error(`no plans in '${text}'; ${FLEET_EXAMPLE}`);
  }
  const plans: Record<string, string> = {};
  for (const part of parts) {
    const match = /^([^=\s]+)\s*=\s*(.+)$/.exec(part);
    if (!match) {
      throw new Error(`'${part}' is not NAME=PLAN; ${FLEET_EXAMPLE}`);
    }
    const [, name, plan] = match;
    if (!names.includes(name)) {
      throw new Error(`'${name}' is not a model of this fleet (${names.join(', ')}); ${FLEET_EXAMPLE}`);
    }
    if (!plan.split('+').every(p => PLAN_PART.test(p))) {
      throw new Error(`'${plan}' is not a plan for ${name}; ${FLEET_EXAMPLE}`);
    }
    plans[name] = plan.replace(/\s+/g, '');
  }
  return { plans };
}

/** Validate `GET /packrat-lab/pools`; malformed pools are dropped, a malformed body throws. */
export function parsePools(body: unknown): IPool[] {
  if (!body || typeof body !== 'object' || !Array.isArray((body as { pools?: unknown }).pools)) {
    throw new Error('unexpected answer from /packrat-lab/pools: no "pools" list');
  }
  const pools: IPool[] = [];
  for (const raw of (body as { pools: unknown[] }).pools) {
    if (!raw || typeof raw !== 'object') {
      continue;
    }
    const r = raw as Record<string, unknown>;
    if (typeof r.id !== 'string') {
      continue;
    }
    const members = Array.isArray(r.members) ? r.members.map(parseMember).filter((m): m is IFleetMember => m !== null) : [];
    const groups = Array.isArray(r.groups) ? r.groups.map(parseGroup).filter((g): g is IFleetGroup => g !== null) : [];
    pools.push({
      id: r.id,
      kind: r.kind === 'fleet' ? 'fleet' : 'pool',
      pid: asNumber(r.pid) ?? 0,
      model: asString(r.model, 'model'),
      name: asString(r.name),
      url: asString(r.url),
      started: asNumber(r.started) ?? 0,
      plan: asString(r.plan),
      display: asString(r.display),
      instances: parseInstances(r.instances),
      state: asString(r.state, 'unknown'),
      throughput: asNumber(r.throughput),
      p50_ms: asNumber(r.p50_ms),
      p99_ms: asNumber(r.p99_ms),
      cores: asNumber(r.cores),
      auto: typeof r.auto === 'boolean' ? r.auto : null,
      estimated_batch: asNumber(r.estimated_batch),
      reconfigurations: asNumber(r.reconfigurations),
      slo: parseSlo(r.slo),
      members: r.kind === 'fleet' ? members : [],
      groups: r.kind === 'fleet' ? groups : [],
      host_cores: asNumbers(r.host_cores),
      reachable: r.reachable !== false,
      error: typeof r.error === 'string' ? r.error : null,
      owner: parseOwner(r.owner, asNumber(r.pid) ?? 0)
    });
  }
  return pools;
}

/** Validate `GET /packrat-lab/profile`: the grid must match its axes. */
export function parseProfileView(body: unknown): IProfileView {
  const r = asRecord(body);
  const threads = Array.isArray(r.threads) ? (r.threads as unknown[]).map(asNumber) : null;
  const batches = Array.isArray(r.batches) ? (r.batches as unknown[]).map(asNumber) : null;
  const grid = Array.isArray(r.latency_ms) ? (r.latency_ms as unknown[]) : null;
  if (!threads || !batches || !grid || threads.includes(null) || batches.includes(null)) {
    throw new Error('unexpected profile view: needs threads, batches and latency_ms');
  }
  if (grid.length !== threads.length || grid.some(row => !Array.isArray(row) || row.length !== batches.length)) {
    throw new Error(`profile grid is not ${threads.length}×${batches.length} (threads × batches)`);
  }
  const settings = Array.isArray(r.setting) ? (r.setting as unknown[][]) : [];
  return {
    path: asString(r.path),
    model: asString(r.model, 'model'),
    statistic: asString(r.statistic, 'median'),
    threads: threads as number[],
    batches: batches as number[],
    latency_ms: (grid as unknown[][]).map(row => row.map(asNumber)),
    setting: threads.map((_, i) => batches.map((__, j) => asString(settings[i]?.[j]))),
    noisy: Array.isArray(r.noisy) ? (r.noisy as [number, number][]) : [],
    cores: asNumber(r.cores) ?? Math.max(0, ...(threads as number[])),
    plan_map: Array.isArray(r.plan_map)
      ? (r.plan_map as Record<string, unknown>[]).map(row => ({
          batch: asNumber(row.batch) ?? 0,
          config: asString(row.config),
          plan: asString(row.plan),
          instances: asNumber(row.instances) ?? 0,
          expected_ms: asNumber(row.expected_ms),
          fat_ms: asNumber(row.fat_ms),
          speedup: asNumber(row.speedup)
        }))
      : [],
    plan_map_note: typeof r.plan_map_note === 'string' ? r.plan_map_note : null,
    host_differences: Array.isArray(r.host_differences) ? r.host_differences.filter((d): d is string => typeof d === 'string') : []
  };
}

// Viridis at 9 stops (colourblind-safe, perceptually uniform), interpolated linearly.
const VIRIDIS: [number, number, number][] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37]
];

/** Colour of a latency on a log scale between lo and hi (fast = dark, slow = yellow). */
export function heatColour(value: number | null, lo: number, hi: number): string {
  if (value === null || !(value > 0) || !(lo > 0) || !(hi > 0)) {
    return 'transparent';
  }
  const span = Math.log(hi) - Math.log(lo);
  const x = span > 0 ? Math.min(1, Math.max(0, (Math.log(value) - Math.log(lo)) / span)) : 0;
  const pos = x * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(pos));
  const f = pos - i;
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]];
  const mix = (k: number) => Math.round(a[k] + (b[k] - a[k]) * f);
  return `rgb(${mix(0)}, ${mix(1)}, ${mix(2)})`;
}

/** Smallest and largest measured latency of a grid (nulls ignored); [0, 0] if none. */
export function gridRange(grid: (number | null)[][]): [number, number] {
  const values = grid.flat().filter((v): v is number => v !== null && v > 0);
  return values.length ? [Math.min(...values), Math.max(...values)] : [0, 0];
}
