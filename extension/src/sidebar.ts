/** The "Packrat" right-sidebar panel: live pools and fleets on this host, polled with backoff while visible. */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { listPools, moveFleetCores, stopPool, switchPlan } from './api';
import {
  Backoff,
  IFleetMember,
  IPool,
  ISlo,
  coreMap,
  describeControl,
  describeMember,
  distinctTitles,
  formatMs,
  formatPlan,
  formatRate,
  fleetCoreMap,
  groupPools,
  parseFleetPlansInput,
  parsePlanInput,
  sloFigures,
  stopConfirmation
} from './logic';

const INSTANCE_COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text) {
    node.textContent = text;
  }
  return node;
}

function instanceColour(instance: number): string {
  return INSTANCE_COLOURS[instance % INSTANCE_COLOURS.length];
}

/** The SLO row: objective, attainment, goodput and misses, each `—` without an objective. */
function renderSlo(node: HTMLElement, slo: ISlo): void {
  node.replaceChildren(
    ...sloFigures(slo).map(figure => {
      const item = el('span', 'jp-PackratSlo-figure');
      item.dataset.key = figure.key;
      item.title = figure.title;
      item.append(el('span', 'jp-PackratSlo-label', figure.label), ' ', el('span', 'jp-PackratSlo-value', figure.value));
      return item;
    })
  );
}

/** One model of a fleet: name and state, its plan, its core map over the host, its stats and SLO. */
function memberNode(pool: IPool, member: IFleetMember): HTMLElement {
  const node = el('div', 'jp-PackratFleet-member');
  node.dataset.member = member.name;
  const header = el('div', 'jp-PackratPool-header');
  const title = el('span', 'jp-PackratFleet-name', member.model === member.name ? member.name : `${member.name} · ${member.model}`);
  const state = el('span', 'jp-PackratPool-state', member.state);
  state.dataset.state = member.state;
  header.append(title, state);
  const plan = el('div', 'jp-PackratPool-plan', member.instances.length ? formatPlan(member.instances) : member.plan);
  plan.title = member.plan;
  plan.dataset.plan = member.plan;
  const cores = el('div', 'jp-PackratPool-cores');
  cores.dataset.cores = member.cores.join(',');
  cores.append(
    ...fleetCoreMap(pool.host_cores, pool.members, member.name).map(cell => {
      const core = el('span', 'jp-PackratPool-core');
      core.dataset.core = String(cell.core);
      core.dataset.owner = cell.owner ?? '';
      if (cell.owner === member.name) {
        core.style.background = instanceColour(Math.max(0, cell.instance));
        core.title = `core ${cell.core}: ${member.name}${cell.instance >= 0 ? `, instance ${cell.instance + 1}` : ''}`;
      } else if (cell.owner) {
        core.classList.add('jp-mod-other');
        core.title = `core ${cell.core}: held by ${cell.owner}`;
      } else {
        core.style.background = 'var(--jp-layout-color3)';
        core.title = `core ${cell.core}: idle`;
      }
      return core;
    })
  );
  const metrics = el('div', 'jp-PackratPool-metrics', describeMember(member));
  const slo = el('div', 'jp-PackratSlo');
  renderSlo(slo, member.slo);
  node.append(header, plan, cores, metrics, slo);
  return node;
}

/** One pool's (or fleet's) card; kept across polls so the switch box keeps its text and focus. */
class PoolCard {
  readonly node = el('div', 'jp-PackratPool');

  constructor(
    readonly id: string,
    private readonly onChanged: () => void
  ) {
    this.node.dataset.poolId = id;
    const header = el('div', 'jp-PackratPool-header');
    header.append(this._model, this._state);
    const actions = el('div', 'jp-PackratPool-actions');
    this._input.placeholder = 'plan 2x1x4 or batch B';
    this._input.title = 'A plan like 2x1x4 or 1x2x8+2x1x4, or a total batch B (the best plan from the pool profile)';
    this._input.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        void this._switch();
      }
    });
    const switchButton = el('button', 'jp-Button jp-mod-styled jp-mod-accept jp-PackratPool-switch', 'Switch');
    switchButton.addEventListener('click', () => void this._switch());
    const stopButton = el('button', 'jp-Button jp-mod-styled jp-mod-warn jp-PackratPool-stop', 'Stop');
    stopButton.addEventListener('click', () => void this._stop());
    actions.append(this._input, switchButton, stopButton);
    this.node.append(
      header,
      this._owner,
      this._plan,
      this._cores,
      this._metrics,
      this._slo,
      this._members,
      this._groups,
      this._control,
      actions,
      this._message
    );
  }

  update(pool: IPool, title: string): void {
    this._pool = pool;
    this._model.textContent = title;
    this.node.dataset.poolName = pool.name;
    this.node.dataset.owner = pool.owner.group;
    this._model.title = `${title} · pool ${pool.id} · pid ${pool.pid} · ${pool.url}`;
    this._owner.textContent = `${pool.owner.label} · ${pool.url}`;
    this._state.textContent = pool.state;
    this._state.dataset.state = pool.state;
    const fleet = pool.kind === 'fleet';
    this.node.dataset.kind = pool.kind;
    this.node.classList.toggle('jp-PackratFleet', fleet);
    this._plan.hidden = this._cores.hidden = this._slo.hidden = fleet;
    this._members.hidden = this._groups.hidden = !fleet;
    this._input.placeholder = fleet ? 'move cores: a=1x1x4 b=1x3x8' : 'plan 2x1x4 or batch B';
    this._input.title = fleet
      ? `A plan per model (${pool.members.map(m => m.name).join(', ')}), e.g. a=1x1x4 b=1x3x8: cores move between them live`
      : 'A plan like 2x1x4 or 1x2x8+2x1x4, or a total batch B (the best plan from the pool profile)';
    if (fleet) {
      this._metrics.textContent = `fleet: ${formatRate(pool.throughput)} in all · worst p99 ${formatMs(pool.p99_ms)}`;
      this._members.replaceChildren(...pool.members.map(member => memberNode(pool, member)));
      this._groups.textContent = pool.groups.map(g => `${g.name}: ${g.policy} over ${g.members.join(', ')}`).join(' · ');
    } else {
      this._plan.textContent = pool.instances.length ? formatPlan(pool.instances) : pool.display || pool.plan;
      this._plan.title = pool.plan;
      this._cores.replaceChildren(
        ...coreMap(pool.instances, pool.cores).map(cell => {
          const node = el('span', 'jp-PackratPool-core');
          node.style.background = cell.instance < 0 ? 'var(--jp-layout-color3)' : instanceColour(cell.instance);
          node.title = cell.instance < 0 ? `core ${cell.core}: idle` : `core ${cell.core}: instance ${cell.instance + 1}`;
          return node;
        })
      );
      this._metrics.textContent = `${formatRate(pool.throughput)} · p50 ${formatMs(pool.p50_ms)} · p99 ${formatMs(pool.p99_ms)}`;
      renderSlo(this._slo, pool.slo);
    }
    this._control.textContent = describeControl(pool);
    if (pool.error && !this._busy) {
      this._say(pool.error, true);
    }
  }

  private async _switch(): Promise<void> {
    if (this._pool?.kind === 'fleet') {
      await this._move(this._pool);
      return;
    }
    let request;
    try {
      request = parsePlanInput(this._input.value);
    } catch (error) {
      this._say((error as Error).message, true);
      return;
    }
    const autoWasOn = this._pool?.auto === true;
    const ok = await this._act(`switching to ${'plan' in request ? request.plan : `batch ${request.batch}`}…`, () =>
      switchPlan(this.id, request)
    );
    if (ok) {
      this._input.value = '';
      if (autoWasOn) {
        this._say('Auto paused: a manual switch beats the estimator (turn Auto on again from the notebook).', false);
      }
    }
  }

  private async _move(fleet: IPool): Promise<void> {
    let request;
    try {
      request = parseFleetPlansInput(
        this._input.value,
        fleet.members.map(m => m.name)
      );
    } catch (error) {
      this._say((error as Error).message, true);
      return;
    }
    const what = Object.entries(request.plans)
      .map(([name, plan]) => `${name}=${plan}`)
      .join(' ');
    if (await this._act(`moving cores: ${what}…`, () => moveFleetCores(this.id, request))) {
      this._input.value = '';
    }
  }

  private async _stop(): Promise<void> {
    const pool = this._pool;
    const answer = await showDialog({
      title: `Stop ${pool?.kind === 'fleet' ? 'fleet' : 'pool'}${pool?.owner.group === 'kernel' ? '' : ' this server did not start'}?`,
      body: pool ? stopConfirmation(pool) : `Stop pool ${this.id}?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop' })]
    });
    if (answer.button.accept) {
      await this._act('stopping…', () => stopPool(this.id));
    }
  }

  private async _act(what: string, action: () => Promise<void>): Promise<boolean> {
    this._busy = true;
    this._say(what, false);
    try {
      await action();
      this._say('', false);
      return true;
    } catch (error) {
      this._say((error as Error).message, true);
      return false;
    } finally {
      this._busy = false;
      this.onChanged();
    }
  }

  private _say(text: string, isError: boolean): void {
    this._message.textContent = text;
    this._message.classList.toggle('jp-mod-error', isError);
  }

  private _pool: IPool | null = null;
  private _busy = false;
  private readonly _model = el('span', 'jp-PackratPool-model');
  private readonly _state = el('span', 'jp-PackratPool-state');
  private readonly _owner = el('div', 'jp-PackratPool-owner');
  private readonly _plan = el('div', 'jp-PackratPool-plan');
  private readonly _cores = el('div', 'jp-PackratPool-cores');
  private readonly _metrics = el('div', 'jp-PackratPool-metrics');
  private readonly _slo = el('div', 'jp-PackratSlo');
  private readonly _members = el('div', 'jp-PackratFleet-members');
  private readonly _groups = el('div', 'jp-PackratFleet-groups');
  private readonly _control = el('div', 'jp-PackratPool-control');
  private readonly _input = el('input', 'jp-PackratPool-input');
  private readonly _message = el('div', 'jp-PackratPool-message');
}

/** Lists every live pool; polls every second while shown, backing off to 30 s on errors. */
export class PoolsPanel extends Widget {
  constructor(readonly backoff = new Backoff(1000, 30000)) {
    super();
    this.addClass('jp-PackratPanel');
    this.id = 'packrat-lab-pools';
    this.title.caption = 'Packrat pools';
    const header = el('div', 'jp-PackratPanel-header');
    const title = el('h2', 'jp-PackratPanel-title', 'Packrat pools ');
    title.append(this._count);
    header.append(title, this._status);
    this._kernelHead.textContent = "This server's kernels";
    this._otherHead.textContent = 'Other pools on this host';
    this.node.append(header, this._kernelHead, this._kernelList, this._otherHead, this._list, this._empty);
    this._empty.textContent = 'No pools on this host. Start one from a notebook: Pool(model, plan).';
  }

  /** Fetch now and schedule the next poll (only while visible). */
  async refresh(): Promise<void> {
    window.clearTimeout(this._timer);
    const generation = ++this._generation;
    let delay: number;
    try {
      this._render(await listPools());
      delay = this.backoff.succeed();
      this._status.textContent = '';
      this._status.classList.remove('jp-mod-error');
    } catch (error) {
      delay = this.backoff.fail();
      this._status.textContent = `${(error as Error).message} · retry in ${Math.round(delay / 1000)} s`;
      this._status.classList.add('jp-mod-error');
    }
    if (generation === this._generation && this.isVisible && !this.isDisposed) {
      this._timer = window.setTimeout(() => void this.refresh(), delay);
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    window.clearTimeout(this._timer);
    this._generation++;
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  private _render(pools: IPool[]): void {
    const seen = new Set<string>();
    const titles = distinctTitles(pools);
    const groups = groupPools(pools);
    for (const [list, members] of [
      [this._kernelList, groups.kernel],
      [this._list, groups.other]
    ] as const) {
      for (const pool of members) {
        seen.add(pool.id);
        let card = this._cards.get(pool.id);
        if (!card) {
          card = new PoolCard(pool.id, () => void this.refresh());
          this._cards.set(pool.id, card);
        }
        if (card.node.parentElement !== list) {
          list.appendChild(card.node); // moved only when its owner group changes: keeps the input's focus
        }
        card.update(pool, titles.get(pool.id) ?? pool.model);
      }
    }
    for (const [id, card] of this._cards) {
      if (!seen.has(id)) {
        card.node.remove();
        this._cards.delete(id);
      }
    }
    this._kernelHead.hidden = groups.kernel.length === 0;
    this._otherHead.hidden = groups.other.length === 0;
    this._empty.hidden = pools.length > 0;
    this._count.textContent = pools.length ? String(pools.length) : '';
  }

  private _timer = 0;
  private _generation = 0;
  private readonly _cards = new Map<string, PoolCard>();
  private readonly _list = el('div', 'jp-PackratPanel-list jp-PackratPanel-others');
  private readonly _kernelList = el('div', 'jp-PackratPanel-list jp-PackratPanel-kernels');
  private readonly _kernelHead = el('h3', 'jp-PackratPanel-group');
  private readonly _otherHead = el('h3', 'jp-PackratPanel-group');
  private readonly _empty = el('div', 'jp-PackratPanel-empty');
  private readonly _status = el('div', 'jp-PackratPanel-status');
  private readonly _count = el('span', 'jp-PackratPanel-count');
}
