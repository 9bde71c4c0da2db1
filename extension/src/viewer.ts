/** Profile viewer: a document widget for NAME.packrat.json showing the latency surface and the plan map. */

import { ABCWidgetFactory, DocumentRegistry, DocumentWidget } from '@jupyterlab/docregistry';
import { Widget } from '@lumino/widgets';

import { fetchProfile } from './api';
import { IProfileView, formatMs, gridRange, heatColour } from './logic';

export const FILE_TYPE = 'packrat-profile';
export const FACTORY = 'Packrat Profile';

function cell(tag: 'td' | 'th', text: string, className = ''): HTMLTableCellElement {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) {
    node.className = className;
  }
  return node;
}

/** Heatmap table: threads down, batch across, colour = latency on a log scale. */
export function renderSurface(view: IProfileView): HTMLElement {
  const [lo, hi] = gridRange(view.latency_ms);
  const noisy = new Set(view.noisy.map(([t, b]) => `${t}:${b}`));
  const table = document.createElement('table');
  table.className = 'jp-PackratSurface';
  const head = table.createTHead().insertRow();
  head.append(cell('th', 'threads \\ batch', 'jp-PackratSurface-corner'));
  for (const b of view.batches) {
    head.append(cell('th', String(b)));
  }
  const body = table.createTBody();
  view.threads.forEach((t, i) => {
    const row = body.insertRow();
    row.append(cell('th', String(t)));
    view.batches.forEach((b, j) => {
      const value = view.latency_ms[i][j];
      const td = cell('td', value === null ? '' : formatMs(value), 'jp-PackratSurface-cell');
      td.style.background = heatColour(value, lo, hi);
      const dark = value !== null && hi > lo && Math.log(value / lo) / Math.log(hi / lo) < 0.6;
      td.classList.toggle('jp-mod-dark', dark);
      td.classList.toggle('jp-mod-noisy', noisy.has(`${t}:${b}`));
      td.title =
        value === null
          ? `threads ${t} · batch ${b}: not measured`
          : `threads ${t} · batch ${b}: ${view.statistic} ${formatMs(value)} (${view.setting[i][j] || 'default'})` +
            (noisy.has(`${t}:${b}`) ? ' · noisy' : '');
      row.append(td);
    });
  });
  return table;
}

/** Plan map table: the optimizer's ⟨i,t,b⟩ at each B, expected latency and speedup over one fat instance. */
export function renderPlanMap(view: IProfileView): HTMLElement {
  const wrap = document.createElement('div');
  if (!view.plan_map.length) {
    const note = document.createElement('p');
    note.className = 'jp-PackratProfile-note';
    note.textContent = view.plan_map_note ?? 'no plan map';
    wrap.append(note);
    return wrap;
  }
  const best = Math.max(1, ...view.plan_map.map(r => r.speedup ?? 1));
  const table = document.createElement('table');
  table.className = 'jp-PackratPlanMap';
  const head = table.createTHead().insertRow();
  for (const label of ['B', 'plan ⟨i,t,b⟩', 'expected', 'fat instance', 'speedup']) {
    head.append(cell('th', label));
  }
  const body = table.createTBody();
  for (const r of view.plan_map) {
    const row = body.insertRow();
    row.append(cell('th', String(r.batch)), cell('td', r.config), cell('td', formatMs(r.expected_ms)), cell('td', formatMs(r.fat_ms)));
    const speed = cell('td', '', 'jp-PackratPlanMap-speedup');
    const bar = document.createElement('span');
    bar.className = 'jp-PackratPlanMap-bar';
    bar.style.width = `${Math.round((100 * (r.speedup ?? 0)) / best)}%`;
    const label = document.createElement('span');
    label.className = 'jp-PackratPlanMap-label';
    label.textContent = r.speedup === null ? '—' : `${r.speedup.toFixed(2)}×`;
    speed.append(bar, label);
    row.append(speed);
  }
  wrap.append(table);
  return wrap;
}

/** The viewer's content: fetches the server's view of the file and draws it; redraws on save. */
export class ProfileView extends Widget {
  constructor(private readonly context: DocumentRegistry.Context) {
    super();
    this.addClass('jp-PackratProfile');
    void context.ready.then(() => this.load());
    context.fileChanged.connect(() => void this.load());
  }

  async load(): Promise<void> {
    try {
      const view = await fetchProfile(this.context.path);
      const title = document.createElement('h2');
      title.textContent = `${view.model} · latency surface (${view.statistic}, ms)`;
      const legend = document.createElement('p');
      legend.className = 'jp-PackratProfile-note';
      legend.textContent =
        'Colour: latency on a log scale, dark = fast. Dashed outline: noisy point. Hover a cell for its runtime setting.';
      const mapTitle = document.createElement('h2');
      mapTitle.textContent = `Plan map on ${view.cores} cores: the optimizer's ⟨instances, threads, batch⟩ at each total batch B`;
      const parts: HTMLElement[] = [title];
      if (view.host_differences.length) {
        const warning = document.createElement('p');
        warning.className = 'jp-PackratProfile-warning';
        warning.textContent = `Measured on another host (${view.host_differences.join('; ')}): latencies and plans may not hold here; re-profile to trust them.`;
        parts.push(warning);
      }
      this.node.replaceChildren(...parts, renderSurface(view), legend, mapTitle, renderPlanMap(view));
    } catch (error) {
      const message = document.createElement('div');
      message.className = 'jp-PackratProfile-error';
      message.textContent = `Cannot show ${this.context.path}: ${(error as Error).message}`;
      this.node.replaceChildren(message);
    }
  }
}

/** Opens *.packrat.json files in the viewer. */
export class ProfileViewerFactory extends ABCWidgetFactory<DocumentWidget<ProfileView>> {
  protected createNewWidget(context: DocumentRegistry.Context): DocumentWidget<ProfileView> {
    const widget = new DocumentWidget({ content: new ProfileView(context), context });
    widget.title.label = context.path.split('/').pop() ?? context.path;
    return widget;
  }
}
