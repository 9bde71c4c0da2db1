/** packrat-lab: the Packrat pools sidebar, the profile viewer and the "New tuning notebook" command. */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { PoolsPanel } from './sidebar';
import { FACTORY, FILE_TYPE, ProfileViewerFactory } from './viewer';

const NEW_NOTEBOOK = 'packrat-lab:new-tuning-notebook';

// four cores of differing widths: instances side by side
const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">
<g class="jp-icon3" fill="#616161"><rect x="1" y="2" width="6" height="5" rx="1"/><rect x="9" y="2" width="6" height="5" rx="1"/>
<rect x="1" y="9" width="14" height="5" rx="1"/></g></svg>`;

export const packratIcon = new LabIcon({ name: 'packrat-lab:icon', svgstr: ICON_SVG });

/** The notebook the command creates: load the magics and open the Lab widget. */
export const TUNING_NOTEBOOK = {
  cells: [
    {
      cell_type: 'markdown',
      metadata: {},
      source: '# Packrat tuning\nProfile a model on this host, pick ⟨instances, threads, batch⟩ and serve it. Run the cell below.'
    },
    {
      cell_type: 'code',
      execution_count: null,
      metadata: {},
      outputs: [],
      source: '%load_ext packrat_lab\n%packrat lab'
    }
  ],
  metadata: {
    kernelspec: { display_name: 'Python 3 (ipykernel)', language: 'python', name: 'python3' },
    language_info: { name: 'python' }
  },
  nbformat: 4,
  nbformat_minor: 5
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'packrat-lab:plugin',
  description: 'Packrat sidebar for live pools, a profile viewer and a tuning-notebook command.',
  autoStart: true,
  optional: [ICommandPalette, ILauncher, ILayoutRestorer, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null,
    browser: IDefaultFileBrowser | null
  ) => {
    const panel = new PoolsPanel();
    panel.title.icon = packratIcon;
    app.shell.add(panel, 'right', { rank: 600 });
    restorer?.add(panel, panel.id);

    app.docRegistry.addFileType({
      name: FILE_TYPE,
      displayName: 'Packrat profile',
      extensions: ['.packrat.json'],
      mimeTypes: ['application/json'],
      fileFormat: 'text',
      contentType: 'file',
      icon: packratIcon
    });
    app.docRegistry.addWidgetFactory(
      new ProfileViewerFactory({ name: FACTORY, label: 'Packrat profile', fileTypes: [FILE_TYPE], defaultFor: [FILE_TYPE] })
    );

    app.commands.addCommand(NEW_NOTEBOOK, {
      label: args => (args.isPalette ? 'Packrat: New tuning notebook' : 'Packrat tuning'),
      caption: 'Create a notebook that opens the Packrat Lab widget',
      icon: args => (args.isPalette ? undefined : packratIcon),
      execute: async () => {
        const contents = app.serviceManager.contents;
        const created = await contents.newUntitled({ path: browser?.model.path ?? '', type: 'notebook' });
        await contents.save(created.path, { type: 'notebook', format: 'json', content: TUNING_NOTEBOOK });
        return app.commands.execute('docmanager:open', { path: created.path, factory: 'Notebook' }) as Promise<unknown>;
      }
    });
    palette?.addItem({ command: NEW_NOTEBOOK, category: 'Packrat', args: { isPalette: true } });
    launcher?.add({ command: NEW_NOTEBOOK, category: 'Notebook', rank: 10 });
  }
};

export default plugin;
