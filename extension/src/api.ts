/** Calls to the packrat_lab server extension (/packrat-lab/...), authenticated by JupyterLab's session. */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IFleetPlans, IPool, IProfileView, PlanRequest, errorMessage, parsePools, parseProfileView } from './logic';

/** Fetch JSON from a /packrat-lab/ route; throws with the server's message on an HTTP error. */
export async function requestAPI<T = unknown>(endpoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'packrat-lab', endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    throw new Error(errorMessage(data, `HTTP ${response.status} from ${endpoint}`));
  }
  return data as T;
}

/** Every live pool on this host. */
export async function listPools(): Promise<IPool[]> {
  return parsePools(await requestAPI('pools'));
}

/** Ask a pool to stop. */
export async function stopPool(id: string): Promise<void> {
  await requestAPI(`pools/${encodeURIComponent(id)}/stop`, { method: 'POST' });
}

/** Switch a pool to a plan text or to the profile's best plan at batch B. */
export async function switchPlan(id: string, request: PlanRequest): Promise<void> {
  await requestAPI(`pools/${encodeURIComponent(id)}/plan`, { method: 'POST', body: JSON.stringify(request) });
}

/** Move cores between a fleet's models: one plan per model, switched live by the fleet. */
export async function moveFleetCores(id: string, request: IFleetPlans): Promise<void> {
  await requestAPI(`fleets/${encodeURIComponent(id)}/plans`, { method: 'POST', body: JSON.stringify(request) });
}

/** Surface and plan map of a profile file (path relative to the server root). */
export async function fetchProfile(path: string): Promise<IProfileView> {
  return parseProfileView(await requestAPI(`profile?path=${encodeURIComponent(path)}`));
}
