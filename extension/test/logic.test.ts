/** Unit tests of the sidebar's pure logic (node's test runner, compiled by tsconfig.test.json). */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  Backoff,
  coreMap,
  describeControl,
  describeMember,
  distinctTitles,
  errorMessage,
  formatMs,
  formatPlan,
  formatPercent,
  formatRate,
  fleetCoreMap,
  gridRange,
  groupPools,
  hasSlo,
  heatColour,
  parseFleetPlansInput,
  parsePlanInput,
  parsePools,
  parseSlo,
  parseProfileView,
  poolTitle,
  sloFigures,
  stopConfirmation
} from '../src/logic';

const inst = (threads: number, batch: number, cores: number[] = [], setting = 'default') => ({ threads, batch, cores, setting });

describe('Backoff', () => {
  it('doubles from 1 s to a 30 s cap on errors and resets on success', () => {
    const b = new Backoff(1000, 30000);
    assert.equal(b.delay, 1000);
    assert.deepEqual([b.fail(), b.fail(), b.fail(), b.fail(), b.fail(), b.fail()], [2000, 4000, 8000, 16000, 30000, 30000]);
    assert.equal(b.failures, 6);
    assert.equal(b.succeed(), 1000);
    assert.equal(b.failures, 0);
    assert.equal(b.fail(), 2000);
  });

  it('rejects a cap below the first delay', () => {
    assert.throws(() => new Backoff(5000, 1000), /0 < initial <= max/);
  });
});

describe('formatPlan', () => {
  it('folds identical instances in first-seen order', () => {
    assert.equal(formatPlan([inst(2, 8), inst(1, 4), inst(1, 4)]), '⟨1,2,8⟩ + ⟨2,1,4⟩');
  });

  it('keeps instances with another runtime setting apart and names it', () => {
    assert.equal(formatPlan([inst(1, 4), inst(1, 4, [], 'passive')]), '⟨1,1,4⟩ + ⟨1,1,4⟩ passive');
  });

  it('is empty for no instances', () => {
    assert.equal(formatPlan([]), '');
  });
});

describe('poolTitle', () => {
  it('names the pool only when the user named it', () => {
    assert.equal(poolTitle({ model: 'mlp', name: 'pool-mlp' }), 'mlp');
    assert.equal(poolTitle({ model: 'mlp', name: '' }), 'mlp');
    assert.equal(poolTitle({ model: 'mlp', name: 'canary' }), 'mlp · canary');
  });
});

describe('parsePlanInput', () => {
  it('reads an integer as a batch and IxTxB as a plan', () => {
    assert.deepEqual(parsePlanInput(' 16 '), { batch: 16 });
    assert.deepEqual(parsePlanInput('2x1x4'), { plan: '2x1x4' });
    assert.deepEqual(parsePlanInput('1 x 2 x 8 + 2x1x4@passive'), { plan: '1x2x8+2x1x4@passive' });
  });

  it('refuses anything else with examples', () => {
    for (const bad of ['', '0', '2x1', 'fast', '2x1x4+', '-3']) {
      assert.throws(() => parsePlanInput(bad), /examples: 2x1x4/, bad);
    }
  });
});

describe('formatting', () => {
  it('formats milliseconds, seconds and unknowns', () => {
    assert.equal(formatMs(4.53), '4.5 ms');
    assert.equal(formatMs(250), '250 ms');
    assert.equal(formatMs(3274), '3.27 s');
    assert.equal(formatMs(null), '—');
    assert.equal(formatMs(Number.NaN), '—');
    assert.equal(formatRate(12.34), '12.3 req/s');
    assert.equal(formatRate(1500), '1500 req/s');
    assert.equal(formatRate(undefined), '—');
  });
});

describe('describeControl', () => {
  it('mentions auto mode with its estimate and counts switches', () => {
    assert.equal(describeControl({ auto: true, estimated_batch: 8, reconfigurations: 1 }), 'auto · estimated B 8 · 1 switch');
    assert.equal(describeControl({ auto: false, estimated_batch: 8, reconfigurations: 3 }), '3 switches');
    assert.equal(describeControl({ auto: null, estimated_batch: null, reconfigurations: 0 }), '');
  });
});

describe('coreMap', () => {
  it('colours pinned cores by instance and leaves the rest idle', () => {
    const cells = coreMap([inst(1, 4, [2]), inst(1, 4, [0])], 4);
    assert.deepEqual(
      cells.map(c => c.instance),
      [1, -1, 0, -1]
    );
  });

  it('lays unpinned instances on consecutive cores', () => {
    const cells = coreMap([inst(2, 8), inst(1, 4)], null);
    assert.deepEqual(
      cells.map(c => c.instance),
      [0, 0, 1]
    );
  });
});

describe('parsePools', () => {
  it('keeps well-formed pools, fills defaults and drops malformed ones', () => {
    const pools = parsePools({
      pools: [
        {
          id: '1-ab',
          pid: 1,
          model: 'mlp',
          plan: '2x1x4',
          instances: [{ threads: 1, batch: 4, cores: [0] }, { threads: 'x' }],
          state: 'serving',
          throughput: 10,
          p50_ms: 4,
          p99_ms: null,
          reachable: true
        },
        { pid: 3 },
        'junk'
      ]
    });
    assert.equal(pools.length, 1);
    const [p] = pools;
    assert.equal(p.model, 'mlp');
    assert.deepEqual(p.instances, [{ threads: 1, batch: 4, cores: [0], setting: 'default' }]);
    assert.equal(p.p99_ms, null);
    assert.equal(p.error, null);
    assert.equal(p.reachable, true);
  });

  it('throws on a body without a pools list', () => {
    assert.throws(() => parsePools({ message: 'Forbidden' }), /no "pools" list/);
    assert.throws(() => parsePools(null), /no "pools" list/);
  });
});

describe('errorMessage', () => {
  it('takes the server message from a JSON error body', () => {
    assert.equal(errorMessage({ message: 'unknown pool 9-zz' }, 'HTTP 404'), 'unknown pool 9-zz');
  });

  it('falls back when the body has no usable message', () => {
    for (const body of [null, 'text', 42, {}, { message: '' }, { message: 7 }]) {
      assert.equal(errorMessage(body, 'HTTP 500 from pools'), 'HTTP 500 from pools');
    }
  });
});

describe('parseProfileView', () => {
  const body = {
    model: 'mlp',
    threads: [1, 2],
    batches: [1, 4],
    latency_ms: [
      [1.5, 4.9],
      [null, 2.6]
    ],
    setting: [
      ['default', 'passive'],
      ['', 'passive']
    ],
    plan_map: [{ batch: 4, config: '⟨2,1,2⟩', plan: '2x1x2', instances: 2, expected_ms: 2.0, fat_ms: 2.6, speedup: 1.3 }]
  };

  it('reads the grid, axes and plan map', () => {
    const view = parseProfileView(body);
    assert.deepEqual(view.latency_ms[1], [null, 2.6]);
    assert.equal(view.setting[0][1], 'passive');
    assert.equal(view.plan_map[0].plan, '2x1x2');
    assert.equal(view.cores, 2);
    assert.equal(view.statistic, 'median');
    assert.deepEqual(view.host_differences, []);
    assert.deepEqual(parseProfileView({ ...body, host_differences: ['torch: a != b', 3] }).host_differences, ['torch: a != b']);
  });

  it('refuses a grid that does not match its axes', () => {
    assert.throws(() => parseProfileView({ ...body, latency_ms: [[1, 2]] }), /not 2×2/);
    assert.throws(() => parseProfileView({ model: 'x' }), /needs threads, batches/);
  });
});

describe('heat colours', () => {
  it('maps the fastest to dark viridis and the slowest to yellow on a log scale', () => {
    assert.equal(heatColour(1, 1, 100), 'rgb(68, 1, 84)');
    assert.equal(heatColour(100, 1, 100), 'rgb(253, 231, 37)');
    assert.equal(heatColour(10, 1, 100), 'rgb(33, 144, 141)');
    assert.equal(heatColour(null, 1, 100), 'transparent');
  });

  it('finds the range of measured cells', () => {
    assert.deepEqual(
      gridRange([
        [3, null],
        [1, 9]
      ]),
      [1, 9]
    );
    assert.deepEqual(gridRange([[null]]), [0, 0]);
  });
});

describe('pool owners', () => {
  const pool = (id: string, group: 'kernel' | 'other', label: string, notebook: string | null, started = 0) =>
    parsePools({
      pools: [{ id, pid: 7, model: 'mlp', plan: '1x1x1', url: 'http://127.0.0.1:1', started, owner: { group, label, pid: 7, notebook } }]
    })[0];

  it('groups this server kernels apart from other pools, oldest first', () => {
    const a = pool('a', 'other', 'packrat-lab serve mlp --plan 1x1x1 (pid 7)', null, 2);
    const b = pool('b', 'kernel', 'notebook nb/02.ipynb (kernel pid 5)', 'nb/02.ipynb', 3);
    const c = pool('c', 'kernel', 'notebook nb/01.ipynb (kernel pid 4)', 'nb/01.ipynb', 1);
    const groups = groupPools([a, b, c]);
    const ids = (pools: { id: string }[]) => pools.map(p => p.id);
    assert.deepEqual(ids(groups.kernel), ['c', 'b']);
    assert.deepEqual(ids(groups.other), ['a']);
  });

  it('gives two mlp pools distinct titles naming their owners', () => {
    const a = pool('a', 'other', 'packrat-lab serve mlp --plan 1x1x1 (pid 7)', null);
    const b = pool('b', 'kernel', 'notebook nb/02.ipynb (kernel pid 5)', 'nb/02.ipynb');
    const titles = distinctTitles([a, b]);
    assert.equal(titles.get('a'), 'mlp · packrat-lab serve');
    assert.equal(titles.get('b'), 'mlp · 02.ipynb');
    const twin = distinctTitles([a, { ...a, id: 'z', pid: 9 }]);
    assert.notEqual(twin.get('a'), twin.get('z'));
  });

  it('names the owner when stopping a pool this server did not start', () => {
    const a = pool('a', 'other', 'packrat-lab serve mlp --plan 1x1x1 (pid 7)', null);
    assert.match(stopConfirmation(a), /did not start it: it is owned by packrat-lab serve mlp --plan 1x1x1 \(pid 7\)/);
    const b = pool('b', 'kernel', 'notebook nb/02.ipynb (kernel pid 5)', 'nb/02.ipynb');
    assert.match(stopConfirmation(b), /belongs to notebook nb\/02.ipynb/);
  });

  it('treats a pool without an owner as another process', () => {
    const [p] = parsePools({ pools: [{ id: 'x', pid: 3, model: 'mlp' }] });
    assert.equal(p.owner.group, 'other');
    assert.equal(p.owner.label, 'pid 3');
  });
});

describe('SLO figures', () => {
  const values = (raw: unknown) => sloFigures(parseSlo(raw)).map(f => `${f.label} ${f.value}`);

  it('shows attainment as a percent of offered and goodput in req/s', () => {
    const slo = { slo_ms: 50, slo_attainment: 0.9734, goodput_rps: 41.24, rejected: 3, dropped: 1, late: 2 };
    assert.deepEqual(values(slo), ['SLO 50.0 ms', 'attained 97.3 %', 'goodput 41.2 req/s', 'rejected 3', 'dropped 1', 'late 2']);
    assert.match(sloFigures(parseSlo(slo))[1].title, /percent of the requests offered with a deadline/);
  });

  it('shows a dash for every figure when there is no objective', () => {
    const none = { slo_ms: null, slo_attainment: null, goodput_rps: 12.5, rejected: 0, dropped: 0, late: 0 };
    assert.equal(hasSlo(parseSlo(none)), false);
    assert.deepEqual(values(none), ['SLO —', 'attained —', 'goodput —', 'rejected —', 'dropped —', 'late —']);
    assert.deepEqual(values(undefined), values(none));
  });

  it('counts deadlines set per request as an objective, and zero attainment is a value', () => {
    const perRequest = { slo_ms: null, slo_attainment: 0, goodput_rps: 0, rejected: 2, dropped: 0, late: 1 };
    assert.equal(hasSlo(parseSlo(perRequest)), true);
    assert.deepEqual(values(perRequest).slice(0, 3), ['SLO per request', 'attained 0.0 %', 'goodput 0.0 req/s']);
    assert.deepEqual(values({ slo_ms: 20, slo_attainment: null })[1], 'attained —'); // nothing offered yet
  });

  it('formats fractions as percents', () => {
    assert.equal(formatPercent(1), '100.0 %');
    assert.equal(formatPercent(0.5), '50.0 %');
    assert.equal(formatPercent(null), '—');
  });
});

describe('fleets', () => {
  const slo = parseSlo(null);
  const member = (name: string, cores: number[], instances: ReturnType<typeof inst>[]) => ({
    name,
    model: 'mlp',
    plan: '',
    state: 'serving',
    cores,
    instances,
    served: 3,
    throughput: 2.5,
    p50_ms: 4,
    p99_ms: 9,
    reconfigurations: 0,
    slo
  });
  const host = [0, 1, 2, 3, 4, 5, 6, 7];

  it('maps which host cores each model holds, coloured by its own instances', () => {
    const members = [member('a', [0, 1], [inst(1, 2, [0]), inst(1, 2, [1])]), member('b', [2, 3, 4], [inst(3, 4, [2, 3, 4])])];
    const a = fleetCoreMap(host, members, 'a');
    assert.deepEqual(
      a.map(c => c.owner),
      ['a', 'a', 'b', 'b', 'b', null, null, null]
    );
    assert.deepEqual(
      a.map(c => c.instance),
      [0, 1, -1, -1, -1, -1, -1, -1]
    );
    assert.deepEqual(
      fleetCoreMap(host, members, 'b').map(c => c.instance),
      [-1, -1, 0, 0, 0, -1, -1, -1]
    );
  });

  it('shows the new map after cores moved', () => {
    const before = [member('a', [0, 1], [inst(2, 2, [0, 1])]), member('b', [2, 3, 4], [inst(3, 4, [2, 3, 4])])];
    const after = [member('a', [0], [inst(1, 2, [0])]), member('b', [2, 3, 4, 1, 5], [inst(5, 4, [2, 3, 4, 1, 5])])];
    const owners = (members: typeof before) => fleetCoreMap(host, members, 'a').map(c => c.owner);
    assert.deepEqual(owners(before), ['a', 'a', 'b', 'b', 'b', null, null, null]);
    assert.deepEqual(owners(after), ['a', 'b', 'b', 'b', 'b', 'b', null, null]);
  });

  it('follows the host core ids and lays unpinned instances on the model cores in order', () => {
    const members = [member('a', [5, 7, 3], [inst(1, 2), inst(2, 2)])];
    const cells = fleetCoreMap([3, 5, 7], members, 'a');
    assert.deepEqual(
      cells.map(c => [c.core, c.instance]),
      [
        [3, 1],
        [5, 0],
        [7, 1]
      ]
    );
    // a core the host list lacks is still shown, not silently dropped
    assert.deepEqual(
      fleetCoreMap([0], [member('a', [0, 9], [])], 'a').map(c => c.core),
      [0, 9]
    );
  });

  it('reads the move box as one plan per fleet model', () => {
    assert.deepEqual(parseFleetPlansInput('a=1x1x4 b=1x3x8', ['a', 'b']), { plans: { a: '1x1x4', b: '1x3x8' } });
    assert.deepEqual(parseFleetPlansInput(' a = 1 x 2 x 4 + 1x1x2, b=1x1x8@passive ', ['a', 'b']), {
      plans: { a: '1x2x4+1x1x2', b: '1x1x8@passive' }
    });
  });

  it('refuses unknown models and bad plans with an example', () => {
    assert.throws(() => parseFleetPlansInput('c=1x1x1', ['a', 'b']), /'c' is not a model of this fleet \(a, b\); example: a=1x1x4/);
    for (const bad of ['', 'a=2x1', 'a 1x1x4', 'a=']) {
      assert.throws(() => parseFleetPlansInput(bad, ['a', 'b']), /example: a=1x1x4 b=1x3x8/, bad);
    }
  });

  it('parses a fleet entry with its members and groups; a pool has none', () => {
    const [fleet, pool] = parsePools({
      pools: [
        {
          id: 'f',
          kind: 'fleet',
          model: 'fleet: a, b',
          host_cores: [0, 1, 2],
          members: [
            { name: 'a', model: 'mlp', cores: [0], instances: [{ threads: 1, batch: 2, cores: [0] }], served: 5, slo: { slo_ms: 40 } },
            { model: 'nameless' }
          ],
          groups: [{ name: 'g', policy: 'exp3', members: ['a', 7] }]
        },
        { id: 'p', members: [{ name: 'x' }] }
      ]
    });
    assert.equal(fleet.kind, 'fleet');
    assert.deepEqual(fleet.host_cores, [0, 1, 2]);
    assert.deepEqual(
      fleet.members.map(m => [m.name, m.cores, m.served, m.slo.slo_ms, m.p99_ms]),
      [['a', [0], 5, 40, null]]
    );
    assert.deepEqual(fleet.groups, [{ name: 'g', policy: 'exp3', members: ['a'] }]);
    assert.equal(pool.kind, 'pool');
    assert.deepEqual(pool.members, []);
  });

  it('describes a member by its own stats', () => {
    assert.equal(
      describeMember({ served: 12, throughput: 41.24, p50_ms: 4.1, p99_ms: null }),
      '12 served · 41.2 req/s · p50 4.1 ms · p99 —'
    );
  });
});
